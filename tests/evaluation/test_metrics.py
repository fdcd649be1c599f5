"""eval_samples / eval_scores / eval_budget_curve against numbers computed here, independently.

A tmp lake gets the real amc23 problems (through the benchmark registry) and hand-made generation
rows whose correctness is known by construction: correct answers in several equivalent forms,
wrong answers with a designed majority, answers the grader cannot find, truncated samples and
engine errors. The real dbt build (with the real grader) scores them; the expected values come
from the construction, with pass@k by math.comb and by numpy's product form, never from the marts.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

from warehouse import lake

KS = (1, 2, 4, 8, 16)
LADDER = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
LONG_TEXT = "Let me think about this problem for a long while, considering all the cases carefully."


def pass_at_k_comb(n: int, c: int, k: int) -> float | None:
    """Unbiased estimator, textbook form: 1 - C(n-c, k) / C(n, k)."""
    if n < k:
        return None
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_numpy(n: int, c: int, k: int) -> float | None:
    """Codex paper's numerically stable form: 1 - prod_{i=n-c+1}^{n} (1 - k/i)."""
    if n < k:
        return None
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@dataclass
class Sample:
    kind: str  # correct | wrong | none | truncated | error
    tokens: int
    answer: str | None = None  # wrong answer value


@dataclass
class Run:
    run_id: str
    max_tokens: int
    problems: dict[str, list[Sample]] = field(default_factory=dict)


def _correct_forms(gold: str, i: int) -> str:
    # Equivalent surface forms: the grader, not string equality, must find them correct.
    forms = [f"\\boxed{{{gold}}}", f"The answer is $\\boxed{{{gold}}}$.", f"\\boxed{{\\frac{{{2 * int(gold)}}}{{2}}}}",
             f"\\boxed{{{gold}.0}}"]
    return forms[i % len(forms)]


def _design() -> list[Run]:
    """Run A: n = 16 on five problems; run B: n = 4 on three problems, plus one errored sample."""
    a = Run("eval-a", max_tokens=4096)
    # (correct, wrong answers as (value, count), no answer, truncated) per problem
    plans = {
        "amc23:0": (0, [("1", 10), ("2", 6)], 0, 0),  # nothing right
        "amc23:1": (16, [], 0, 0),  # everything right
        "amc23:2": (1, [("999", 9)], 4, 2),  # pass@8 = 0.5 exactly; majority wrong
        "amc23:3": (5, [("7", 6), ("8", 5)], 0, 0),  # majority (6) beats the 5 right ones
        "amc23:4": (13, [("5", 2)], 1, 0),  # majority right
    }
    for p, (c, wrong, none, trunc) in plans.items():
        samples = [Sample("correct", 0)] * c
        for value, count in wrong:
            samples += [Sample("wrong", 0, value)] * count
        samples += [Sample("none", 0)] * none + [Sample("truncated", a.max_tokens)] * trunc
        assert len(samples) == 16
        # Spread the lengths over the ladder so the budget curve has steps.
        a.problems[p] = [Sample(s.kind, s.tokens or 40 + (i * 263 + len(p) * 17) % 4000, s.answer)
                         for i, s in enumerate(samples)]
    b = Run("eval-b", max_tokens=1024)
    b.problems = {
        # Tie 2-2 between the right key and "3": the key seen first (sample 0, right) wins.
        "amc23:0": [Sample("correct", 100), Sample("wrong", 200, "3"), Sample("wrong", 300, "3"), Sample("correct", 900),
                    Sample("error", 0)],
        "amc23:1": [Sample("wrong", 50, "35"), Sample("none", 60), Sample("truncated", 1024), Sample("correct", 70)],
        "amc23:2": [Sample("correct", 10), Sample("correct", 20), Sample("correct", 30), Sample("correct", 40)],
    }
    return [a, b]


