"""Grader throughput: the batch API of ``evaluation.grading`` against a plain math-verify loop.

Two data shapes, generated deterministically from a seed, each graded by both systems on the
same strings in the same process:

* **vote** -- ``n_problems`` problems x ``samples`` (16) answers each, as majority voting sees
  them: a few surface forms of the right value (``1/2``, ``0.5``, ``\\frac{1}{2}``) and a few
  wrong values, heavily repeated;
* **distinct** -- every answer string and every (gold, prediction) pair occurs once.

Both shapes also hold **hard negatives** (``hard_negatives``: near values, swapped variables,
permuted tuples, sets vs tuples, constants vs units, percent, scientific notation, equations,
no-commitment prose), and every pair carries its planted truth.

For keys the baseline is ``math_verify.parse`` per answer; for equality ``verify(parse(gold),
parse(pred))`` per pair. math-verify reads LaTeX only inside delimiters, so each side is shown to
it as the grader shows it (a bare answer wrapped in ``$...$``, ``mathverify._mv_variants``): fed
bare strings it would read ``\\frac{3}{4}`` as nothing and ``23\\sqrt{6}`` as 23, and the
comparison would measure that. Ours is ``canonical_keys(answers)`` and ``answers_equal_many(pairs)``
with cold caches (the worker processes are started before the clock runs). Printed: answers/s
(keys), pairs/s (equality), the ratio, and for each system false positives and false negatives
against the planted truth. ``python -m tests.benchmarks.bench_grader --n 200 --n-distinct 1000``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from fractions import Fraction

from evaluation import grading

TEXTS = ["odd", "even", "neither", "yes", "no"]
LETTERS = "ABCDE"
WRAPPERS = [("{}", 6), ("\\boxed{{{}}}", 3), ("The final answer is ${}$.", 1)]


def _frac(v: Fraction) -> str:
    return f"\\frac{{{v.numerator}}}{{{v.denominator}}}" if v >= 0 else f"-\\frac{{{-v.numerator}}}{{{v.denominator}}}"


def _decimal(v: Fraction) -> str | None:
    for k in range(1, 5):
        if 10 ** k % v.denominator == 0:
            return f"{float(v):.{k}f}"
    return None


def make_problem(rng: random.Random, i: int) -> tuple[str, list[str], list[str]]:
    """(gold, correct surface forms, wrong answers) of problem ``i``; values vary with ``i`` so
    that distinct problems have distinct answers."""
    kind = rng.choices(["int", "frac", "radical", "pi", "set", "interval", "text", "choice", "poly"],
                       weights=[40, 18, 10, 6, 6, 5, 5, 5, 5])[0]
    if kind == "int":
        v = 1000 * i + rng.randint(0, 999)
        forms = [str(v), f"{v:,}", f"{v}.0", f"x = {v}"]
        wrong = [str(v + d) for d in rng.sample([-10, -2, -1, 1, 2, 3, 7, 100], 3)]
        return str(v), forms, wrong
    if kind == "frac":
        q = rng.choice([2, 3, 4, 5, 6, 7, 8, 9, 12, 16])
        v = Fraction(rng.randint(1, 4 * q) + 40 * i * q, q)
        if v.denominator == 1:
            v += Fraction(1, q if q > 1 else 2)
        forms = [_frac(v), f"{v.numerator}/{v.denominator}", f"\\dfrac{{{v.numerator}}}{{{v.denominator}}}",
                 f"\\frac{{{2 * v.numerator}}}{{{2 * v.denominator}}}"]
        if (d := _decimal(v)) is not None:
            forms.insert(1, d)
        wrong = [_frac(v + Fraction(1, v.denominator)), _frac(1 / v), f"{v.numerator}/{v.denominator + 1}"]
        return _frac(v), forms, wrong
    if kind == "radical":
        a, b = rng.randint(2, 9) + 10 * i, rng.choice([2, 3, 5, 6, 7])
        forms = [f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}", f"{a} \\sqrt {b}"]
        wrong = [f"{a}\\sqrt{{{b + 1}}}", f"{a + 1}\\sqrt{{{b}}}", f"\\sqrt{{{a * b}}}"]
        return forms[0], forms, wrong
    if kind == "pi":
        a, b = rng.randint(1, 9) + 10 * i, rng.choice([2, 3, 4, 6])
        forms = [f"\\frac{{{a}\\pi}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}\\pi", f"{a}\\pi/{b}"]
        wrong = [f"\\frac{{{a + 1}\\pi}}{{{b}}}", f"\\frac{{{a}\\pi}}{{{b + 1}}}"]
        return forms[0], forms, wrong
    if kind == "set":
        a, b = sorted(rng.sample(range(-9 - i, 10 + i), 2))
        forms = [f"\\{{{a}, {b}\\}}", f"{a}, {b}", f"{b}, {a}", f"x = {a}, x = {b}"]
        wrong = [str(a), f"{a}, {b + 1}", f"\\{{{-a}, {b}\\}}"]
        return forms[0], forms, wrong
    if kind == "interval":
        a, b = sorted(rng.sample(range(-9 - i, 10 + i), 2))
        forms = [f"[{a}, {b})", f"x \\in [{a},{b})", f"\\left[{a}, {b}\\right)"]
        wrong = [f"({a}, {b})", f"[{a}, {b}]", f"[{a}, {b + 1})"]
        return forms[0], forms, wrong
    if kind == "text":
        t = rng.choice(TEXTS)
        forms = [f"\\text{{{t}}}", t, t.capitalize()]
        wrong = [f"\\text{{{w}}}" for w in TEXTS if w != t][:2]
        return forms[0], forms, wrong
    if kind == "choice":
        c = rng.choice(LETTERS)
        forms = [c, f"({c})", f"\\text{{({c})}}"]
        wrong = [w for w in LETTERS if w != c][:3]
        return c, forms, wrong
    a, b = rng.randint(1, 9) + i, rng.randint(1, 9)
    forms = [f"(x+{a})(x+{b})", f"x^2+{a + b}x+{a * b}", f"(x+{b})(x+{a})"]
    wrong = [f"(x+{a})(x-{b})", f"x^2+{a + b}x+{a * b + 1}"]
    return forms[0], forms, wrong


def hard_negatives(rng: random.Random, i: int) -> list[tuple[str, str]]:
    """(gold, prediction) pairs that are *not* equal but look alike, one per class, values varying
    with ``i``."""
    v, a, b, q = 7 * i + rng.randint(2, 9), rng.randint(2, 9), rng.randint(10, 19), rng.choice([3, 6, 7, 9])
    m = rng.randint(100, 899) / 100
    return [
        (f"{v}", f"{v + 1}"),  # near values
        (f"{v}.5", f"{v}.5001"),
        (f"y = {v}", f"x = {v}"),  # swapped variables
        (f"y = {a}x+{b}", f"x = {a}x+{b}"),
        (f"a = {a}, b = {b}", f"x = {a}, y = {b}"),
        (rf"\sin(x)=\frac{{1}}{{{q}}}", rf"\cos(x)=\frac{{1}}{{{q}}}"),
        (f"({a}, {b}, {v})", f"({b}, {a}, {v})"),  # permuted tuples
        (rf"\{{{a}, {b}\}}", f"({a}, {b})"),  # sets vs tuples
        (rf"{v}\mathrm{{e}}", f"{v}"),  # constants vs units
        (rf"{a}\text{{i}}", f"{a}"),
        (rf"\frac{{1}}{{{q}}}\%", rf"\frac{{1}}{{{q}}}"),  # percent
        (rf"{m:.2f}\times10^{{-11}}", rf"{m + 0.01:.2f}\times10^{{-11}}"),  # scientific notation
        (rf"{m:.2f}\times10^{{-11}}", "0"),
        (f"x^2+{a}=0", f"x^2+{a + 1}=0"),  # equations
        (rf"\frac{{1}}{{{q}}}", f"{1 / q:.2f}"),  # a rounded decimal for an exact value
        (rf"{a}\sqrt{{2}}", f"{a * 2 ** 0.5:.2f}"),
        (f"{v}", f"We tried {v} but it fails, so it is impossible to determine."),  # no commitment
    ]


def _wrap(rng: random.Random, answer: str) -> str:
    fmt = rng.choices([w for w, _ in WRAPPERS], weights=[n for _, n in WRAPPERS])[0]
    return fmt.format(answer)


def vote_data(n_problems: int, seed: int, samples: int = 16) -> list[tuple[str, str, bool]]:
    """(gold, prediction, truth): per problem a few surface forms and wrong answers, repeated;
    every tenth problem also brings its hard negatives."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n_problems):
        gold, forms, wrong = make_problem(rng, i)
        popular = forms[: rng.randint(2, 3)]  # most samples use two or three surface forms
        p_right = rng.uniform(0.3, 0.95)
        for _ in range(samples):
            right = rng.random() < p_right
            ans = rng.choice(popular) if right else rng.choice(wrong[:2])
            pairs.append((gold, ans if rng.random() < 0.8 else _wrap(rng, ans), right))
        if i % 10 == 0:
            pairs += [(g, p, False) for g, p in hard_negatives(rng, i)]
    return pairs


