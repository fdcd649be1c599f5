"""`reasonlite compare A B`: is the difference between two evaluations real?

Everything is read from the dbt mart ``eval_problem_results`` (one row per run x benchmark x problem x
scoring, with each scored sample's correctness and answer key), so a number printed here is one
``reasonlite sql`` away. Correctness is one scoring's: ``upstream`` (the paper's protocol, the
default) or ``strict`` (``--scoring``). Per benchmark both sides ran:

* only the problems both runs scored are compared, and only the first ``n`` scored samples of each
  (by sample_idx) where ``n`` is the fewest any of those problems has in either run; what that
  leaves out is said, as are differing sampling settings and prompt templates;
* metrics: avg@n, pass@k (unbiased estimator 1 - C(n-c, k)/C(n, k), Chen et al. 2021) for the k
  both runs support, maj@n (majority of canonical answer keys; ties: the key seen first);
* ``ci_low``/``ci_high``: a paired bootstrap — each resample draws the shared problems with
  replacement (the same draw for A and B) and, within each drawn problem, A's and B's samples with
  replacement; the 95 % percentile interval of B - A, shifted by the bootstrap's bias (repeats in
  a resample lower pass@k and maj@n; see ``interval``);
* ``p_value``: a paired permutation test — each permutation swaps A and B on every problem with
  probability 1/2; two-sided, (1 + #{|mean| >= |observed|}) / (1 + permutations), or exact over
  all 2^P swaps when P problems have no more than that.

The same resampling gives the intervals of the report's "Table 1 beside ours" section (one run
instead of a pair) and its pass@k curves for k = 1..n.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from dataclasses import dataclass, field

from warehouse.errors import UserError

CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
OUTPUT_KEYS = ("benchmark", "metric", "a", "b", "diff", "ci_low", "ci_high", "p_value", "n_problems")
# How a name given on the command line is matched against the mart, in this order.
MATCH_COLUMNS = (("run id", "run_id"), ("model path", "model"), ("evaluate --name", "eval_name"),
                 ("model name", "model_name"))
# Bound on the elements of one vectorized resampling block (resamples x problems x answer keys).
BLOCK_ELEMENTS = 4_000_000
MART = "eval_problem_results"
# eval_problem_results.scoring: upstream's protocol (the paper's numbers) or this grader's stricter one.
SCORINGS = ("upstream", "strict")
DEFAULT_SCORING = "upstream"


# --------------------------------------------------------------------------------- resolution


@dataclass
class Side:
    """What one of A / B resolved to: a run per benchmark."""

    query: str
    matched_by: str
    runs: dict[str, str]  # benchmark -> run id
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        runs = ", ".join(f"{run} ({bench})" for bench, run in sorted(self.runs.items()))
        return f"{self.query!r} matched by {self.matched_by}: {runs}"


def _relations(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _require_mart(con) -> None:
    if MART not in _relations(con):
        raise UserError(f"no {MART} mart in the warehouse: run `reasonlite evaluate` (or `reasonlite curate`) "
                        "to build the evaluation marts first")


def _runs(con) -> list[dict]:
    return _rows(con, f"""
        SELECT run_id, benchmark, any_value(model) AS model, any_value(model_name) AS model_name,
               any_value(eval_name) AS eval_name, any_value(finished_at) AS finished_at,
               any_value(run_created_at) AS run_created_at
        FROM {MART} GROUP BY run_id, benchmark""")


def _newest_first(row: dict):
    # Newest finished run first; unfinished ones after, then by run id for a stable choice.
    stamp = row["finished_at"] or row["run_created_at"]
    return (stamp is None, -(stamp.timestamp() if stamp is not None else 0), row["run_id"])


def resolve(con, query: str) -> Side:
    """A / B as a run id, a model path (eval_scores.model), an `evaluate --name`, or a model name."""
    runs = _runs(con)
    candidates = {query, query.rstrip("/"), os.path.abspath(query)}
    found = ((how, [r for r in runs if r[column] is not None
                    and (r[column] in candidates or r[column].rstrip("/") in candidates)])
             for how, column in MATCH_COLUMNS)
    matched_by, matches = next(((how, rows) for how, rows in found if rows), (None, []))
    if not matches:
        known = sorted({r["eval_name"] or r["model_name"] for r in runs if r["eval_name"] or r["model_name"]})
        raise UserError(f"{query!r}: no evaluation run id, model path, evaluate --name or model name in {MART} "
                        f"matches; known names: {', '.join(known[:20]) or 'none (no evaluation yet)'}")
    side = Side(query=query, matched_by=matched_by, runs={})
    for bench in sorted({r["benchmark"] for r in matches}):
        ordered = sorted((r for r in matches if r["benchmark"] == bench), key=_newest_first)
        side.runs[bench] = ordered[0]["run_id"]
        if len(ordered) > 1:
            side.notes.append(f"{query!r} has {len(ordered)} runs on {bench}; the newest, {ordered[0]['run_id']}, is "
                              f"used (give a run id to pick another: {', '.join(r['run_id'] for r in ordered[1:4])})")
    return side


# ----------------------------------------------------------------------------- the resampling


@dataclass
class RunArrays:
    """One run's shared problems as counts: n samples each (the first n by sample_idx)."""

    n: int
    correct: object  # int (P,): correct samples of each problem
    votes: object  # int (P, K): samples per answer key code (codes in first-seen order)
    key_right: object  # bool (P, K): whether key code j of the problem is the right answer