def write_lake(benchmarks_dir) -> list[Run]:
    """Ingest amc23 and write the designed runs (and a teacher run that must not be scored)."""
    from evaluation.benchmarks import ingest_benchmark

    ingest_benchmark("amc23", benchmarks_dir)
    golds = {f"amc23:{i}": json.loads(line)["answer"]
             for i, line in enumerate((benchmarks_dir / "amc23.jsonl").read_text().splitlines())}
    runs = _design()
    now = lake.now_utc()
    rows = []
    for run in runs:
        lake.write_manifest(run.run_id, purpose="eval", model=f"/models/{run.run_id}-model", backend="vllm",
                            n_samples=max(len(s) for s in run.problems.values()), temperature=0.6, top_p=0.95,
                            max_tokens=run.max_tokens, status="complete", finished_at=now.isoformat())
        for problem_id, samples in run.problems.items():
            for idx, s in enumerate(samples):
                final = {
                    "correct": _correct_forms(golds[problem_id], idx),
                    "wrong": f"So we get \\boxed{{{s.answer}}}.",
                    "none": LONG_TEXT,
                    "truncated": None,
                    "error": None,
                }[s.kind]
                rows.append(dict(
                    run_id=run.run_id, problem_id=problem_id, sample_idx=idx, model=f"/models/{run.run_id}-model",
                    backend="vllm", completion=None if s.kind == "error" else f"<think>{LONG_TEXT}</think>{final or ''}",
                    reasoning=LONG_TEXT, final=final,
                    finish_reason={"truncated": "length", "error": None}.get(s.kind, "stop"),
                    completion_tokens=None if s.kind == "error" else s.tokens, max_tokens=run.max_tokens,
                    error="engine_error: test" if s.kind == "error" else None, created_at=now,
                ))
    lake.write_manifest("teacher-t", purpose="teacher", model="/models/teacher", backend="vllm", status="complete")
    rows += [dict(run_id="teacher-t", problem_id="amc23:0", sample_idx=i, model="/models/teacher",
                  final=f"\\boxed{{{golds['amc23:0']}}}", reasoning=LONG_TEXT, finish_reason="stop",
                  completion_tokens=10, created_at=now) for i in range(4)]
    with lake.PartWriter("generations", defaults={"shard": 0}) as writer:
        writer.extend(rows)
    return runs


def expected_scores(run: Run) -> dict:
    per_problem = []
    for samples in run.problems.values():
        scored = [s for s in samples if s.kind != "error"]
        n, c = len(scored), sum(s.kind == "correct" for s in scored)
        keys = [("right" if s.kind == "correct" else s.answer) for s in scored if s.kind in ("correct", "wrong")]
        counts = Counter(keys)
        top = max(counts.values()) if counts else 0
        winner = next((k for k in keys if counts[k] == top), None)  # ties: first seen
        per_problem.append((n, c, winner == "right"))
    acc = [c / n for n, c, _ in per_problem]
    scored = [s for samples in run.problems.values() for s in samples if s.kind != "error"]
    out = {
        "n_problems": len(per_problem),
        "n": min(n for n, _, _ in per_problem),
        "n_samples": len(scored),
        "avg_at_n": sum(acc) / len(acc),
        "std_err": statistics.stdev(acc) / math.sqrt(len(acc)),
        "maj_at_n": sum(m for _, _, m in per_problem) / len(per_problem),
        "no_answer_rate": sum(s.kind in ("none", "truncated") for s in scored) / len(scored),
        "truncation_rate": sum(s.kind == "truncated" for s in scored) / len(scored),
        "mean_completion_tokens": sum(s.tokens for s in scored) / len(scored),
        "n_errors": sum(s.kind == "error" for samples in run.problems.values() for s in samples),
    }
    for k in KS:
        values = [pass_at_k_comb(n, c, k) for n, c, _ in per_problem]
        out[f"pass_at_{k}"] = None if any(v is None for v in values) else sum(values) / len(values)
    return out


