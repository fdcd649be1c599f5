"""The SFT strata as segmented Parquet, written incrementally (dbt_project/models/marts/exports/sft_exports.py).

A real lake and real `reasonlite curate` builds: a full build; then a new teacher run over a few
problems while a lake part of another run is removed (its rows leave, and the votes of its problems
change, so some rows of the other stratum change too); an incremental build. Its strata must equal,
row for row and column for column, those of a --full-refresh build of the same lake, while the
segments no change touched are the previous build's files (same inode) and only the added or
changed rows were read from the lake, from the lake files that hold them.
"""

from __future__ import annotations

import os
import random
import string

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.curation import lakes
from tests.curation.test_curation import _isolated_env, curate_cli, query
from warehouse import lake, snapshots

pytestmark = pytest.mark.slow

KEY = ["problem_id", "run_id", "sample_idx"]
SEGMENT_COLUMNS = ["messages", "problem_id", "source", "run_id", "sample_idx", "teacher_model", "reasoning_level",
                   "stratum", "label", "label_source", "prompt_tokens", "completion_tokens", "answer", "answer_key"]
N_PROBLEMS = 40
PER_PART = 10  # problems per lake part of the first medium run: 4 parts
# Segments of a few rows each, so a change touches some segments and not others.
SEGMENT_BYTES = "12000"
# Small segments, so that a toy lake spans several; one DuckDB thread, so that the unordered COPY
# lays the rows out the same way on every run (with more, which rows share a segment, and so which
# segments an incremental build carries, varies from run to run; the rows never do).
LAYOUT_ENV = {"REASONLITE_EXPORT_SEGMENT_BYTES": SEGMENT_BYTES, "REASONLITE_DUCKDB_THREADS": "1"}


def _text(rng: random.Random, n: int) -> str:
    # Random words: compress like prose, so segment sizes follow the row count.
    return " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(n))


def _samples(run_id: str, level: str, problems: range, n: int, seed: int, words: int = 120) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in problems:
        for k in range(n):
            row = lakes.sample(run_id, f"toy:{i}", k, level, f"What is {i} plus {i}?", answer=str(2 * i))
            row["reasoning"] = _text(rng, words)
            row["completion"] = lakes.harmony_completion(row["reasoning"], row["final"])
            rows.append(row)
    return rows


def _first_lake(words: int = 120) -> list:
    lakes.write_problems([{"problem_id": f"toy:{i}", "source": "toy", "prompt": f"What is {i} plus {i}?",
                           "expected_answer": str(2 * i)} for i in range(N_PROBLEMS)])
    lakes.write_run("toy-medium", "medium")
    lakes.write_run("toy-high", "high")
    parts = []
    for shard, start in enumerate(range(0, N_PROBLEMS, PER_PART)):
        lakes.write_generations(_samples("toy-medium", "medium", range(start, start + PER_PART), 3, seed=shard,
                                         words=words), shard=shard)
        parts.append(next(lake.partition_dir("generations", {"run_id": "toy-medium", "shard": shard})
                          .glob("part-*.parquet")))
    lakes.write_generations(_samples("toy-high", "high", range(N_PROBLEMS), 2, seed=99, words=words))
    return parts


def _strata() -> dict[str, pa.Table]:
    """Every stratum's rows, all segments read, sorted by key."""
    out = {}
    for name in snapshots.STRATA_DIRS:
        segments = snapshots.stratum_segments(lake.exports_dir() / name)
        assert segments, name
        for path in segments:
            assert pq.read_schema(path).names == SEGMENT_COLUMNS, path
        table = pa.concat_tables([pq.read_table(p) for p in segments])
        out[name] = table.sort_by([(k, "ascending") for k in KEY])
    return out


def _inodes() -> dict[str, int]:
    return {f"{name}/{p.name}": p.stat().st_ino for name in snapshots.STRATA_DIRS
            for p in snapshots.stratum_segments(lake.exports_dir() / name)}