def distinct_data(n: int, seed: int) -> list[tuple[str, str]]:
    """(gold, prediction) pairs in which no string repeats: half right in another form."""
    rng = random.Random(seed + 1)
    pairs, seen = [], set()
    for i in range(n):
        gold, forms, wrong = make_problem(rng, i)
        right = rng.random() < 0.5
        pool = forms[1:] if right else wrong
        pred = _wrap(rng, rng.choice(pool)) if rng.random() < 0.3 else rng.choice(pool)
        if gold in seen or pred in seen or gold == pred:
            continue
        seen.update((gold, pred))
        pairs.append((gold, pred, right))
        if i % 10 == 0:
            for g, p in hard_negatives(rng, 1000 + i):
                if g not in seen and p not in seen:
                    seen.update((g, p))
                    pairs.append((g, p, False))
    return pairs


def _shown(answer: str) -> str:
    """What the grader shows math-verify for an answer (a bare answer wrapped in ``$...$``)."""
    from evaluation.grading import keys, mathverify

    return mathverify._mv_variants(answer, keys._prepare(answer)[1])[0]


def _mv_keys(answers):
    from math_verify import parse

    return [parse(a) for a in answers]


def _mv_equal(pairs):
    from math_verify import parse, verify

    return [bool(verify(parse(g), parse(p))) for g, p in pairs]


