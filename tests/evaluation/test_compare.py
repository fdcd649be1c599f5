"""`reasonlite compare` and the report's Table 1 intervals, against runs of known per-problem skill.

A tmp lake gets the real amc23 problems and generation rows drawn here: each problem has a skill
(the chance a sample is right), and a run samples each problem n times at that skill. The real dbt
build (real grader) scores them into eval_problem_results; the comparisons read that mart. Truth:
two runs of equal skill differ only by noise (their interval should hold 0), a run with +0.3
skill on every problem is better (its interval lies above 0). The statistics themselves are also
checked over many data seeds without dbt, on the same arrays the mart feeds.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.evaluation.test_metrics import build_marts, fetch, isolated_lake
from warehouse import lake
from warehouse.errors import UserError

PROBLEMS = 40  # all of amc23
N = 16
BASE_SKILL = np.random.default_rng(7).uniform(0.1, 0.6, size=PROBLEMS)


def _draw(skill, n: int, seed: int) -> list[list[bool]]:
    rng = np.random.default_rng(seed)
    return [[bool(x) for x in rng.random(n) < s] for s in skill]


# name -> (per-problem correctness, problems kept, temperature)
def _design() -> dict[str, list[list[bool]]]:
    return {
        "base": _draw(BASE_SKILL, N, 1),
        "twin": _draw(BASE_SKILL, N, 2),  # same skill, fresh samples
        "better": _draw(np.minimum(BASE_SKILL + 0.3, 1.0), N, 3),
        "partial": _draw(BASE_SKILL, 8, 4)[:30],  # 30 problems, 8 samples each
        "solo": _draw(BASE_SKILL, N, 5)[:1],  # one problem
        "ace": [[True] * N for _ in range(PROBLEMS)],
        "ace2": [[True] * N for _ in range(PROBLEMS)],
        "zero": [[False] * N for _ in range(PROBLEMS)],
        # Named like a paper model: exactly half of every problem's samples right.
        "Qwen3-0.6B": [[j % 2 == 0 for j in range(N)] for _ in range(PROBLEMS)],
    }


def run_id(name: str) -> str:
    return f"eval-{name}-amc23-0123456789"


def write_runs(benchmarks_dir) -> dict[str, list[list[bool]]]:
    from evaluation.benchmarks import ingest_benchmark

    ingest_benchmark("amc23", benchmarks_dir)
    golds = [json.loads(line)["answer"] for line in (benchmarks_dir / "amc23.jsonl").read_text().splitlines()]
    design = _design()
    now = lake.now_utc()
    rows = []
    for name, problems in design.items():
        rid = run_id(name)
        lake.write_manifest(rid, purpose="eval", model=f"/models/{name}", backend="vllm", n_samples=len(problems[0]),
                            temperature=1.0 if name == "partial" else 0.6, top_p=0.95, max_tokens=1024,
                            status="complete", finished_at=now.isoformat())
        for p, flags in enumerate(problems):
            for idx, right in enumerate(flags):
                # Wrong answers split over two values, so the majority vote has something to decide.
                final = f"\\boxed{{{golds[p]}}}" if right else f"\\boxed{{{100000 + idx % 2}}}"
                rows.append(dict(run_id=rid, problem_id=f"amc23:{p}", sample_idx=idx, model=f"/models/{name}",
                                 backend="vllm", completion=f"<think>x</think>{final}", reasoning="x", final=final,
                                 finish_reason="stop", completion_tokens=50, max_tokens=1024, created_at=now))
    # An older run of "base" with other settings: names resolve to the newest run, and say so.
    old_run, yesterday = "eval-base-amc23-fedcba9876", now - datetime.timedelta(days=1)
    lake.write_manifest(old_run, purpose="eval", model="/models/base", backend="vllm", n_samples=2, temperature=0.6,
                        top_p=0.95, max_tokens=512, status="complete", finished_at=yesterday.isoformat())
    rows += [dict(run_id=old_run, problem_id=f"amc23:{p}", sample_idx=idx, model="/models/base", backend="vllm",
                  final=f"\\boxed{{{golds[p]}}}", reasoning="x", finish_reason="stop", completion_tokens=5,
                  max_tokens=512, created_at=yesterday) for p in range(3) for idx in range(2)]
    rows += thinker_rows(golds, now)
    with lake.PartWriter("generations", defaults={"shard": 0}) as writer:
        writer.extend(rows)
    return design


THINKER = "eval-thinker-amc23-0123456789"


def thinker_rows(golds: list[str], now) -> list[dict]:
    """A run whose sample 0 of each problem ran out of tokens inside <think> after boxing the right
    answer (upstream's scoring reads it, strict scoring does not) and sample 1 finished with it boxed."""
    lake.write_manifest(THINKER, purpose="eval", model="/models/thinker", backend="vllm", n_samples=2,
                        temperature=0.6, top_p=0.95, max_tokens=1024, status="complete", finished_at=now.isoformat())
    rows = []
    for p, gold in enumerate(golds):
        cut = f"<think>so it is \\boxed{{{gold}}}, let me check again"
        done = f"<think>so it is {gold}</think>\\boxed{{{gold}}}"
        rows.append(dict(run_id=THINKER, problem_id=f"amc23:{p}", sample_idx=0, model="/models/thinker", backend="vllm",
                         completion=cut, reasoning=cut.removeprefix("<think>"), final=None, finish_reason="length",
                         completion_tokens=1024, max_tokens=1024, created_at=now))
        rows.append(dict(run_id=THINKER, problem_id=f"amc23:{p}", sample_idx=1, model="/models/thinker", backend="vllm",
                         completion=done, reasoning=f"so it is {gold}", final=f"\\boxed{{{gold}}}",
                         finish_reason="stop", completion_tokens=50, max_tokens=1024, created_at=now))
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory, benchmarks_dir):
    with isolated_lake(tmp_path_factory.mktemp("eval-compare")) as root:
        design = write_runs(benchmarks_dir)
        build_marts()
        yield root, design