def _report() -> dict[str, dict]:
    rows = query("SELECT stratum, path, segments, rows, carried_segments, rewritten_segments, written_segments, "
                 "rows_carried, rows_fetched, rows_relabeled, lake_files, full_write, bytes_read FROM sft_exports")
    names = ["path", "segments", "rows", "carried_segments", "rewritten_segments", "written_segments",
             "rows_carried", "rows_fetched", "rows_relabeled", "lake_files", "full_write", "bytes_read"]
    return {row[1]: dict(zip(names, row[1:], strict=True)) for row in rows}


def _changed_keys(before: pa.Table, after: pa.Table, same_text: bool) -> set[tuple]:
    """Keys of ``after`` that differ in some column from ``before``: with ``same_text`` those whose
    messages are unchanged (values only), else the new ones and those whose messages changed."""
    old = {tuple(r[k] for k in KEY): r for r in before.to_pylist()}
    changed = set()
    for row in after.to_pylist():
        key = tuple(row[k] for k in KEY)
        was = old.get(key)
        if was != row and (was is not None and was["messages"] == row["messages"]) == same_text:
            changed.add(key)
    return changed


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    for key, value in {**_isolated_env(tmp_path / "warehouse"), **LAYOUT_ENV}.items():
        monkeypatch.setenv(key, value)
    return tmp_path / "warehouse"


def test_an_incremental_build_writes_only_what_changed_and_equals_a_full_refresh(warehouse):
    parts = _first_lake()
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err
    first, first_inodes, first_report = _strata(), _inodes(), _report()
    assert first_report["sft_short_cot"]["full_write"] and first_report["sft_short_cot"]["rows"] == 120
    assert first_report["sft_long_cot"]["rows"] == 80
    assert first_report["sft_short_cot"]["segments"] >= 4, first_report  # enough segments to carry some

    # A new teacher run over three problems; the last part of the first medium run is removed.
    lakes.write_run("toy-medium-2", "medium")
    lakes.write_generations(_samples("toy-medium-2", "medium", range(3), 4, seed=7))
    new_part, = lake.partition_dir("generations", {"run_id": "toy-medium-2", "shard": 0}).glob("part-*.parquet")
    parts[-1].unlink()
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err
    incremental, incremental_inodes, report = _strata(), _inodes(), _report()
    snapshots.check_published_exports()

    code, out, err = curate_cli("--no-test", "--full-refresh")
    assert code == 0, out + err
    full = _strata()
    assert all(row["full_write"] and not row["carried_segments"] for row in _report().values())

    # (a) The incremental strata are the full refresh's, every row and every column.
    for name in snapshots.STRATA_DIRS:
        assert incremental[name].schema == full[name].schema, name
        assert incremental[name].to_pylist() == full[name].to_pylist(), name
    assert incremental["sft_short_cot"].num_rows == 120 - 30 + 12
    assert incremental["sft_long_cot"].num_rows == 80

    # (b) Untouched segments were carried (the same files), and only the changed rows were fetched,
    # from the lake files that hold them.
    short, long = report["sft_short_cot"], report["sft_long_cot"]
    print(f"\nincremental build: {report}")
    for name, stats in report.items():
        assert not stats["full_write"], name
        fetched = _changed_keys(first[name], incremental[name], same_text=False)
        relabeled = _changed_keys(first[name], incremental[name], same_text=True)
        assert stats["rows_fetched"] == len(fetched), (name, stats, sorted(fetched))
        assert stats["rows_relabeled"] == len(relabeled), (name, stats, sorted(relabeled))
        assert stats["rows_carried"] + stats["rows_fetched"] + stats["rows_relabeled"] <= stats["rows"], stats
    assert short["rows_fetched"] == 12 and short["lake_files"] == 1  # the new run's rows, its one part
    # Votes of toy:30..39 fell below min_votes: 20 rows changed label_source, not text. They are
    # rewritten from their old segments with the new values, and no lake file is read for them.
    assert long["rows_relabeled"] == 20 and long["rows_fetched"] == 0 and long["lake_files"] is None
    carried = {n for n, ino in incremental_inodes.items() if first_inodes.get(n) == ino}
    assert carried, "no segment was carried: everything was rewritten"
    assert short["carried_segments"] >= 1 and long["carried_segments"] >= 1, report
    assert len(carried) == short["carried_segments"] + long["carried_segments"]
    written = [n for n in incremental_inodes if n not in first_inodes]
    assert len(written) == short["written_segments"] + long["written_segments"]
    assert len(written) < len(incremental_inodes)
    assert str(new_part) in {f for (f,) in query("SELECT DISTINCT _source_file FROM sft_examples")}


