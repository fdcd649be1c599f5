"""The long texts of the lake are read once per lake part (issue #17 item 4).

int_generation_text_features holds what int_samples takes from completion / reasoning / final, one
row per physical lake row; an incremental curate reads only the parts it has no row of and drops
the rows of parts that left the lake. One lake, two warehouses: A is built, the lake changes (a new
teacher run, a part removed, a part quarantined), A is built again incrementally; B is a
`--full-refresh` build of the changed lake. A and B must agree table for table, and A's second
build must not have read the old parts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from evaluation import grading
from tests.curation import lakes
from warehouse import lake, snapshots
from warehouse.curate import curate

pytestmark = pytest.mark.slow

FEATURES = "int_generation_text_features"
# Columns that name the dbt invocation that wrote a row: they differ between any two builds.
INVOCATION_COLUMNS = {"graded_in", "signed_in", "features_read_in"}
# Records of the build itself, which differ between any two builds by design: curation_build (build
# id, invocation, start/end) and sft_exports (per stratum: what the export wrote, carried, when).
BUILD_RECORDS = {"curation_build", "sft_exports"}
PROBLEMS = {"p0": "2", "p1": "7", "p2": "12"}


def _use(monkeypatch, root: Path, warehouse: str) -> None:
    """The shared lake, with the DuckDB file, exports and dbt's files of one warehouse."""
    env = lake.env_for_root(root / warehouse)
    env["REASONLITE_LAKE"] = str(root / "lake")
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _part(rows: list[dict], shard: int) -> Path:
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in lake.GENERATIONS_SCHEMA} for r in rows],
                                 schema=lake.GENERATIONS_SCHEMA)
    path = lake.write_part("generations", table, {"run_id": rows[0]["run_id"], "shard": shard})
    assert path is not None
    return path


def _samples(run: str, level: str, problem: str, n: int, start: int = 0, created: int = 0, **kw) -> list[dict]:
    return [lakes.sample(run, f"train:{problem}", start + i, level, f"Problem {problem}?",
                         answer=PROBLEMS[problem], created=created, **kw) for i in range(n)]


def _write_first_lake() -> dict[str, Path]:
    lakes.write_problems([
        {"problem_id": f"train:{name}", "source": "train", "prompt": f"Problem {name}?", "expected_answer": label,
         "difficulty": None, "metadata": None}
        for name, label in PROBLEMS.items()
    ])
    lakes.write_run("teacher-medium", "medium")
    return {
        "p0": _part(_samples("teacher-medium", "medium", "p0", 5), shard=0),
        "p1": _part(_samples("teacher-medium", "medium", "p1", 5), shard=1),
        # A later copy of p0's sample 0 without a box: it wins while its part is in the lake.
        "rerun": _part(_samples("teacher-medium", "medium", "p0", 1, created=60, final="No box here."), shard=2),
    }


def _query(sql: str) -> list[tuple]:
    return lakes.query_marts(sql)


def _build(*, full_refresh: bool = False) -> None:
    grading._clear_caches()  # each build grades for itself, as a fresh `reasonlite curate` would
    result = curate(full_refresh=full_refresh, quiet=True, allow_quarantined=True)
    assert result.success, result.failures