def _errors(verdicts: list[bool], truth: list[bool]) -> dict:
    negatives, positives = truth.count(False), truth.count(True)
    fp = sum(v and not t for v, t in zip(verdicts, truth, strict=True))
    fn = sum(t and not v for v, t in zip(verdicts, truth, strict=True))
    return {"false_positives": fp, "negatives": negatives, "false_negatives": fn, "positives": positives,
            "fp_rate": fp / negatives if negatives else 0.0, "fn_rate": fn / positives if positives else 0.0}


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def measure(pairs: list[tuple]) -> dict:
    """Both systems on the same (gold, prediction[, truth]) pairs (a missing side is dropped);
    with the truth, false positives / negatives of each. math-verify sees what the grader shows
    it (not timed: the grader's own wrapping is part of its time)."""
    rows = [r for r in pairs if isinstance(r[0], str) and isinstance(r[1], str)]
    pairs = [(r[0], r[1]) for r in rows]
    truth = [bool(r[2]) for r in rows] if rows and len(rows[0]) > 2 else None
    answers = [x for pair in pairs for x in pair]
    grading._clear_caches()
    _, ours_keys_s = _timed(grading.canonical_keys, answers)
    grading._clear_caches()
    ours_eq, ours_eq_s = _timed(grading.answers_equal_many, pairs)
    shown = {a: _shown(a) for a in dict.fromkeys(answers)}
    _, mv_keys_s = _timed(_mv_keys, [shown[a] for a in answers])
    mv_eq, mv_eq_s = _timed(_mv_equal, [(shown[g], shown[p]) for g, p in pairs])
    agree = sum(a == b for a, b in zip(ours_eq, mv_eq, strict=True))
    return {
        "answers": len(answers),
        "distinct_answers": len(set(answers)),
        "pairs": len(pairs),
        "distinct_pairs": len(set(pairs)),
        "keys": {"ours_per_s": len(answers) / ours_keys_s, "math_verify_per_s": len(answers) / mv_keys_s,
                 "ratio": mv_keys_s / ours_keys_s, "ours_s": ours_keys_s, "math_verify_s": mv_keys_s},
        "equality": {"ours_per_s": len(pairs) / ours_eq_s, "math_verify_per_s": len(pairs) / mv_eq_s,
                     "ratio": mv_eq_s / ours_eq_s, "ours_s": ours_eq_s, "math_verify_s": mv_eq_s},
        "verdicts": {"agree": agree / len(pairs), "ours_only_true": sum(a and not b for a, b in zip(ours_eq, mv_eq, strict=True)),
                     "math_verify_only_true": sum(b and not a for a, b in zip(ours_eq, mv_eq, strict=True))},
        "errors": None if truth is None else {"ours": _errors(ours_eq, truth), "math_verify": _errors(mv_eq, truth)},
    }


