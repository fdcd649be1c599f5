"""Near-duplicate problems (mart problem_duplicates, var drop_near_duplicates): planted duplicates
across sources (the same text, a spacing / LaTeX-spacing variant, a light paraphrase) are found,
and problems that differ in a number or in what they ask are not."""

from __future__ import annotations

import pytest

from tests.curation import lakes
from warehouse import dbt_plugin, lake
from warehouse.cli import main

MARBLES = ("A bag contains 5 red marbles and 7 blue marbles. Two marbles are drawn at random without "
           "replacement. What is the probability that both marbles are red? Express your answer as a "
           "common fraction.")
TRIANGLE = "In triangle $ABC$, $AB = 13$, $BC = 14$ and $CA = 15$. Find the area of the triangle."
PROBLEMS = {
    # problem_id: (text, label)
    "alpha:0": (TRIANGLE, "84"),
    "beta:0": (TRIANGLE, "84"),  # the same text in another source
    "gamma:0": ("  IN TRIANGLE $ABC$,  $AB=13$, $BC=14$ and $CA=15$. Find the area of the triangle!", "84"),
    "alpha:1": (r"Let $f(x) = \frac{1}{2}x^2 + 3x$. Find $f(4)$.", "20"),
    "beta:1": (r"Let \( f(x)=\dfrac {1}{2} x^2+3x \).   Find  \(f(4)\).", "20"),  # spacing, delimiters
    "alpha:2": (MARBLES, "5/33"),
    "beta:2": (MARBLES.replace("Express your answer", "Give your answer"), "5/33"),  # a light paraphrase
    # Not duplicates: one number differs (similarity 0.83, above the threshold) ...
    "alpha:3": (MARBLES.replace("5 red", "6 red"), "5/26"),
    "beta:3": ("Compute $17 \\times 23$.", "391"),
    "beta:4": ("Compute $17 \\times 24$.", "408"),
    # ... or the question differs (same numbers, similarity 0.67).
    "alpha:4": ("Find the sum of the roots of $x^2 - 5x + 6 = 0$.", "5"),
    "beta:5": ("Find the product of the roots of $x^2 - 5x + 6 = 0$.", "6"),
}
EXPECTED = {
    # duplicate: (kept problem, match_type, cluster size)
    "beta:0": ("alpha:0", "exact", 3),
    "gamma:0": ("alpha:0", "normalized", 3),
    "beta:1": ("alpha:1", "normalized", 2),
    "beta:2": ("alpha:2", "near", 2),
}


def test_the_threshold_separates_the_planted_pairs():
    """What the threshold (0.75) and the number key decide, on the planted texts themselves."""
    sim, numbers = dbt_plugin.problem_similarity, dbt_plugin.problem_numbers
    text = {pid: t for pid, (t, _) in PROBLEMS.items()}
    assert sim(text["alpha:1"], text["beta:1"]) == 1.0
    assert sim(text["alpha:0"], text["gamma:0"]) == 1.0
    assert 0.75 <= sim(text["alpha:2"], text["beta:2"]) < 1.0
    # A different number: as similar as the paraphrase, told apart by the numbers only.
    assert sim(text["alpha:2"], text["alpha:3"]) >= 0.75
    assert numbers(text["alpha:2"]) == "5 7" and numbers(text["alpha:3"]) == "6 7"
    assert numbers(text["alpha:4"]) == numbers(text["beta:5"]) and sim(text["alpha:4"], text["beta:5"]) < 0.75
    minhash = dbt_plugin.problem_minhash(text["alpha:0"])
    assert len(minhash) == dbt_plugin.MINHASH_PERMUTATIONS and minhash == dbt_plugin.problem_minhash(text["beta:0"])
    assert dbt_plugin.problem_minhash("  $ $ ") is None  # nothing to compare


def _curate(*args: str) -> None:
    assert main(["curate", "--quiet", *args]) == 0


_query = lakes.query_marts


@pytest.fixture(scope="module")
def duplicates_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("near-duplicates") / "warehouse"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in lake.env_for_root(root).items():
            mp.setenv(key, value)
        lakes.write_problems([
            {"problem_id": pid, "source": pid.split(":")[0], "prompt": text, "expected_answer": label}
            for pid, (text, label) in PROBLEMS.items()
        ])
        lakes.write_run("teacher-medium", "medium")
        lakes.write_generations([
            lakes.sample("teacher-medium", pid, k, "medium", text, answer=label)
            for pid, (text, label) in PROBLEMS.items() for k in range(4)
        ])
        _curate()
        default = {
            "duplicates": _query("SELECT problem_id, kept_problem_id, match_type, cluster_size, cross_source, "
                                 "similarity FROM problem_duplicates ORDER BY problem_id"),
            "dropped": _query("SELECT count(*) FROM int_sft_selection WHERE sft_drop_reason IS NOT NULL")[0][0],
            "examples": _query("SELECT count(*) FROM sft_examples")[0][0],
        }
        _curate("--vars", "{drop_near_duplicates: true}")
        dropped = {
            "reasons": dict(_query("SELECT problem_id, any_value(sft_drop_reason) FROM int_sft_selection "
                                   "GROUP BY problem_id")),
            "examples": _query("SELECT count(*) FROM sft_examples")[0][0],
            "funnel": _query("SELECT sum(n_rows) FROM curation_funnel WHERE stage = 'near_duplicate'")[0][0],
        }
        yield default, dropped


@pytest.mark.slow
def test_planted_duplicates_are_found_and_non_duplicates_are_not(duplicates_lake):
    default, _ = duplicates_lake
    found = {pid: (kept, match, size) for pid, kept, match, size, _, _ in default["duplicates"]}
    assert found == EXPECTED
    for pid, kept, _, _, cross_source, similarity in default["duplicates"]:
        assert cross_source and similarity >= 0.75, (pid, kept, similarity)


@pytest.mark.slow
def test_duplicates_leave_the_selection_only_when_asked(duplicates_lake):
    default, dropped = duplicates_lake
    assert default["dropped"] == 0 and default["examples"] == 4 * len(PROBLEMS)
    assert {pid for pid, reason in dropped["reasons"].items() if reason == "near_duplicate"} == set(EXPECTED)
    assert all(reason is None for pid, reason in dropped["reasons"].items() if pid not in EXPECTED)
    assert dropped["examples"] == 4 * (len(PROBLEMS) - len(EXPECTED))
    assert dropped["funnel"] == 4 * len(EXPECTED)