def run_arrays(rows: list[dict], n: int) -> RunArrays:
    """Rows of eval_problem_results (one per problem, in the comparison's problem order), cut to n samples."""
    import numpy as np

    problems = len(rows)
    correct = np.zeros(problems, dtype=np.int64)
    votes = np.zeros((problems, n), dtype=np.int64)
    key_right = np.zeros((problems, n), dtype=bool)
    for p, row in enumerate(rows):
        flags = [bool(v) for v in row["sample_correct"][:n]]
        correct[p] = sum(flags)
        codes: dict[str, int] = {}
        for j, key in enumerate(row["sample_answer_keys"][:n]):
            if key is None:
                continue
            code = codes.setdefault(key, len(codes))
            votes[p, code] += 1
            key_right[p, code] |= flags[j]
    # Only as many key columns as the most varied problem uses: the multinomial draw costs per column.
    keys = max(1, int((votes > 0).sum(axis=1).max(initial=0)))
    return RunArrays(n, correct, votes[:, :keys], key_right[:, :keys])


def pass_at_k_table(n: int, k: int):
    """The unbiased estimator 1 - C(n-c, k)/C(n, k) for c = 0..n (exact integers, then float)."""
    import numpy as np

    total = math.comb(n, k)
    return np.array([1.0 - math.comb(n - c, k) / total for c in range(n + 1)])


@dataclass
class Metric:
    name: str
    kind: str  # avg | pass | maj
    k: int = 0


def metrics_for(n: int, ks: list[int] | None) -> tuple[list[Metric], list[int]]:
    """avg@n, pass@k for each k <= n (default 2, 4, 8, ... and n), maj@n; and the ks left out (k > n)."""
    if ks is None:
        ks = [2 ** i for i in range(1, max(1, n.bit_length())) if 2 ** i <= n] + ([n] if n > 1 else [])
    kept = sorted({k for k in ks if k <= n})
    metrics = [Metric(f"avg@{n}", "avg")] + [Metric(f"pass@{k}", "pass", k) for k in kept]
    return metrics + [Metric(f"maj@{n}", "maj")], sorted({k for k in ks if k > n})


def per_problem_values(metrics: list[Metric], n: int, correct, votes, key_right, problem_index):
    """Each metric per problem, arrays (..., P), from correct (..., P) and votes (..., P, K).

    ``problem_index`` (..., P) says which original problem each drawn one is (for key_right)."""
    out = []
    maj = None
    for metric in metrics:
        if metric.kind == "avg":
            out.append(correct / n)
        elif metric.kind == "pass":
            out.append(pass_at_k_table(n, metric.k)[correct])
        else:
            if maj is None:
                # argmax takes the lowest code among ties = the key seen first (as eval_scores does).
                winner = votes.argmax(axis=-1)
                maj = (votes.max(axis=-1) > 0) & key_right[problem_index, winner]
            out.append(maj.astype(float))
    return out