def _compare(a, b, **kwargs):
    from evaluation.compare import compare
    from warehouse import db

    con = db.connect(read_only=True)
    try:
        return compare(con, a, b, **kwargs)
    finally:
        con.close()


def _row(comparison, metric):
    return next(r for r in comparison.rows if r["metric"] == metric)


# ---------------------------------------------------------------- end to end over the real mart


@pytest.mark.slow
def test_mart_holds_the_drawn_samples(built):
    _, design = built
    rows = fetch("SELECT run_id, problem_id, n, c, sample_correct FROM eval_problem_results WHERE scoring = 'upstream'")
    by_key = {(r["run_id"], r["problem_id"]): r for r in rows}
    for name, problems in design.items():
        for p, flags in enumerate(problems):
            r = by_key[(run_id(name), f"amc23:{p}")]
            assert (r["n"], r["c"], r["sample_correct"]) == (len(flags), sum(flags), flags)
    assert {r["eval_name"] for r in fetch("SELECT DISTINCT eval_name FROM eval_problem_results")} == {*design, "thinker"}
    # Both scorings agree on samples whose answer is boxed after the reasoning.
    strict = fetch("SELECT run_id, problem_id, n, c, sample_correct FROM eval_problem_results WHERE scoring = 'strict'")
    assert {(r["run_id"], r["problem_id"], r["c"]) for r in strict if r["run_id"] != THINKER} == {
        (r["run_id"], r["problem_id"], r["c"]) for r in rows if r["run_id"] != THINKER}


@pytest.mark.slow
def test_scoring_upstream_reads_the_unclosed_think_strict_does_not(built):
    samples = fetch(f"SELECT sample_idx, is_correct, is_correct_upstream FROM eval_samples WHERE run_id = '{THINKER}'")
    assert len(samples) == 2 * PROBLEMS
    assert {(r["sample_idx"], r["is_correct"], r["is_correct_upstream"]) for r in samples} == {
        (0, False, True), (1, True, True)}
    scores = {r["scoring"]: r for r in fetch(f"SELECT * FROM eval_scores WHERE run_id = '{THINKER}'")}
    assert set(scores) == {"upstream", "strict"}
    assert (scores["upstream"]["avg_at_n"], scores["strict"]["avg_at_n"]) == (1.0, 0.5)
    assert scores["upstream"]["n_samples"] == scores["strict"]["n_samples"] == 2 * PROBLEMS
    curve = fetch(f"SELECT scoring, accuracy FROM eval_budget_curve WHERE run_id = '{THINKER}' AND is_max_tokens")
    assert sorted((r["scoring"], r["accuracy"]) for r in curve) == [("strict", 0.5), ("upstream", 1.0)]
    # One row per (run, benchmark, scoring): the paper's scoring is compare's default, strict on request.
    assert fetch("SELECT count(*) AS n FROM eval_scores GROUP BY run_id, benchmark, scoring HAVING n > 1") == []
    upstream, strict = _compare("base", THINKER), _compare("base", THINKER, scoring="strict")
    assert _row(upstream, "avg@2")["b"] == 1.0 and _row(strict, "avg@2")["b"] == 0.5
    assert upstream.method.startswith("scoring upstream;") and strict.method.startswith("scoring strict;")
    with pytest.raises(UserError, match="--scoring: 'lenient' is not one of upstream, strict"):
        _compare("base", THINKER, scoring="lenient")


