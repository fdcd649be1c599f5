"""CI smoke of `make bench`: the synthetic lake at a tiny scale and the upstream-style baseline on it.

No timings are asserted; these check that the generator is deterministic, writes real lake parts
of the lake schemas with what it claims to plant, and that the baseline's labels agree with the
planted truth.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest
from math_verify import parse, verify

from generation.parsing import split_reasoning
from tests.benchmarks import baseline_upstream, synthetic_lake
from warehouse import lake

N_PROBLEMS = 100


def _boxed(answer: str):
    return parse("\\boxed{" + answer + "}")


@pytest.fixture(scope="module")
def tiny_lake(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bench") / "lake-a"
    stats = synthetic_lake.generate(workdir, scale=0.0, seed=7, n_problems=N_PROBLEMS, progress=False)
    return workdir, stats


PROBLEM_COLUMNS = "problem_id, source, prompt, expected_answer, difficulty, metadata"


def _read(workdir, table: str, order: str, columns: str = "*") -> list[tuple]:
    glob = str(workdir / "lake" / table / "**" / "part-*.parquet")
    con = duckdb.connect()
    return con.execute(f"SELECT {columns} FROM read_parquet('{glob}', hive_partitioning = false) "
                       f"ORDER BY {order}").fetchall()


def test_generator_is_deterministic_by_seed(tiny_lake, tmp_path):
    workdir, stats = tiny_lake
    again = synthetic_lake.generate(tmp_path / "lake-b", scale=0.0, seed=7, n_problems=N_PROBLEMS, progress=False)
    other = synthetic_lake.generate(tmp_path / "lake-c", scale=0.0, seed=8, n_problems=N_PROBLEMS, progress=False)
    order = {"problems": "problem_id", "generations": "run_id, problem_id, sample_idx"}
    for table, key in order.items():
        assert _read(workdir, table, key) == _read(tmp_path / "lake-b", table, key)
        assert _read(workdir, table, key) != _read(tmp_path / "lake-c", table, key)
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in stats.items() if k != "seconds"}
    assert other["problems"] == N_PROBLEMS


def test_generator_writes_lake_schemas_and_shape(tiny_lake):
    workdir, stats = tiny_lake
    with synthetic_lake.using_workdir(workdir):
        parts = {t: list(lake.iter_parts(t)) for t in ("problems", "generations")}
        manifests = {run_id: lake.read_manifest(run_id) for run_id in synthetic_lake.RUN_IDS.values()}
    for table, schema in (("problems", lake.PROBLEMS_SCHEMA), ("generations", lake.GENERATIONS_SCHEMA)):
        assert parts[table]
        for part in parts[table]:
            assert pq.read_schema(part).remove_metadata() == schema
    for level, run_id in synthetic_lake.RUN_IDS.items():
        assert manifests[run_id]["purpose"] == "teacher"
        assert manifests[run_id]["reasoning_level"] == level
        assert manifests[run_id]["status"] == "complete"

    con = duckdb.connect()
    gens = f"read_parquet('{workdir}/lake/generations/*/*/part-*.parquet', hive_partitioning = false)"
    counts = dict(con.execute(f"SELECT reasoning_level, count(*) FROM {gens} GROUP BY 1").fetchall())
    assert counts["medium"] == N_PROBLEMS * synthetic_lake.SAMPLES_PER_PROBLEM
    # `high` covers ~65.8 % of the problems: 9.1M rows in all at scale 1.0.
    assert 0.5 < counts["high"] / counts["medium"] < 0.8
    assert stats["total_generations"] == sum(counts.values())
    dupes = con.execute(f"SELECT count(*) - count(DISTINCT (run_id, problem_id, sample_idx)) FROM {gens}").fetchone()[0]
    assert dupes == 0
    # Truncations: finish_reason 'length' at max_tokens with no final; `high` solutions run longer.
    bad_trunc = con.execute(
        f"SELECT count(*) FROM {gens} WHERE finish_reason = 'length' "
        f"AND (\"final\" IS NOT NULL OR completion_tokens <> {synthetic_lake.MAX_TOKENS})").fetchone()[0]
    assert bad_trunc == 0
    assert stats["truncated"] > 0 and stats["errors"] >= 0
    medians = dict(con.execute(f"SELECT reasoning_level, median(completion_tokens) FROM {gens} "
                               "WHERE finish_reason = 'stop' GROUP BY 1").fetchall())
    assert medians["high"] > 1.5 * medians["medium"]
    # reasoning/final are what the project's parser makes of the completion.
    for completion, reasoning, final in con.execute(f"SELECT completion, reasoning, \"final\" FROM {gens}").fetchall():
        if completion is not None:
            assert split_reasoning(completion) == (reasoning, final)


def test_planted_surface_forms_are_equivalent(tiny_lake):
    workdir, _ = tiny_lake
    rows = _read(workdir, "problems", "problem_id", PROBLEM_COLUMNS)
    kinds = set()
    for _pid, _source, _prompt, label, _difficulty, metadata in rows[:40]:
        meta = json.loads(metadata)
        truth = _boxed(meta["answer"])
        assert truth, meta
        for form in meta["forms"][1:]:
            assert verify(truth, _boxed(form)), (meta["answer"], form)
        for wrong in meta["teacher_wrong"]:
            assert not verify(truth, _boxed(wrong)), (meta["answer"], wrong)
        kinds.add(meta["label_kind"])
        if meta["label_kind"] == "right":
            assert verify(truth, baseline_upstream._parse_label(label)), (meta["answer"], label)
    assert "right" in kinds


def test_baseline_labels_match_planted_truth(tiny_lake):
    workdir, stats = tiny_lake
    jsonl = baseline_upstream.export_jsonl(workdir)
    result = baseline_upstream.run(jsonl, progress=False)
    assert result["records"] == stats["total_generations"]
    assert result["problems"] == N_PROBLEMS
    funnel = result["funnel"]
    assert sum(n for k, n in funnel.items() if k != "samples") == funnel["samples"]
    assert funnel["truncated"] == stats["truncated"]

    rows = _read(workdir, "problems", "problem_id", PROBLEM_COLUMNS)
    problems = {pid: (label, json.loads(meta)) for pid, _s, _p, label, _d, meta in rows}
    voted_confident = 0
    for pid, got in result["labels"].items():
        dataset_label, meta = problems[pid]
        if got["label_source"] == "vote":
            right = verify(_boxed(meta["answer"]), _boxed(got["label"]))
            if meta["profile"] == "confident":
                assert right, (pid, meta, got)
                voted_confident += 1
            elif meta["profile"] == "wrong_confident":
                assert not right, (pid, meta, got)
        else:
            assert got["label"] == dataset_label
            assert got["label_source"] == ("dataset" if dataset_label is not None else "none")
    n_confident = sum(meta["profile"] == "confident" for _, meta in problems.values())
    # 16 samples at >= 93 % right: most confident problems pass the 0.9 / 4-vote rule.
    assert voted_confident >= 0.6 * n_confident
    assert result["vote_labels"] < N_PROBLEMS
    assert funnel["kept"] > 0 and funnel["inconsistent"] > 0


def test_measure_reports_the_childs_own_peak_memory():
    """A child's ru_maxrss starts at its parent's RSS on Linux; the launcher keeps the benchmark
    driver's memory (here 400 MB held by this test process) out of the child's figure."""
    import sys

    from tests.benchmarks.measure import measure

    held = bytearray(400 * 1024 * 1024)
    held[:: 4096] = b"\x01" * len(held[:: 4096])  # touch every page so it is resident
    child = "x = bytearray(120 * 1024 * 1024); x[::4096] = b'\\x01' * len(x[::4096]); print('done')"
    m = measure([sys.executable, "-c", child])
    assert m.returncode == 0 and m.stdout.strip() == "done"
    assert 120 * 2**20 <= m.peak_rss_bytes < 300 * 2**20
    del held