def _point(metrics, arrays: RunArrays):
    import numpy as np

    index = np.arange(arrays.correct.shape[0])
    return per_problem_values(metrics, arrays.n, arrays.correct, arrays.votes, arrays.key_right, index)


def bootstrap(metrics: list[Metric], sides: list[RunArrays], resamples: int, rng):
    """Paired bootstrap: (resamples, metrics) of each side's metric means, one problem draw for all sides.

    Resampling a problem's n samples with replacement is drawn as its counts: the correct ones are
    Binomial(n, c/n), the votes per answer key (and no answer) Multinomial(n, shares) — the same
    distributions, without materializing resamples x problems x samples."""
    import numpy as np

    problems, n = sides[0].correct.shape[0], sides[0].n
    needs_votes = any(metric.kind == "maj" for metric in metrics)
    results = [np.empty((resamples, len(metrics))) for _ in sides]
    block = max(1, BLOCK_ELEMENTS // max(1, problems * (max(side.votes.shape[1] for side in sides) + 1)))
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        drawn = rng.integers(0, problems, size=(size, problems))
        for side, result in zip(sides, results, strict=True):
            correct = rng.binomial(n, side.correct[drawn] / n)
            votes = None
            if needs_votes:
                # Shares of each key code, then of "no answer" (the last column, dropped after the draw).
                shares = np.concatenate([side.votes, n - side.votes.sum(axis=1, keepdims=True)], axis=1) / n
                votes = rng.multinomial(n, shares[drawn])[..., :-1]
            values = per_problem_values(metrics, n, correct, votes, side.key_right, drawn)
            for m, value in enumerate(values):
                result[start:start + size, m] = value.mean(axis=-1)
    return results


def interval(resampled, point: float, bounds: tuple[float, float]) -> tuple[float, float]:
    """95 % percentile interval of ``resampled``, shifted by the bootstrap's bias (mean - point).

    A resample of a problem's samples holds repeats, so pass@k (k > 1) and maj@n come out lower
    on resamples than on the samples themselves (pass@16 of 1 right in 16: 1 on the data, 0.64 on
    average over resamples); without the shift the interval can miss its own point. avg@n has no
    such bias and is not moved."""
    import numpy as np

    alpha = (1 - CONFIDENCE) / 2
    bias = float(resampled.mean()) - point
    low, high = np.quantile(resampled, [alpha, 1 - alpha]) - bias
    return float(np.clip(low, *bounds)), float(np.clip(high, *bounds))


def permutation_p_value(differences, permutations: int, rng) -> float:
    """Two-sided sign-flip test of mean(differences) = 0 (A and B swapped per problem at random;
    all 2^P swaps when there are no more of them than ``permutations``)."""
    import numpy as np

    observed = abs(differences.mean())
    if 2 ** differences.size <= permutations:
        # Few problems: every one of the 2^P swaps, an exact p-value.
        signs = 1 - 2 * ((np.arange(2 ** differences.size)[:, None] >> np.arange(differences.size)) & 1)
        return float((np.abs((signs * differences).mean(axis=1)) >= observed - 1e-12).mean())
    extreme = 0
    block = max(1, BLOCK_ELEMENTS // max(1, differences.size))
    for start in range(0, permutations, block):
        size = min(block, permutations - start)
        signs = rng.integers(0, 2, size=(size, differences.size)) * 2 - 1
        extreme += int((np.abs((signs * differences).mean(axis=1)) >= observed - 1e-12).sum())
    return (1 + extreme) / (1 + permutations)


def _rng(seed: int, *labels: str):
    import numpy as np

    # One stream per benchmark (and model): a result does not depend on what else was compared.
    return np.random.default_rng([seed, *(zlib.crc32(label.encode()) for label in labels)])


# --------------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    a: Side
    b: Side
    rows: list[dict]  # OUTPUT_KEYS
    dropped: list[str]
    notes: list[str]
    method: str
    scoring: str = DEFAULT_SCORING


def method_text(resamples: int, seed: int, scoring: str = DEFAULT_SCORING) -> str:
    return (f"scoring {scoring}; 95 % interval: paired bootstrap, {resamples} resamples of the shared problems "
            f"(one draw for A and B) and of the samples within each problem, percentile interval of B − A shifted by the bootstrap's bias; "
            f"p_value: paired permutation "
            f"test, {resamples} random A/B swaps per problem, two-sided; seed {seed}")


def _problem_rows(con, run_id: str, benchmark: str, scoring: str = DEFAULT_SCORING) -> dict[str, dict]:
    rows = _rows(con, f"SELECT * FROM {MART} WHERE run_id = ? AND benchmark = ? AND scoring = ? ORDER BY problem_id",
                 [run_id, benchmark, scoring])
    return {r["problem_id"]: r for r in rows}


def _setting(value) -> str:
    # The runs mart stores sampling settings as 32-bit floats: 0.6 reads back as 0.6000000238.
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _settings_notes(bench: str, a_row: dict, b_row: dict) -> list[str]:
    notes = []
    for column in ("temperature", "top_p", "max_tokens", "prompt_template", "reasoning_level"):
        a_value, b_value = _setting(a_row.get(column)), _setting(b_row.get(column))
        if a_value != b_value:
            notes.append(f"{bench}: {column} differs (A {a_value}, B {b_value}); the difference includes its effect")
    return notes


def compare_benchmark(con, bench: str, run_a: str, run_b: str, ks: list[int] | None, resamples: int,
                      seed: int, scoring: str = DEFAULT_SCORING) -> tuple[list[dict], list[str], list[str]]:
    """Rows for one benchmark, plus what was dropped and notes."""
    a_rows, b_rows = _problem_rows(con, run_a, bench, scoring), _problem_rows(con, run_b, bench, scoring)
    shared = sorted(set(a_rows) & set(b_rows))
    dropped, notes = [], []
    only_a, only_b = len(a_rows) - len(shared), len(b_rows) - len(shared)
    if only_a or only_b:
        dropped.append(f"{bench}: {only_a} problem(s) only A scored and {only_b} only B scored are left out; "
                       f"{len(shared)} shared")
    if len(shared) < 2:
        dropped.append(f"{bench}: not compared — A and B share {len(shared)} scored problem(s); a paired interval "
                       "over problems needs at least 2")
        return [], dropped, notes
    n = min(min(a_rows[p]["n"], b_rows[p]["n"]) for p in shared)
    cut_a = sum(a_rows[p]["n"] - n for p in shared)
    cut_b = sum(b_rows[p]["n"] - n for p in shared)
    if cut_a or cut_b:
        dropped.append(f"{bench}: compared on the first {n} scored samples of each problem (the fewest either run "
                       f"has); {cut_a} of A's and {cut_b} of B's samples left out")
    notes += _settings_notes(bench, a_rows[shared[0]], b_rows[shared[0]])
    metrics, too_large = metrics_for(n, ks)
    if too_large:
        dropped.append(f"{bench}: pass@{', pass@'.join(map(str, too_large))} left out — the runs share n = {n} "
                       "samples per problem and pass@k needs k <= n")
    side_a = run_arrays([a_rows[p] for p in shared], n)
    side_b = run_arrays([b_rows[p] for p in shared], n)
    for label, arrays in (("A", side_a), ("B", side_b)):
        if (arrays.correct == n).all():
            notes.append(f"{bench}: every compared sample of {label} is correct (ceiling): it cannot do better here")
        elif not arrays.correct.any():
            notes.append(f"{bench}: no compared sample of {label} is correct (floor): it cannot do worse here")
    rng = _rng(seed, bench)
    point_a, point_b = _point(metrics, side_a), _point(metrics, side_b)
    boot_a, boot_b = bootstrap(metrics, [side_a, side_b], resamples, rng)
    rows = []
    for m, metric in enumerate(metrics):
        a_value, b_value = float(point_a[m].mean()), float(point_b[m].mean())
        low, high = interval(boot_b[:, m] - boot_a[:, m], b_value - a_value, bounds=(-1.0, 1.0))
        rows.append(dict(benchmark=bench, metric=metric.name, a=a_value, b=b_value, diff=b_value - a_value,
                         ci_low=low, ci_high=high,
                         p_value=permutation_p_value(point_b[m] - point_a[m], resamples, rng),
                         n_problems=len(shared)))
    return rows, dropped, notes


def compare(con, a: str, b: str, benchmarks: list[str] | None = None, ks: list[int] | None = None,
            resamples: int = DEFAULT_RESAMPLES, seed: int = 0, scoring: str = DEFAULT_SCORING) -> Comparison:
    if scoring not in SCORINGS:
        raise UserError(f"--scoring: {scoring!r} is not one of {', '.join(SCORINGS)}")
    if resamples < 100:
        raise UserError(f"--resamples: at least 100 for a 95 % interval, got {resamples}")
    if ks is not None and any(k < 1 for k in ks):
        raise UserError(f"--k: every k must be >= 1, got {','.join(map(str, ks))}")
    _require_mart(con)
    side_a, side_b = resolve(con, a), resolve(con, b)
    ran = set(side_a.runs) | set(side_b.runs)
    wanted = benchmarks or sorted(ran)
    dropped = []
    for bench in wanted:
        if bench not in ran:
            dropped.append(f"{bench}: asked for, but neither ran it")
        elif bench not in side_a.runs or bench not in side_b.runs:
            dropped.append(f"{bench}: only {'A' if bench in side_a.runs else 'B'} ran it")
    both = [bench for bench in wanted if bench in side_a.runs and bench in side_b.runs]
    rows, notes = [], side_a.notes + side_b.notes
    for bench in both:
        if side_a.runs[bench] == side_b.runs[bench]:
            notes.append(f"{bench}: A and B are the same run ({side_a.runs[bench]}); every difference is 0")
        bench_rows, bench_dropped, bench_notes = compare_benchmark(con, bench, side_a.runs[bench], side_b.runs[bench],
                                                                  ks, resamples, seed, scoring)
        rows += bench_rows
        dropped += bench_dropped
        notes += bench_notes
    if not rows:
        raise UserError(f"nothing to compare between {a!r} and {b!r}: " + ("; ".join(dropped) or
                        "they share no benchmark"))
    return Comparison(side_a, side_b, rows, dropped, notes, method_text(resamples, seed, scoring), scoring)


# ------------------------------------------------------------------------------------- output


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _signed(value) -> str:
    return "—" if value is None else f"{100 * value:+.1f}"


def _p(value: float) -> str:
    # The smallest p a permutation test can give is 1 / (permutations + 1): not "0.000".
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def render_table(comparison: Comparison) -> str:
    header = ["benchmark", "metric", "A %", "B %", "B−A", "95 % CI", "p", "problems"]
    body = [[r["benchmark"], r["metric"], _pct(r["a"]), _pct(r["b"]), _signed(r["diff"]),
             f"[{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]", _p(r["p_value"]), str(r["n_problems"])]
            for r in comparison.rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [f"A: {comparison.a.describe()}", f"B: {comparison.b.describe()}", comparison.method, ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *body]]
    if comparison.dropped:
        lines += ["", "left out:"] + [f"  - {d}" for d in comparison.dropped]
    if comparison.notes:
        lines += ["", "notes:"] + [f"  - {n}" for n in comparison.notes]
    run_ids = sorted({*comparison.a.runs.values(), *comparison.b.runs.values()})
    runs = ", ".join("'" + run.replace("'", "''") + "'" for run in run_ids)  # as SQL literals
    lines += ["", f'per-problem numbers: reasonlite sql "select * from {MART} where run_id in ({runs}) '
                  f'and scoring = \'{comparison.scoring}\'"']
    return "\n".join(lines)


def render_json(comparison: Comparison) -> str:
    import json

    return json.dumps([{key: row[key] for key in OUTPUT_KEYS} for row in comparison.rows], indent=2)


def render_csv(comparison: Comparison) -> str:
    import csv
    import io

    sink = io.StringIO()
    writer = csv.DictWriter(sink, fieldnames=list(OUTPUT_KEYS), lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: row[key] for key in OUTPUT_KEYS} for row in comparison.rows)
    return sink.getvalue().rstrip("\n")


def context_lines(comparison: Comparison) -> list[str]:
    """What json/csv print on stderr (stdout stays machine-readable)."""
    return ([f"A: {comparison.a.describe()}", f"B: {comparison.b.describe()}", comparison.method]
            + [f"left out: {d}" for d in comparison.dropped] + [f"note: {n}" for n in comparison.notes])


# ------------------------------------------------------------------------ Table 1 beside ours


PAPER_TABLE = (("avg@16", "avg"), ("pass@8", "pass"))


def _normalized(name: str | None) -> str:
    return re.sub(r"[^a-z0-9.]+", "", (name or "").lower())


def newest_runs(con) -> list[dict]:
    """The newest run of each (model name, benchmark): model_name, benchmark, run_id."""
    runs = sorted(_runs(con), key=_newest_first)
    chosen: dict[tuple, dict] = {}
    for run in runs:
        chosen.setdefault((run["eval_name"] or run["model_name"], run["benchmark"]), run)
    return [dict(model=model, benchmark=bench, run_id=run["run_id"], model_name=run["model_name"])
            for (model, bench), run in sorted(chosen.items())]


def run_intervals(con, run_id: str, benchmark: str, metrics_of, resamples: int, seed: int):
    """(metrics, point values, low, high, n, problems) of one run; samples cut to the run's fewest n."""

    rows = list(_problem_rows(con, run_id, benchmark).values())
    n = min(r["n"] for r in rows)
    arrays = run_arrays(rows, n)
    metrics = metrics_of(n)
    points = [float(v.mean()) for v in _point(metrics, arrays)]
    if len(rows) < 2 or not metrics:
        return metrics, points, [None] * len(metrics), [None] * len(metrics), n, len(rows)
    (boot,) = bootstrap(metrics, [arrays], resamples, _rng(seed, run_id, benchmark))
    lows, highs = zip(*(interval(boot[:, m], points[m], bounds=(0.0, 1.0)) for m in range(len(metrics))), strict=True)
    return metrics, points, list(lows), list(highs), n, len(rows)


def paper_figure(paper: dict, names: list[str], benchmark: str, metric: str):
    """The published number (%) for the first paper row whose name matches one of ``names``."""
    wanted = {_normalized(name) for name in names if name}
    for model in paper.get("models", []):
        if _normalized(str(model.get("model"))) in wanted:
            value = (model.get(benchmark) or {}).get(metric)
            return str(model["model"]), (float(value) if value is not None else None)
    return None, None


def table1_intervals(con, paper: dict, resamples: int = DEFAULT_RESAMPLES, seed: int = 0):
    """DataFrame: per model x paper benchmark x {avg@16, pass@8}: ours with its 95 % interval, the paper's figure.

    Values in %; ``metric_ours`` says which n ours used (avg@n; pass@8 needs n >= 8);
    ``paper_outside`` is True where the paper's number falls outside our interval."""
    import pandas as pd

    from evaluation.benchmarks import PAPER_BENCHMARKS

    def metrics_of(n):
        return [Metric(f"avg@{n}", "avg")] + ([Metric("pass@8", "pass", 8)] if n >= 8 else [])

    records = []
    for run in newest_runs(con):
        if run["benchmark"] not in PAPER_BENCHMARKS:
            continue
        metrics, points, lows, highs, n, problems = run_intervals(con, run["run_id"], run["benchmark"], metrics_of,
                                                                   resamples, seed)
        for paper_metric, kind in PAPER_TABLE:
            m = next((i for i, metric in enumerate(metrics) if metric.kind == kind), None)
            paper_model, published = paper_figure(paper, [run["model"], run["model_name"]], run["benchmark"],
                                                  paper_metric)
            ours, low, high = ((100 * points[m], *(100 * v if v is not None else None for v in (lows[m], highs[m])))
                               if m is not None else (None, None, None))
            outside = (None if published is None or low is None
                       else bool(published < low - 1e-9 or published > high + 1e-9))
            records.append(dict(model=run["model"], benchmark=run["benchmark"], metric=paper_metric,
                                metric_ours=metrics[m].name if m is not None else f"{paper_metric} (n={n} < 8)",
                                n=n, n_problems=problems, ours=ours, ci_low=low, ci_high=high,
                                paper_model=paper_model, paper=published, paper_outside=outside,
                                run_id=run["run_id"]))
    return pd.DataFrame.from_records(records, columns=[
        "model", "benchmark", "metric", "metric_ours", "n", "n_problems", "ours", "ci_low", "ci_high",
        "paper_model", "paper", "paper_outside", "run_id"])


def pass_curves(con, resamples: int = DEFAULT_RESAMPLES, seed: int = 0):
    """DataFrame: pass@k for k = 1..n (unbiased estimator, %) with its 95 % interval, per model x benchmark."""
    import pandas as pd

    records = []
    for run in newest_runs(con):
        metrics, points, lows, highs, n, problems = run_intervals(
            con, run["run_id"], run["benchmark"], lambda n: [Metric(f"pass@{k}", "pass", k) for k in range(1, n + 1)],
            resamples, seed)
        for metric, point, low, high in zip(metrics, points, lows, highs, strict=True):
            records.append(dict(model=run["model"], benchmark=run["benchmark"], k=metric.k, n=n, n_problems=problems,
                                pass_at_k=100 * point, ci_low=None if low is None else 100 * low,
                                ci_high=None if high is None else 100 * high, run_id=run["run_id"]))
    return pd.DataFrame.from_records(records, columns=["model", "benchmark", "k", "n", "n_problems", "pass_at_k",
                                                       "ci_low", "ci_high", "run_id"])


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value, digits: int = 1) -> str:
    return "—" if _missing(value) else f"{value:.{digits}f}"