def _tables() -> dict[str, list[tuple]]:
    """Every table of the main schema but the build record, sorted, without invocation columns."""
    names = [name for (name,) in _query(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1")]
    tables = {}
    for name in names:
        if name in BUILD_RECORDS:
            continue
        columns = [c for (c,) in _query(
            f"SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = '{name}'")]
        excluded = [c for c in columns if c in INVOCATION_COLUMNS]
        select = f"SELECT * EXCLUDE ({', '.join(excluded)})" if excluded else "SELECT *"
        tables[name] = sorted(_query(f'{select} FROM main."{name}"'), key=repr)
    return tables


def _features_by_part() -> dict[str, set[str]]:
    by_part: dict[str, set[str]] = {}
    for part, invocation in _query(f"SELECT DISTINCT _source_file, features_read_in FROM {FEATURES}"):
        by_part.setdefault(part, set()).add(invocation)
    return by_part


def test_incremental_build_reads_only_new_parts_and_equals_a_full_refresh(tmp_path, monkeypatch):
    _use(monkeypatch, tmp_path, "a")
    first_parts = _write_first_lake()
    _build()
    first = _features_by_part()
    assert set(first) == {str(p) for p in first_parts.values()}
    assert all(len(invocations) == 1 for invocations in first.values())
    (first_invocation,) = set().union(*first.values())
    # The rerun's copy wins while its part is in the lake.
    assert _query("SELECT has_boxed FROM int_samples WHERE run_id = 'teacher-medium' AND problem_id = 'train:p0' AND sample_idx = 0") == [(False,)]

    # The lake changes: a new teacher run, one part removed (a removed run deletes its parts), one
    # part quarantined (moved to <lake>/_quarantine, as lake.quarantine_corrupt_parts does).
    lakes.write_run("teacher-high", "high")
    new_parts = {_part(_samples("teacher-high", "high", name, 4), shard=k) for k, name in enumerate(PROBLEMS)}
    first_parts["rerun"].unlink()
    quarantined = lake.quarantine_dir() / first_parts["p1"].relative_to(lake.lake_root())
    quarantined.parent.mkdir(parents=True)
    shutil.move(first_parts["p1"], quarantined)

    _build()
    after = _features_by_part()
    assert set(after) == {str(first_parts["p0"])} | {str(p) for p in new_parts}
    # (b) The old part was not read again: its rows keep the first build's invocation; the new parts
    # were read by this one. A build that rescanned the lake would stamp every row anew.
    assert after[str(first_parts["p0"])] == {first_invocation}
    (second_invocation,) = set().union(*(after[str(p)] for p in new_parts))
    assert second_invocation != first_invocation
    # ... and its compiled query names the new parts only.
    compiled = next(lake.dbt_target_dir().rglob(f"compiled/**/{FEATURES}.sql")).read_text()
    assert all(str(p) in compiled for p in new_parts)
    assert not any(str(p) in compiled for p in first_parts.values())
    # The removed copy no longer wins; the quarantined part's samples are gone.
    assert _query("SELECT has_boxed FROM int_samples WHERE run_id = 'teacher-medium' AND problem_id = 'train:p0' AND sample_idx = 0") == [(True,)]
    assert _query("SELECT count(*) FROM int_samples WHERE problem_id = 'train:p1'") == [(4,)]  # high only
    incremental = _tables()

    # (a) B: a full refresh of the same lake.
    _use(monkeypatch, tmp_path, "b")
    _build(full_refresh=True)
    full = _tables()

    assert set(incremental) == set(full)
    dictionaries = set(snapshots.incremental_models()) - {FEATURES}
    for name in sorted(full):
        if name in dictionaries:
            # Caches of grader work keyed by string: an incremental build keeps the strings of parts
            # that left the lake (harmless, they are joined by key), so A holds at least B's rows.
            missing = [row for row in full[name] if row not in incremental[name]]
            assert not missing, f"{name}: rows of the full refresh missing from the incremental build: {missing[:3]}"
        else:
            assert incremental[name] == full[name], f"{name}: incremental and full-refresh builds differ"
    assert len(full[FEATURES]) == _query("SELECT count(*) FROM stg_lake__generation_rows")[0][0]
    assert len(full["judged_generations"]) == 5 + 3 * 4  # medium: p0 (p1 quarantined); high: p0, p1, p2


def _published_sql(*statements: str) -> None:
    """Change the published database in place, as a warehouse of an earlier version would hold it."""
    import duckdb

    con = duckdb.connect(str(lake.database_path()))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()


def _wrong_answers_kept() -> int:
    return _query("SELECT count(*) FROM judged_generations WHERE problem_id = 'train:p0' AND run_id = 'teacher-wrong' "
                  "AND keep")[0][0]


def test_incremental_tables_built_by_another_grader_are_rebuilt_and_equal_a_full_refresh(tmp_path, monkeypatch,
                                                                                           capsys):
    """The answer dictionaries are grader output kept from build to build: after the grader changes,
    rows it keyed differently must not vote on. A stale key is planted as an older grader could have
    written it ("2" and "12" one key): while the published build's definitions match today's it
    stays (the dictionary is trusted), once they differ (or were never recorded) the curate rebuilds
    the incremental tables and agrees with a full refresh, a --select build included."""
    _use(monkeypatch, tmp_path, "a")
    _write_first_lake()
    lakes.write_run("teacher-wrong", "medium")
    _part([lakes.sample("teacher-wrong", "train:p0", i, "medium", "Problem p0?", answer="12") for i in range(2)],
          shard=3)
    _build()
    assert _wrong_answers_kept() == 0
    stale_key = "UPDATE int_answer_dictionary SET answer_key = 'sym:planted' WHERE answer IN ('2', '12')"

    # Same definitions: the stored keys are trusted, so the planted one survives an incremental build
    # (what happened to every warehouse when the grader changed before this check).
    _published_sql(stale_key)
    _build()
    assert _wrong_answers_kept() == 2
    assert "definitions" not in capsys.readouterr().err

    # A warehouse of a version that did not record its definitions: rebuilt, said so.
    _published_sql(stale_key, "ALTER TABLE curation_build DROP COLUMN definitions")
    _build()
    err = capsys.readouterr().err
    assert "changed since the published build (definitions not recorded" in err, err
    assert _wrong_answers_kept() == 0
    assert _query("SELECT count(*) FROM int_answer_dictionary WHERE answer_key = 'sym:planted'") == [(0,)]
    assert _query("SELECT definitions FROM curation_build") == [(snapshots.incremental_definitions(),)]
    incremental = _tables()

    # Recorded but different (another grader), and a --select build (`reasonlite evaluate` scores with
    # one), which keeps the tables it does not select: every incremental table is rebuilt all the same.
    _published_sql(stale_key, "UPDATE curation_build SET definitions = 'an-older-grader'")
    result = curate(select=["stg_lake__runs"], test=False, quiet=True)
    assert result.success, result.failures
    assert "(definitions an-older-grader, now " in capsys.readouterr().err
    assert _query("SELECT count(*) FROM int_answer_dictionary WHERE answer_key = 'sym:planted'") == [(0,)]
    assert _query("SELECT definitions FROM curation_build") == [(snapshots.incremental_definitions(),)]
    assert {name: rows for name, rows in _tables().items() if name in snapshots.incremental_models()} == {
        name: rows for name, rows in incremental.items() if name in snapshots.incremental_models()}

    _use(monkeypatch, tmp_path, "b")
    _build(full_refresh=True)
    full = _tables()
    assert incremental == full


def test_definitions_digest_covers_what_the_incremental_rows_are_computed_from(tmp_path):
    """Incremental models, the models they read, macros, the grader: a change there changes the digest;
    a mart no incremental model reads does not (it is rebuilt on every curate anyway)."""
    from warehouse.curate import PROJECT_DIR

    repo = PROJECT_DIR.parent
    project, code = tmp_path / "dbt_project", tmp_path / "code"
    shutil.copytree(PROJECT_DIR / "models", project / "models")
    shutil.copytree(PROJECT_DIR / "macros", project / "macros")
    shutil.copytree(repo / "evaluation" / "grading", code / "evaluation" / "grading")
    (code / "warehouse").mkdir()
    shutil.copy(repo / "warehouse" / "dbt_plugin.py", code / "warehouse")
    assert snapshots.incremental_definitions(project, code) == snapshots.incremental_definitions()
    before = snapshots.incremental_definitions(project, code)
    edits = {
        "a mart nothing incremental reads": (project / "models" / "marts" / "curation_funnel.sql", False),
        "a model an incremental one reads": (project / "models" / "intermediate" / "int_samples.sql", True),
        "an incremental model": (project / "models" / "intermediate" / "int_answer_dictionary.sql", True),
        "a macro": (project / "macros" / "curation_rules.sql", True),
        "the grader": (code / "evaluation" / "grading" / "keys.py", True),
        "the grader's DuckDB functions": (code / "warehouse" / "dbt_plugin.py", True),
    }
    for what, (path, changes) in edits.items():
        text = path.read_text()
        path.write_text(text + "\n-- edited\n" if path.suffix == ".sql" else text + "\n# edited\n")
        assert (snapshots.incremental_definitions(project, code) != before) == changes, what
        path.write_text(text)
    assert snapshots.incremental_definitions(project, code) == before