@pytest.mark.slow
def test_point_values_equal_eval_scores(built):
    comparison = _compare("base", "better", ks=[1, 2, 4, 8, 16])
    for side, name in (("a", "base"), ("b", "better")):
        scores = fetch(f"SELECT * FROM eval_scores WHERE run_id = '{run_id(name)}' AND scoring = 'upstream'")[0]
        assert _row(comparison, "avg@16")[side] == pytest.approx(scores["avg_at_n"], abs=1e-12)
        assert _row(comparison, "maj@16")[side] == pytest.approx(scores["maj_at_n"], abs=1e-12)
        for k in (1, 2, 4, 8, 16):
            assert _row(comparison, f"pass@{k}")[side] == pytest.approx(scores[f"pass_at_{k}"], abs=1e-12)


@pytest.mark.slow
def test_equal_skill_interval_holds_zero_and_better_lies_above(built):
    same = _compare("base", "twin")
    for metric in ("avg@16", "pass@8"):
        row = _row(same, metric)
        assert row["ci_low"] <= 0 <= row["ci_high"], row
        assert row["ci_low"] <= row["diff"] <= row["ci_high"]
    assert _row(same, "avg@16")["p_value"] > 0.05
    better = _compare("base", "better")
    row = _row(better, "avg@16")
    assert row["diff"] == pytest.approx(row["b"] - row["a"])
    assert 0.2 < row["diff"] < 0.4  # +0.3 skill
    assert row["ci_low"] > 0 and row["p_value"] < 0.01
    assert _row(better, "maj@16")["diff"] > 0
    assert "paired bootstrap, 2000 resamples" in better.method


@pytest.mark.slow
def test_seeded_and_reproducible(built):
    first, again = _compare("base", "twin", seed=11), _compare("base", "twin", seed=11)
    other = _compare("base", "twin", seed=12)
    assert first.rows == again.rows
    assert [r["ci_low"] for r in first.rows] != [r["ci_low"] for r in other.rows]
    assert [r["diff"] for r in first.rows] == [r["diff"] for r in other.rows]  # the data, not the seed


@pytest.mark.slow
def test_names_resolve_by_run_id_model_path_and_evaluate_name(built):
    by_name = _compare("base", "better")
    assert by_name.a.matched_by == "evaluate --name" and by_name.a.runs == {"amc23": run_id("base")}
    assert any("'base' has 2 runs on amc23; the newest, eval-base-amc23-0123456789, is used" in n
               for n in by_name.notes)
    older = _compare("eval-base-amc23-fedcba9876", "base")
    assert {r["n_problems"] for r in older.rows} == {3} and older.rows[0]["metric"] == "avg@2"
    by_path = _compare("/models/base", run_id("better"))
    assert by_path.a.matched_by == "model path" and by_path.b.matched_by == "run id"
    assert by_path.rows == by_name.rows
    with pytest.raises(UserError, match="'nobody': no evaluation run id, model path"):
        _compare("nobody", "base")


@pytest.mark.slow
def test_different_problem_sets_and_sample_counts_compare_what_they_share(built):
    comparison = _compare("base", "partial")
    assert {r["n_problems"] for r in comparison.rows} == {30}
    assert [r["metric"] for r in comparison.rows] == ["avg@8", "pass@2", "pass@4", "pass@8", "maj@8"]
    left_out = "\n".join(comparison.dropped)
    assert "10 problem(s) only A scored" in left_out
    assert "first 8 scored samples" in left_out and "240 of A's and 0 of B's samples left out" in left_out
    assert any("temperature differs (A 0.6, B 1)" in note for note in comparison.notes)


@pytest.mark.slow
def test_edge_cases_give_clear_messages(built):
    with pytest.raises(UserError, match="share 1 scored problem.*needs at least 2"):
        _compare("base", "solo")
    ceiling = _compare("ace", "ace2")
    assert all(r["diff"] == 0 and r["ci_low"] == r["ci_high"] == 0 and r["p_value"] == 1 for r in ceiling.rows)
    assert any("every compared sample of A is correct (ceiling)" in n for n in ceiling.notes)
    floor = _compare("zero", "ace")
    assert _row(floor, "avg@16")["diff"] == 1 and any("(floor)" in n for n in floor.notes)
    too_large = _compare("base", "twin", ks=[8, 32])
    assert [r["metric"] for r in too_large.rows] == ["avg@16", "pass@8", "maj@16"]
    assert any("pass@32 left out" in d and "k <= n" in d for d in too_large.dropped)
    with pytest.raises(UserError, match="--resamples"):
        _compare("base", "twin", resamples=10)
    with pytest.raises(UserError, match="aime24: asked for, but neither ran it"):
        _compare("base", "twin", benchmarks=["aime24"])