def run(n_problems: int = 200, seed: int = 0, samples: int = 16, n_distinct: int | None = None) -> dict:
    """Both data shapes; ``n_distinct`` defaults to ``5 * n_problems`` pairs."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its per-call timeout warnings
    grading.answers_equal_many([("x^2+1", r"\sin x"), ("$x$", "$y$")])  # start the workers off the clock
    from math_verify import parse, verify

    verify(parse("$\\frac{1}{2}$"), parse("$0.5$"))  # warm math-verify too
    return {
        "seed": seed,
        "workers": grading.MAX_WORKERS,
        "vote": measure(vote_data(n_problems, seed, samples)),
        "distinct": measure(distinct_data(n_distinct if n_distinct is not None else 5 * n_problems, seed)),
    }


def report(result: dict) -> str:
    lines = [f"{'data':<9} {'task':<9} {'items':>7} {'distinct':>8} {'ours/s':>10} {'math-verify/s':>14} {'ratio':>7}"]
    for shape in ("vote", "distinct"):
        r = result[shape]
        for task, items, distinct in (("keys", r["answers"], r["distinct_answers"]),
                                      ("equality", r["pairs"], r["distinct_pairs"])):
            t = r[task]
            lines.append(f"{shape:<9} {task:<9} {items:>7} {distinct:>8} {t['ours_per_s']:>10.0f} "
                         f"{t['math_verify_per_s']:>14.0f} {t['ratio']:>6.1f}x")
        v = r["verdicts"]
        lines.append(f"{'':<9} verdicts agree on {100 * v['agree']:.1f}% of pairs "
                     f"(only ours true: {v['ours_only_true']}, only math-verify true: {v['math_verify_only_true']})")
        for system, e in (r.get("errors") or {}).items():
            lines.append(f"{'':<9} {system}: false positives {e['false_positives']}/{e['negatives']} "
                         f"({100 * e['fp_rate']:.1f}%), false negatives {e['false_negatives']}/{e['positives']} "
                         f"({100 * e['fn_rate']:.1f}%)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="vote-shaped problems (x --samples answers each)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--n-distinct", type=int, default=None, help="all-distinct pairs (default 5 x --n)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args(argv)
    result = run(args.n, args.seed, args.samples, args.n_distinct)
    print(report(result))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