def expected_budget_curve(run: Run) -> dict[int, float]:
    budgets = [b for b in LADDER if b < run.max_tokens] + [run.max_tokens]
    curve = {}
    for budget in budgets:
        shares = []
        for samples in run.problems.values():
            scored = [s for s in samples if s.kind != "error"]
            shares.append(sum(s.kind == "correct" and s.tokens <= budget for s in scored) / len(scored))
        curve[budget] = sum(shares) / len(shares)
    return curve


def build_marts(full: bool = False):
    """The real dbt build: the eval marts and what they read (everything with ``full``)."""
    from warehouse.curate import curate, run_dbt

    if full:
        result = curate(test=False, quiet=True)
    else:
        result = curate(select=["+eval_samples", "+eval_scores", "+eval_budget_curve"], test=False, quiet=True)
    assert result.success, result.failures
    # The marts' own data tests (unique keys, not nulls) must pass on this lake too.
    tested = run_dbt(["test", "--select", "eval_samples", "eval_scores", "eval_budget_curve"], quiet=True)
    assert tested.success, [str(r.message) for r in tested.result.results if str(r.status) != "pass"]


def fetch(sql: str) -> list[dict]:
    from warehouse import db

    con = db.connect(read_only=True)
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


@contextlib.contextmanager
def isolated_lake(root):
    """The lake_env fixture's isolation, for a module-scoped lake built once."""
    with pytest.MonkeyPatch.context() as mp:
        for key, name in {"REASONLITE_LAKE": "lake", "REASONLITE_DB": "reasonlite.duckdb",
                          "REASONLITE_EXPORTS": "exports", "REASONLITE_REPORTS": "reports",
                          "REASONLITE_TMP": "tmp"}.items():
            mp.setenv(key, str(root / name))
        yield root


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory, benchmarks_dir):
    with isolated_lake(tmp_path_factory.mktemp("eval-metrics")):
        runs = write_lake(benchmarks_dir)
        build_marts()
        yield {r.run_id: r for r in runs}


# ------------------------------------------------------------------------- the estimator itself


