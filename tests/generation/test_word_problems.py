"""The demo's problem generator: deterministic, distinct, exact answers."""

import json
from fractions import Fraction

from generation.word_problems import generate, write_splits


def test_same_seed_same_problems_and_distinct():
    first, again = generate(200, seed=7), generate(200, seed=7)
    assert first == again
    assert len({p["problem"] for p in first}) == 200
    assert generate(20, seed=8) != generate(20, seed=7)
    assert {p["difficulty"] for p in first} == {"1", "2", "3", "4", "5"}


def test_answers_are_exact_and_check_out():
    for row in generate(400, seed=1):
        value = Fraction(row["answer"])  # integers or reduced a/b
        assert row["answer"] == (str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}")
        if row["problem"].startswith("Solve for x:") and "reduced" not in row["problem"]:
            lhs, rhs = row["problem"].removeprefix("Solve for x: ").rstrip(".").split(" = ")
            a, b = lhs.split("x + ")
            assert int(a) * value + int(b.strip("()")) == int(rhs)


def test_splits_do_not_overlap(tmp_path):
    paths = write_splits(tmp_path, 30, 10, seed=3)
    train = [json.loads(line)["problem"] for line in paths["train"].read_text().splitlines()]
    heldout = [json.loads(line)["problem"] for line in paths["heldout"].read_text().splitlines()]
    assert len(train) == 30 and len(heldout) == 10 and not set(train) & set(heldout)