def test_an_unchanged_lake_reads_no_text_and_publishing_swaps_whole_folders(warehouse):
    _first_lake()
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err
    published = {name: os.readlink(lake.exports_dir() / name) for name in snapshots.STRATA_DIRS}
    before = _strata()
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err
    for name, stats in _report().items():
        assert stats["rows_fetched"] == 0 and stats["lake_files"] is None, (name, stats)
        assert stats["written_segments"] <= 1, stats  # at most the compaction of small tail segments
    after = _strata()
    assert {n: t.to_pylist() for n, t in after.items()} == {n: t.to_pylist() for n, t in before.items()}
    # Each stratum is a symlink onto one build's folder; the previous folder stays for its readers.
    for name in snapshots.STRATA_DIRS:
        link = os.readlink(lake.exports_dir() / name)
        assert link != published[name] and (lake.exports_dir() / published[name]).is_dir()
    record = snapshots.check_published_exports()
    assert set(record["strata"]) == {f"{name}/{p.name}" for name in snapshots.STRATA_DIRS
                                     for p in snapshots.stratum_segments(lake.exports_dir() / name)}
    # A third build: the first build's folder is deleted, the two newest stay.
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err
    assert len(list((lake.exports_dir() / snapshots.SEGMENTS_DIR).iterdir())) == 2


def test_the_fetch_reads_only_the_lake_files_it_names(warehouse):
    """The file list on sft_examples' _source_file prunes the lake scan: bytes read (/proc/self/io)."""
    import duckdb

    parts = _first_lake(words=2000)  # texts outweigh the database pages every query reads
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err

    def read_bytes(sql: str) -> int:
        con = duckdb.connect(str(lake.database_path()), read_only=True)  # a fresh instance: no file cache
        try:
            before = _rchar()
            con.execute(sql).fetchall()
            return _rchar() - before
        finally:
            con.close()

    text = "SELECT sum(length(messages[2].content)) FROM sft_examples"
    everything = read_bytes(text)
    one = read_bytes(f"{text} WHERE _source_file IN ('{parts[0]}', '{parts[1]}')")
    # What the digests need: light columns and the lake identity, no text.
    light = read_bytes("SELECT count(DISTINCT (problem_id, run_id, sample_idx, label, _source_file, _source_row)) "
                       "FROM sft_examples")
    lake_bytes = sum(p.stat().st_size for p in lake.table_dir("generations").rglob("part-*.parquet"))
    print(f"\nlake generations {lake_bytes:,} B; read for the texts of all rows {everything:,} B, "
          f"of the rows in 2 of 5 parts (30 % of the rows) {one:,} B; for the digests' columns {light:,} B")
    assert light < everything * 0.35, (light, everything)  # database pages and Parquet footers, no text
    assert one - light < (everything - light) * 0.5, (one, everything, light)


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def test_a_build_that_would_rewrite_most_segments_writes_the_stratum_afresh(warehouse):
    """A change of vars that moves most labels (min_votes 4 -> 1000: every label becomes the dataset's) would rewrite most segments from
    themselves, which measured slower than one write from the lake: the stratum is written afresh,
    and it is still the full refresh's."""
    _first_lake()
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err
    code, out, err = curate_cli("--no-test", "--vars", "{min_votes: 1000}")
    assert code == 0, out + err
    report, relabeled = _report(), _strata()
    assert any(stats["full_write"] and stats["carried_segments"] == 0 and stats["rows_fetched"] == stats["rows"]
               for stats in report.values()), report
    code, out, err = curate_cli("--no-test", "--full-refresh", "--vars", "{min_votes: 1000}")
    assert code == 0, out + err
    full = _strata()
    for name in snapshots.STRATA_DIRS:
        assert relabeled[name].to_pylist() == full[name].to_pylist(), name