@pytest.mark.parametrize("n,c,k,expected", [
    (16, 1, 8, 0.5),  # 1 - C(15,8)/C(16,8) = 1 - 6435/12870
    (16, 0, 8, 0.0),
    (16, 16, 8, 1.0),
    (16, 9, 8, 1.0),  # n - c < k: every 8-subset holds a correct sample
    (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (16, 5, 1, 5 / 16),  # pass@1 = c/n
    (10, 3, 2, 1 - 21 / 45),
    (4, 2, 8, None),  # n < k: undefined
])
def test_reference_estimators_agree_with_hand_computed(n, c, k, expected):
    for estimator in (pass_at_k_comb, pass_at_k_numpy):
        value = estimator(n, c, k)
        assert value == pytest.approx(expected, abs=1e-12) if expected is not None else value is None


# ------------------------------------------------------------------------------------ the marts


@pytest.mark.slow
def test_eval_scores_match_independent_computation(built_lake):
    # The kinds of samples drawn here are defined by the strict scoring (eval_samples.is_correct).
    rows = {r["run_id"]: r for r in fetch("SELECT * FROM eval_scores WHERE scoring = 'strict' ORDER BY run_id")}
    assert set(rows) == {"eval-a", "eval-b"}  # the teacher run is not an evaluation
    for run_id, run in built_lake.items():
        got, want = rows[run_id], expected_scores(run)
        assert got["benchmark"] == "amc23"
        assert got["model_name"] == f"{run_id}-model"
        for key, value in want.items():
            if value is None:
                assert got[key] is None, (run_id, key)
            else:
                assert got[key] == pytest.approx(value, abs=1e-12), (run_id, key, got[key], value)
        # the paper's metric, computed a second way
        for k in KS:
            per_problem = []
            for samples in run.problems.values():
                scored = [s for s in samples if s.kind != "error"]
                per_problem.append(pass_at_k_numpy(len(scored), sum(s.kind == "correct" for s in scored), k))
            if all(v is not None for v in per_problem):
                assert got[f"pass_at_{k}"] == pytest.approx(sum(per_problem) / len(per_problem), abs=1e-12)


@pytest.mark.slow
def test_eval_scores_hand_computed_values(built_lake):
    a, b = (fetch(f"SELECT * FROM eval_scores WHERE run_id = '{r}' AND scoring = 'strict'")[0]
            for r in ("eval-a", "eval-b"))
    # Run A: c = 0, 16, 1, 5, 13 of 16.
    assert a["avg_at_n"] == pytest.approx(35 / 80)
    assert a["pass_at_1"] == pytest.approx(35 / 80)
    assert a["pass_at_16"] == pytest.approx(4 / 5)
    assert a["pass_at_8"] == pytest.approx((0 + 1 + 0.5 + (1 - math.comb(11, 8) / math.comb(16, 8)) + 1) / 5)
    assert a["maj_at_n"] == pytest.approx(2 / 5)  # only the c=16 and c=13 problems vote right
    assert a["truncation_rate"] == pytest.approx(2 / 80)
    assert a["no_answer_rate"] == pytest.approx(7 / 80)
    # Run B: n = 4 (the errored fifth sample is not scored): pass@8 and pass@16 undefined.
    assert (b["n"], b["n_max"], b["n_samples"], b["n_errors"]) == (4, 4, 12, 1)
    assert b["pass_at_8"] is None and b["pass_at_16"] is None
    assert b["avg_at_n"] == pytest.approx((2 / 4 + 1 / 4 + 4 / 4) / 3)
    # amc23:0 ties 2-2 and the key seen first (sample 0, right) wins; amc23:1 ties 1-1 and the wrong
    # "35" (sample 0) wins; amc23:2 is unanimous.
    assert b["maj_at_n"] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_eval_samples_grade_equivalent_forms(built_lake):
    rows = fetch("SELECT run_id, problem_id, sample_idx, is_scored, is_correct, has_answer, is_truncated "
                 "FROM eval_samples")
    assert not any(r["run_id"] == "teacher-t" for r in rows)
    by_key = {(r["run_id"], r["problem_id"], r["sample_idx"]): r for r in rows}
    for run_id, run in built_lake.items():
        for problem_id, samples in run.problems.items():
            for idx, s in enumerate(samples):
                r = by_key[(run_id, problem_id, idx)]
                assert r["is_scored"] == (s.kind != "error")
                assert r["is_correct"] == (None if s.kind == "error" else s.kind == "correct"), (run_id, problem_id, idx)
                if s.kind != "error":
                    assert r["has_answer"] == (s.kind in ("correct", "wrong"))
                    assert r["is_truncated"] == (s.kind == "truncated")


@pytest.mark.slow
def test_budget_curve_matches_independent_computation(built_lake):
    rows = fetch("SELECT * FROM eval_budget_curve WHERE scoring = 'strict' ORDER BY run_id, budget")
    scores = {r["run_id"]: r for r in fetch("SELECT run_id, avg_at_n FROM eval_scores WHERE scoring = 'strict'")}
    for run_id, run in built_lake.items():
        got = {r["budget"]: r for r in rows if r["run_id"] == run_id}
        want = expected_budget_curve(run)
        assert sorted(got) == sorted(want)
        for budget, value in want.items():
            assert got[budget]["accuracy"] == pytest.approx(value, abs=1e-12), (run_id, budget)
        # At the run's own max_tokens nothing was cut: the curve ends at avg@n.
        assert got[run.max_tokens]["is_max_tokens"]
        assert got[run.max_tokens]["accuracy"] == pytest.approx(scores[run_id]["avg_at_n"])
        accuracies = [got[b]["accuracy"] for b in sorted(got)]
        assert accuracies == sorted(accuracies)  # more budget never loses a correct sample
    assert expected_budget_curve(built_lake["eval-b"])[128] == pytest.approx((1 / 4 + 1 / 4 + 1) / 3)
