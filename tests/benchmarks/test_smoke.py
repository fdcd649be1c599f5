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


# ------------------------------------------------------------------------ the realistic text profile

N_REALISTIC = 12  # ~300 solutions of ~25 KB each: a few MB of text
TEXT_COLUMNS = ("completion", "reasoning", "final")


@pytest.fixture(scope="module")
def realistic_pair(tmp_path_factory):
    """The same 12 problems with short and with realistic texts (seed 5)."""
    root = tmp_path_factory.mktemp("realistic")
    short = synthetic_lake.generate(root / "short", scale=0.0, seed=5, n_problems=N_REALISTIC, progress=False)
    real = synthetic_lake.generate(root / "real", scale=0.0, seed=5, n_problems=N_REALISTIC, progress=False,
                                   text_profile="realistic", jobs=1)
    return root, short, real


def _generations(workdir, columns: str = "*") -> list[dict]:
    glob = str(workdir / "lake" / "generations" / "**" / "part-*.parquet")
    con = duckdb.connect()
    cursor = con.execute(f"SELECT {columns} FROM read_parquet('{glob}', hive_partitioning = false) "
                         "ORDER BY run_id, problem_id, sample_idx")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_realistic_texts_follow_completion_tokens_with_the_planted_answers(realistic_pair):
    root, short_stats, real_stats = realistic_pair
    short, real = _generations(root / "short"), _generations(root / "real")
    assert len(short) == len(real) == real_stats["total_generations"]
    assert real_stats["text_profile"] == "realistic" and short_stats["text_profile"] == "short"
    chars = tokens = 0
    for s, r in zip(short, real, strict=True):
        # Every column but the texts is the short profile's.
        assert {k: v for k, v in s.items() if k not in TEXT_COLUMNS} == {k: v for k, v in r.items() if k not in TEXT_COLUMNS}
        assert split_reasoning(r["completion"]) == (r["reasoning"], r["final"])
        for column in TEXT_COLUMNS:
            assert (s[column] is None) == (r[column] is None), column
        if r["completion"] is None:
            continue
        # Length: ~CHARS_PER_TOKEN a token (short solutions are floored by the planted sentences).
        length = len(r["completion"])
        expected = synthetic_lake.CHARS_PER_TOKEN * r["completion_tokens"]
        assert abs(length - expected) <= max(0.02 * expected, 400), (length, expected)
        chars, tokens = chars + length, tokens + r["completion_tokens"]
        # The planted answer is still the only \boxed, at the end of the final channel.
        if r["final"] is not None:
            assert r["final"].endswith(s["final"]) and r["final"].count("\\boxed") == s["final"].count("\\boxed")
            if r["reasoning"] is not None:
                assert len(r["final"]) <= synthetic_lake.FINAL_MAX_CHARS + len(s["final"])
        if r["reasoning"] is not None:
            assert "\\boxed" not in r["reasoning"]
            if r["finish_reason"] == "length":
                assert r["reasoning"].startswith(s["reasoning"]) and len(r["completion"]) > 100_000
            else:
                assert r["reasoning"].endswith(s["reasoning"])  # "... the result is <answer>."
                if r["completion_tokens"] >= 1_000:  # a long analysis, a short final
                    assert len(r["reasoning"]) > 5 * len(r["final"] or "")
    assert abs(chars / tokens - synthetic_lake.CHARS_PER_TOKEN) < 0.1


def test_realistic_texts_compress_like_real_model_output(realistic_pair):
    """Real reasoning-model math traces compress 2.70x with zstd (realistic_text's docstring); a
    repeated string would give 100x."""
    import pyarrow as pa

    root, _, real_stats = realistic_pair
    codec = pa.Codec("zstd", compression_level=3)
    rows = _generations(root / "real", "reasoning")
    ratios = [len(t) / len(codec.compress(t.encode())) for t in (r["reasoning"] for r in rows[:40]) if t]
    assert 2.4 < sum(ratios) / len(ratios) < 3.0
    # In the lake's Parquet (many rows per page) the vocabulary also repeats across rows.
    text_bytes = sum(len(r[c] or "") for r in _generations(root / "real", "completion, reasoning, final")
                     for c in TEXT_COLUMNS)
    assert 2.4 < text_bytes / real_stats["generations_bytes"] < 4.5
    # Per solution: ~2 x 4.5 x ~6,000 tokens of text, ~18 KB of Parquet (calibration in BENCHMARKS.md).
    per_row = real_stats["generations_bytes"] / real_stats["total_generations"]
    assert 10_000 < per_row < 30_000


def test_realistic_texts_are_deterministic_by_seed_whatever_the_jobs(realistic_pair, tmp_path, monkeypatch):
    root, _, real_stats = realistic_pair
    monkeypatch.setattr(synthetic_lake, "PART_TEXT_BYTES", 2 * 2**20)  # several parts per run and shard
    runs = {}
    for name, seed, jobs in (("two_jobs", 5, 2), ("one_job", 5, 1), ("other_seed", 6, 1)):
        runs[name] = synthetic_lake.generate(tmp_path / name, scale=0.0, seed=seed, n_problems=N_REALISTIC,
                                             progress=False, text_profile="realistic", jobs=jobs)
    assert len(list((tmp_path / "two_jobs" / "lake" / "generations").rglob("part-*.parquet"))) > 4
    assert _generations(tmp_path / "two_jobs") == _generations(tmp_path / "one_job")
    assert _generations(tmp_path / "other_seed", "reasoning") != _generations(tmp_path / "one_job", "reasoning")
    assert runs["two_jobs"]["total_generations"] == real_stats["total_generations"]