def table1_markdown(table) -> str:
    """Markdown of table1_intervals (%); ✗ marks a paper figure outside our interval. Lake text is escaped."""
    lines = ["| model | benchmark | metric | ours (95 % CI) | paper | paper outside ours |", "|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        ours = "—" if _missing(r["ours"]) else f"{_cell(r['ours'])} [{_cell(r['ci_low'])}, {_cell(r['ci_high'])}]"
        paper = "—" if _missing(r["paper"]) else f"{_cell(r['paper'])} ({_md(r['paper_model'])})"
        mark = "—" if _missing(r["paper_outside"]) else ("✗ outside" if r["paper_outside"] else "inside")
        lines.append(f"| {_md(r['model'])} | {_md(r['benchmark'])} | {r['metric_ours']} | {ours} | {paper} | {mark} |")
    return "\n".join(lines)


def pass_curves_markdown(curves) -> str:
    """pass@k (%) per model x benchmark, one column per k."""
    if curves.empty:
        return ""
    ks = sorted(curves["k"].unique())
    lines = ["| model | benchmark | n | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|---" * (len(ks) + 3) + "|"]
    for (model, bench), group in curves.groupby(["model", "benchmark"], sort=True):
        values = dict(zip(group["k"], group["pass_at_k"], strict=True))
        lines.append(f"| {_md(model)} | {_md(bench)} | {group['n'].iloc[0]} | "
                     + " | ".join(_cell(values.get(k)) for k in ks) + " |")
    return "\n".join(lines)


def _md(text) -> str:
    import html

    # Lake text in markdown (and the HTML made of it): escaped, and no table-breaking pipe.
    return html.escape(str(text)).replace("|", "&#124;")
