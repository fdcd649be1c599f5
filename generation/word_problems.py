"""A deterministic generator of math word problems with known answers, for the CPU demo.

Arithmetic and simple algebra at graded difficulty (1 = a bare sum, difference or product of
small numbers, 2 = the same inside a story, up to 5 = two-step algebra with fractions). Level 1
is there so that a 135M model, which solves few word problems, still gets some right. The same
seed always gives the same problems, so the demo's lake is reproducible and a re-run finds every
problem already ingested. Answers are exact: integers or reduced fractions written as ``a/b``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

NAMES = ["Ava", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jia", "Kofi", "Lena"]
ITEMS = ["apples", "marbles", "stickers", "pencils", "cookies", "stamps", "books", "shells"]


def _answer(value: Fraction | int) -> str:
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _arithmetic(rng: random.Random) -> tuple[str, Fraction]:
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    op = rng.choice(["+", "-", "times"])
    if op == "times":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return f"What is {a} times {b}?", Fraction(a * b)
    if op == "-":
        a, b = max(a, b), min(a, b)
        return f"What is {a} - {b}?", Fraction(a - b)
    return f"What is {a} + {b}?", Fraction(a + b)


def _add(rng: random.Random) -> tuple[str, Fraction]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    return f"{name} has {a} {item} and finds {b} more. How many {item} does {name} have now?", Fraction(a + b)


def _subtract(rng: random.Random) -> tuple[str, Fraction]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a = rng.randint(20, 90)
    b = rng.randint(1, a - 1)
    return f"{name} had {a} {item} and gave away {b}. How many {item} are left?", Fraction(a - b)


def _multiply(rng: random.Random) -> tuple[str, Fraction]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    boxes, per_box = rng.randint(3, 12), rng.randint(3, 15)
    question = f"{name} buys {boxes} boxes with {per_box} {item} in each box. How many {item} is that in total?"
    return question, Fraction(boxes * per_box)


def _share(rng: random.Random) -> tuple[str, Fraction]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    people = rng.randint(2, 9)
    total = people * rng.randint(2, 12) + rng.choice([0, 0, rng.randint(1, people - 1)])
    question = (f"{name} shares {total} {item} equally among {people} friends. How many {item} does each "
                "friend get? Give an exact number (a fraction if needed).")
    return question, Fraction(total, people)


def _two_step(rng: random.Random) -> tuple[str, Fraction]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = rng.randint(10, 50), rng.randint(2, 6), rng.randint(1, 20)
    question = (f"{name} has {a} {item}, then collects {b - 1} times as many again, and then loses {c}. "
                f"How many {item} does {name} have?")
    return question, Fraction(a * b - c)


def _linear(rng: random.Random) -> tuple[str, Fraction]:
    x = rng.randint(-12, 12)
    a = rng.choice([2, 3, 4, 5, 6, 7])
    b = rng.randint(-20, 20)
    return f"Solve for x: {a}x + ({b}) = {a * x + b}.", Fraction(x)


def _linear_fraction(rng: random.Random) -> tuple[str, Fraction]:
    a, b, c = rng.randint(2, 9), rng.randint(1, 15), rng.randint(16, 40)
    return f"Solve for x: {a}x + {b} = {c}. Give x as a reduced fraction.", Fraction(c - b, a)


def _fraction_sum(rng: random.Random) -> tuple[str, Fraction]:
    p, q = rng.randint(1, 5), rng.randint(2, 9)
    r, s = rng.randint(1, 5), rng.randint(2, 9)
    return f"Compute {p}/{q} + {r}/{s} and write the result as a reduced fraction.", Fraction(p, q) + Fraction(r, s)


def _age(rng: random.Random) -> tuple[str, Fraction]:
    child = rng.randint(4, 15)
    factor = rng.randint(2, 4)
    years = rng.randint(2, 10)
    name = rng.choice(NAMES)
    question = (f"{name}'s mother is {factor} times as old as {name}, who is {child}. "
                f"How old will the mother be in {years} years?")
    return question, Fraction(factor * child + years)


# Difficulty levels: each draws from its own templates.
LEVELS: dict[int, list[Callable[[random.Random], tuple[str, Fraction]]]] = {
    1: [_arithmetic],
    2: [_add, _subtract],
    3: [_multiply, _age],
    4: [_two_step, _linear, _share],
    5: [_linear_fraction, _fraction_sum],
}


def generate(n: int, seed: int = 0, levels: tuple[int, ...] = tuple(LEVELS)) -> list[dict]:
    """``n`` distinct problems, difficulties cycling through ``levels``, as ``{problem, answer, difficulty}``."""
    unknown = sorted(set(levels) - set(LEVELS))
    if not levels or unknown:
        raise ValueError(f"levels: expected some of {sorted(LEVELS)}, got {list(levels)}")
    rng = random.Random(seed)
    problems: list[dict] = []
    seen: set[str] = set()
    while len(problems) < n:
        level = levels[len(problems) % len(levels)]
        question, value = rng.choice(LEVELS[level])(rng)
        if question in seen:
            continue
        seen.add(question)
        problems.append({"problem": question, "answer": _answer(value), "difficulty": str(level)})
    return problems


def write_splits(out_dir: Path, n_train: int, n_heldout: int, seed: int = 0,
                 levels: tuple[int, ...] = tuple(LEVELS)) -> dict[str, Path]:
    """Write ``train.jsonl`` and ``heldout.jsonl``; the splits never share a problem."""
    problems = generate(n_train + n_heldout, seed=seed, levels=levels)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in (("train", problems[:n_train]), ("heldout", problems[n_train:])):
        path = out_dir / f"{split}.jsonl"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
        tmp.replace(path)
        paths[split] = path
    return paths