def test_baseline_reads_the_same_answers_from_realistic_texts(realistic_pair):
    """math-verify finds the planted boxed answer behind a long final: labels and funnel as with short texts."""
    root, _, _ = realistic_pair
    short = baseline_upstream.run(baseline_upstream.export_jsonl(root / "short"), progress=False)
    real = baseline_upstream.run(baseline_upstream.export_jsonl(root / "real"), progress=False)
    assert real["funnel"] == short["funnel"]
    assert real["labels"].keys() == short["labels"].keys()
    for pid, got in real["labels"].items():
        want = short["labels"][pid]
        assert got["label_source"] == want["label_source"], pid
        # The group's first solution names it; JSON lines come in part order, so the surface form may differ.
        assert got["label"] == want["label"] or verify(_boxed(want["label"]), _boxed(got["label"])), (pid, got, want)


def test_measure_reports_bytes_read_and_written_by_the_process_tree(tmp_path):
    """I/O of a grandchild that has exited still counts (Linux adds a reaped child's counters to its parent's)."""
    import sys

    from tests.benchmarks.measure import measure

    target = tmp_path / "blob"
    child = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
             f"\"open({str(target)!r}, 'wb').write(b'x' * (40 << 20))\"], check=True); "
             f"print(len(open({str(target)!r}, 'rb').read()))")
    m = measure([sys.executable, "-c", child])
    assert m.returncode == 0 and m.stdout.strip() == str(40 << 20)
    assert m.io is not None
    assert 40 << 20 <= m.io["wchar"] < 60 << 20
    assert m.cpu_seconds is not None and m.cpu_seconds > 0
    assert m.io["rchar"] >= 40 << 20


@pytest.mark.slow
def test_volume_bench_runs_curate_export_and_the_physical_floor(tmp_path):
    """`make bench`'s volume step end to end on a tiny realistic lake (69 problems, ~1.8K solutions)."""
    from tests.benchmarks import bench_curation

    out = bench_curation.volume_at(0.0002, tmp_path, seed=3)
    for step in ("curate", "export", "floor_scan", "floor_write"):
        assert out[step]["returncode"] == 0, out[step].get("error_tail")
        assert out[step]["seconds"] > 0 and out[step]["peak_rss_bytes"] > 0
    rows = out["lake"]["total_generations"]
    assert out["floor_scan"]["rows"] == rows
    assert out["floor_scan"]["text_chars"] > 2 * 4 * 1000 * rows  # thousands of tokens a solution, twice
    # curate reads at least the text it checks (completion lengths, reasoning/final hashes) once.
    assert out["curate"]["io"]["rchar"] > 0.5 * out["lake"]["generations_bytes"]
    assert out["export"]["rows"] == out["kept"] == out["floor_write"]["rows"] > 0
    assert 2_000 < out["export_bytes_per_kept_row"] < 20_000
    assert out["floor_ratio"] == round(out["curate_export_seconds"] / out["floor_seconds"], 2)
    assert out["curate"]["cpu_seconds"] > 0 and out["floor_cpu_ratio"] > 0
    # The incremental build after a 5 % run, of each kind, reads the new run's texts, not the whole lake again.
    assert set(out["incremental"]) == {"block", "scattered"}
    for problems, inc in out["incremental"].items():
        assert inc["curate"]["returncode"] == 0 and inc["export"]["returncode"] == 0, inc
        assert inc["restore"]["returncode"] == 0, inc["restore"]
        assert inc["added"]["generations"] > 0 and inc["share_of_full"] > 0
        assert inc["added"]["problems"] == problems
        assert inc["curate"]["io"]["rchar"] < out["curate"]["io"]["rchar"]
        assert inc["curate"]["node_seconds"]["model"] > 0 and inc["curate"]["node_seconds"]["test"] > 0
        assert len(inc["repeats"]) == bench_curation.INCREMENTAL_REPEATS[problems]
        assert inc["share_of_full"] == sorted(inc["repeats"])[len(inc["repeats"]) // 2]  # the median run's
        report = {r["stratum"]: r for r in inc["curate"]["sft_exports"]}
        assert sum(r["rows_fetched"] for r in report.values()) > 0, report
        churn = inc["curate"]["churn"]
        assert churn["problems"] > 0 and churn["segments"] > 0 and churn["problems_per_segment"] > 0, churn
        assert churn["segments_with_removal"] <= churn["segments_with_change"] <= churn["segments"], churn
        assert churn["problems_with_removal"] <= churn["problems_with_change"] <= churn["problems"], churn


def test_export_churn_counts_problems_and_segments_whose_rows_change_or_leave():
    import pyarrow as pa

    from tests.benchmarks import bench_curation

    def index(rows):
        names = ("stratum", "problem_id", "run_id", "sample_idx", "row_digest", "segment")
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})

    before = index([("long", "p1", "r", 0, "a", "s1"), ("long", "p2", "r", 0, "b", "s1"),
                    ("long", "p3", "r", 0, "c", "s2"), ("long", "p4", "r", 0, "d", "s3"),
                    ("short", "p1", "r", 1, "e", "s1")])  # another stratum's s1
    after = index([("long", "p1", "r", 0, "a2", "n1"),  # relabeled
                   ("long", "p2", "r", 0, "b", "s1"), ("long", "p4", "r", 0, "d", "s3"),
                   ("short", "p1", "r", 1, "e", "s1"), ("long", "p5", "r", 0, "f", "n1")])  # p3 left, p5 new
    churn = bench_curation.export_churn(before, after)
    assert churn == {"problems": 4, "segments": 4, "problems_with_change": 2, "problems_with_removal": 1,
                     "segments_with_change": 2, "segments_with_removal": 1, "rows_changed": 1, "rows_removed": 1,
                     "problems_per_segment": 1.2}
    assert bench_curation.export_churn(None, after) is None