@pytest.mark.slow
def test_cli_json_table_csv_and_errors(built):
    root, _ = built
    env = {**os.environ, **lake.env_for_root(root)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "warehouse.cli", "compare", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    result = cli("base", "better", "--format", "json", "--resamples", "500", "--seed", "3")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert all(list(r) == ["benchmark", "metric", "a", "b", "diff", "ci_low", "ci_high", "p_value", "n_problems"]
               for r in rows)
    assert rows[0]["metric"] == "avg@16" and rows[0]["ci_low"] > 0
    assert "500 resamples" in result.stderr and "matched by evaluate --name" in result.stderr
    assert rows == json.loads(cli("base", "better", "--format", "json", "--resamples", "500", "--seed", "3").stdout)
    table = cli("base", "better", "--resamples", "500")
    assert table.returncode == 0 and "95 % CI" in table.stdout and "paired bootstrap, 500 resamples" in table.stdout
    csv_out = cli("base", "better", "--format", "csv", "--resamples", "500").stdout.splitlines()
    assert csv_out[0] == "benchmark,metric,a,b,diff,ci_low,ci_high,p_value,n_problems" and len(csv_out) == len(rows) + 1
    failed = cli("base", "nobody")
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "'nobody': no evaluation run id" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_table1_beside_the_paper_and_pass_curves(built):
    from evaluation.compare import pass_curves, pass_curves_markdown, table1_intervals, table1_markdown
    from evaluation.report import load_paper_results
    from warehouse import db

    con = db.connect(read_only=True)
    try:
        table = table1_intervals(con, load_paper_results(), resamples=1000)
        curves = pass_curves(con, resamples=200)
    finally:
        con.close()
    qwen = table[table["model"] == "Qwen3-0.6B"].set_index("metric")
    # Every problem 8 of 16 right: avg@16 = 50 %, pass@8 = 1 - C(8,8)/C(16,8).
    assert qwen.loc["avg@16", "ours"] == pytest.approx(50.0)
    assert qwen.loc["pass@8", "ours"] == pytest.approx(100 * (1 - 1 / math.comb(16, 8)))
    assert qwen.loc["avg@16", "paper"] == 52.7 and qwen.loc["pass@8", "paper"] == 85.0
    assert qwen.loc["avg@16", "ci_low"] < 50 < qwen.loc["avg@16", "ci_high"]
    assert qwen.loc["avg@16", "paper_outside"] == (not qwen.loc["avg@16", "ci_low"] <= 52.7
                                                   <= qwen.loc["avg@16", "ci_high"])
    assert qwen.loc["pass@8", "paper_outside"]  # 85.0 is far below our ~100
    assert table[table["model"] == "base"]["paper"].isna().all()  # no paper model of that name
    ace = curves[curves["model"] == "ace"]
    assert list(ace["k"]) == list(range(1, 17)) and (ace["pass_at_k"] == 100).all()
    half = curves[curves["model"] == "Qwen3-0.6B"].set_index("k")["pass_at_k"]
    for k in (1, 3, 16):
        assert half[k] == pytest.approx(100 * (1 - math.comb(8, k) / math.comb(16, k)))
    markdown = table1_markdown(table)
    assert "| Qwen3-0.6B | amc23 | pass@8 | 100.0 [" in markdown and "| 85.0 (Qwen3-0.6B) | ✗ outside |" in markdown
    assert "| solo | amc23 | avg@16 | 43.8 [—, —] | — | — |" in markdown  # one problem: no interval
    curve_table = pass_curves_markdown(curves)
    assert curve_table.splitlines()[0].endswith("| pass@15 | pass@16 |")
    assert "| ace | amc23 | 16 | " + " | ".join(["100.0"] * 16) + " |" in curve_table
    assert "| partial | amc23 | 8 | " in curve_table  # n = 8: pass@9.. are blank for it


# ------------------------------------------------------------ the statistics over many data seeds


def _arrays(flags):
    from evaluation.compare import run_arrays

    return run_arrays([{"sample_correct": f, "sample_answer_keys": ["right" if x else "wrong" for x in f]}
                       for f in flags], len(flags[0]))


def _one_comparison(flags_a, flags_b, seed):
    from evaluation.compare import _point, _rng, bootstrap, interval, metrics_for, permutation_p_value

    metrics, _ = metrics_for(N, None)
    a, b = _arrays(flags_a), _arrays(flags_b)
    rng = _rng(seed, "amc23")
    boot_a, boot_b = bootstrap(metrics, [a, b], 1000, rng)
    point_a, point_b = _point(metrics, a), _point(metrics, b)
    low, high = interval(boot_b[:, 0] - boot_a[:, 0], point_b[0].mean() - point_a[0].mean(), (-1, 1))
    return low, high, permutation_p_value(point_b[0] - point_a[0], 1000, rng)


def test_equal_skill_over_many_seeds_mostly_not_significant():
    results = [_one_comparison(_draw(BASE_SKILL, N, 100 + s), _draw(BASE_SKILL, N, 200 + s), s) for s in range(40)]
    covered = sum(low <= 0 <= high for low, high, _ in results)
    not_significant = sum(p > 0.05 for _, _, p in results)
    # Nominal 95 %: 40 seeds leave room for a few misses, not for a broken interval.
    assert covered >= 34 and not_significant >= 34, (covered, not_significant)


def test_better_skill_over_many_seeds_lies_above_zero():
    better = np.minimum(BASE_SKILL + 0.2, 1.0)
    results = [_one_comparison(_draw(BASE_SKILL, N, 300 + s), _draw(better, N, 400 + s), s) for s in range(20)]
    assert all(low > 0 and p < 0.05 for low, _, p in results)


def test_majority_vote_ties_go_to_the_key_seen_first():
    from evaluation.compare import Metric, _point, run_arrays

    arrays = run_arrays([{"sample_correct": [False, True, True, False], "sample_answer_keys": ["7", "1", "1", "7"]},
                         {"sample_correct": [True, False, False, False], "sample_answer_keys": ["1", None, "9", "9"]}],
                        4)
    (maj,) = _point([Metric("maj@4", "maj")], arrays)
    assert list(maj) == [0.0, 0.0]  # 2-2 tie: "7" came first; 1 vs 2 votes: "9" wins


def test_interval_is_paired_over_problems_and_resamples_samples_within_them():
    # Same per-problem outcome on both sides, problems all-right or all-wrong: a paired draw moves A
    # and B together (interval exactly 0); drawing problems separately per side would not.
    mixed = [[True] * N] * 20 + [[False] * N] * 20
    low, high, p = _one_comparison(mixed, mixed, 0)
    assert low == high == 0 and p == 1
    # Every problem 8 of 16 right on both sides: the problems agree, only the samples vary, so an
    # interval with width comes from resampling the samples within each problem.
    half = [[j % 2 == 0 for j in range(N)]] * 40
    low, high, _ = _one_comparison(half, [list(reversed(f)) for f in half], 0)
    assert low < 0 < high


def test_permutation_p_value_is_exact_for_few_problems():
    from evaluation.compare import permutation_p_value

    # Differences 1, 1, 1: of the 8 sign patterns only +++ and --- reach |mean| = 1.
    assert permutation_p_value(np.array([1.0, 1.0, 1.0]), 2000, np.random.default_rng(0)) == pytest.approx(2 / 8)
    assert permutation_p_value(np.zeros(4), 2000, np.random.default_rng(0)) == 1.0
    # Many problems: sampled, never below 1 / (permutations + 1).
    assert permutation_p_value(np.ones(40), 500, np.random.default_rng(0)) == pytest.approx(1 / 501)


def test_pass_at_k_interval_holds_its_own_point():
    # One right sample in 16 on every problem: pass@16 = 1 on the data, but a resample of the 16
    # misses the right one 36 % of the time; the interval must still hold the point.
    from evaluation.compare import Metric, _point, _rng, bootstrap, interval

    arrays = _arrays([[j == 3 for j in range(N)]] * 30)
    metrics = [Metric(f"pass@{k}", "pass", k) for k in (1, 8, 16)] + [Metric("maj@16", "maj")]
    (boot,) = bootstrap(metrics, [arrays], 1000, _rng(0, "x"))
    for m, value in enumerate(_point(metrics, arrays)):
        low, high = interval(boot[:, m], float(value.mean()), (0.0, 1.0))
        assert low <= value.mean() <= high, (metrics[m].name, low, value.mean(), high)


def test_markdown_escapes_lake_text():
    from evaluation.compare import _md

    assert _md("<b>x</b>|y") == "&lt;b&gt;x&lt;/b&gt;&#124;y"
