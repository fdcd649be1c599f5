"""Model outputs with known gold answers, imported for real, then `reasonlite curate`: confident
votes agree with the gold answer, and `is_consistent` agrees with an independent grader
(math-verify, run directly on the final texts) whose verdicts curation never saw."""

from __future__ import annotations

import pytest

from tests.curation import lakes
from tests.curation.test_curation import _isolated_env, curate_cli, query
from warehouse import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory, benchmarks_dir):
    root = tmp_path_factory.mktemp("gold") / "warehouse"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _isolated_env(root).items():
            mp.setenv(key, value)
        outputs = lakes.graded_outputs(benchmarks_dir, root.parent / "teacher_outputs.jsonl")
        assert cli.main(["import-generations", str(outputs.jsonl), "--run-id", "imported-teacher",
                         "--model", "gpt-oss-120b", "--reasoning-level", "medium"]) == 0
        code, out, err = curate_cli()
        assert code == 0, out + err
        yield outputs


def _math_verify_equal(gold: str, text: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(f"${gold}$"), parse(text)))


def test_confident_votes_agree_with_gold(graded):
    labels = query("SELECT problem_id, label, label_source, confident FROM pseudo_labels")
    assert len(labels) == len(graded.gold)
    confident = [(pid, label) for pid, label, _, is_confident in labels if is_confident]
    assert len(confident) >= len(graded.gold) // 2  # the data plants 2/3 confident problems
    for pid, label in confident:
        assert _math_verify_equal(graded.gold[pid], f"$\\boxed{{{label}}}$"), (pid, label, graded.gold[pid])
    # Where the dataset label was wrong and the vote confident, curation fixed the label.
    fixed = [pid for pid, _ in confident if pid in graded.corrupted]
    assert fixed, "the data has corrupted labels under confident votes"
    assert all(dict(confident)[pid] != query(
        "SELECT dataset_label FROM pseudo_labels WHERE problem_id = ?", [pid])[0][0] for pid in fixed)


def test_is_consistent_agrees_with_independent_grader(graded):
    rows = query("SELECT j.problem_id, j.sample_idx, j.is_consistent, j.label FROM judged_generations AS j")
    assert len(rows) == len(graded.finals)
    checked = disagreements = 0
    for pid, idx, is_consistent, label in rows:
        if label is None or not _math_verify_equal(graded.gold[pid], f"$\\boxed{{{label}}}$"):
            continue  # judged against a wrong dataset label: not a statement about the gold answer
        truth = _math_verify_equal(graded.gold[pid], graded.finals[(pid, idx)])  # held back
        checked += 1
        if truth != is_consistent:
            disagreements += 1
            print("disagree:", pid, idx, graded.gold[pid], graded.finals[(pid, idx)], is_consistent)
    assert checked >= 250
    assert disagreements == 0
    kept_right = query("SELECT count(*) FROM judged_generations WHERE keep")[0][0]
    assert kept_right > 0
