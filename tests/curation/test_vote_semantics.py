"""Vote semantics (vars vote_scope, vote_denominator): ours -- one vote per problem over the medium
and high runs, share of the answered samples -- and upstream's (`--vars-profile paper`) -- each run
votes on its own over every sample, truncated ones included, and its samples are judged against
its own label."""

from __future__ import annotations

import pytest
import yaml

from tests.curation import lakes
from warehouse import curate, lake
from warehouse.cli import main

MED, HIGH = "teacher-medium", "teacher-high"
TEXTS = {
    "v:levels": "The two reasoning levels disagree on this one.",
    "v:truncated": "Two of eleven samples run out of tokens.",
    "v:truncated_answer": "A truncated sample has boxed an answer already.",
    "v:unsampled": "No teacher has seen this problem.",
}
LABELS = {"v:levels": "1", "v:truncated": "2", "v:truncated_answer": "3", "v:unsampled": "4"}


def _samples() -> list[dict]:
    rows = []

    def add(run, pid, answers, start=0, **kw):
        level = "medium" if run == MED else "high"
        rows.extend(lakes.sample(run, pid, start + k, level, TEXTS[pid], answer=a, **kw) for k, a in enumerate(answers))

    # Each level is unanimous, on a different answer: pooled 5/10 fails, per run 5/5 passes twice.
    add(MED, "v:levels", ["7"] * 5)
    add(HIGH, "v:levels", ["8"] * 5)
    # 9 answered of 11: 9/9 passes, 9/11 = 0.82 does not.
    add(MED, "v:truncated", ["5"] * 9)
    add(MED, "v:truncated", [None, None], start=9, final=None, finish_reason="length")
    # A truncated sample that boxed 9: it votes only when every sample counts (4/5 = 0.8).
    add(MED, "v:truncated_answer", ["6"] * 4)
    add(MED, "v:truncated_answer", ["9"], start=4, finish_reason="length")
    return rows


_query = lakes.query_marts


def _labels() -> dict[tuple[str, str | None], tuple]:
    return {(pid, run): (label, source, n_samples, n_answered, round(share, 3) if share is not None else None)
            for pid, run, label, source, n_samples, n_answered, share in _query(
                "SELECT problem_id, vote_run_id, label, label_source, n_samples, n_answered, top_share "
                "FROM pseudo_labels")}


@pytest.fixture(scope="module")
def vote_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("vote-semantics") / "warehouse"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in lake.env_for_root(root).items():
            mp.setenv(key, value)
        lakes.write_problems([{"problem_id": pid, "source": "v", "prompt": text, "expected_answer": LABELS[pid]}
                              for pid, text in TEXTS.items()])
        lakes.write_run(MED, "medium")
        lakes.write_run(HIGH, "high")
        lakes.write_generations(_samples())
        results = {}
        for name, args in (("ours", []), ("paper", ["--vars-profile", "paper"])):
            assert main(["curate", "--quiet", *args]) == 0, name
            results[name] = {
                "labels": _labels(),
                "kept": dict(_query("SELECT run_id || '/' || problem_id, list(label ORDER BY sample_idx) "
                                    "FROM judged_generations WHERE keep GROUP BY ALL")),
                "sft_labels": _query("SELECT DISTINCT run_id, label FROM sft_examples "
                                     "WHERE problem_id = 'v:levels' ORDER BY run_id"),
            }
        yield results


@pytest.mark.slow
def test_default_is_one_pooled_vote_over_answered_samples(vote_lake):
    assert vote_lake["ours"]["labels"] == {
        ("v:levels", None): ("1", "dataset", 10, 10, 0.5),
        ("v:truncated", None): ("5", "vote", 11, 9, 1.0),
        ("v:truncated_answer", None): ("6", "vote", 5, 4, 1.0),
        ("v:unsampled", None): ("4", "dataset", 0, 0, None),
    }
    assert "teacher-high/v:levels" not in vote_lake["ours"]["kept"]  # 8 is not the dataset's 1


@pytest.mark.slow
def test_paper_profile_votes_per_run_over_every_sample(vote_lake):
    paper = vote_lake["paper"]
    assert paper["labels"] == {
        ("v:levels", MED): ("7", "vote", 5, 5, 1.0),
        ("v:levels", HIGH): ("8", "vote", 5, 5, 1.0),
        ("v:truncated", MED): ("2", "dataset", 11, 9, 0.818),
        ("v:truncated_answer", MED): ("3", "dataset", 5, 5, 0.8),
        ("v:unsampled", None): ("4", "dataset", 0, 0, None),
    }
    # Each run's samples are judged against that run's own label, and both reach SFT.
    assert paper["kept"]["teacher-medium/v:levels"] == ["7"] * 5
    assert paper["kept"]["teacher-high/v:levels"] == ["8"] * 5
    assert paper["sft_labels"] == [(HIGH, "8"), (MED, "7")]
    assert "teacher-medium/v:truncated" not in paper["kept"]  # 5 is not the dataset's 2


def test_paper_profile_holds_upstreams_values():
    assert curate.vars_profile("paper") == {"vote_scope": "per_run", "vote_denominator": "all",
                                            "vote_ratio": 0.9, "min_votes": 4}
    declared = yaml.safe_load((curate.PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert (declared["vote_scope"], declared["vote_denominator"]) == ("pooled", "answered")
