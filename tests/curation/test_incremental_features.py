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
