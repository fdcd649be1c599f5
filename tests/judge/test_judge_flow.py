"""End to end on the CPU: import a teacher run, curate, `reasonlite judge` with a real (tiny) model
over only the pairs the grader abstained on, `--all`, `reasonlite vote-llm`, curate again; then
judged_generations.judge_source, judge_agreement and the funnel's LLM cost.

The tiny random model's outputs are noise (all unparseable: recorded as such). For verdicts the
marts must use, a second judge run with known outputs -- including hostile and malformed ones --
is written into the lake with the lake writer, as the curation tests write teacher runs.
"""

from __future__ import annotations

import duckdb
import pytest

from evaluation import grading
from evaluation.judge import grader_abstains, judge_unit_id, vote_unit_id
from tests.judge.scenario import ABSTAINED_PAIRS, ABSTAINED_PROBLEMS, PROBLEMS, write_run
from warehouse import lake
from warehouse.cli import main

CONFIG = "generation/configs/judge_cpu.yaml"
VOTE_CONFIG = "generation/configs/vote_llm_cpu.yaml"
PRIMES = "\\text{the set of all primes}"
SIMILAR = "\\triangle ABC \\sim \\triangle DEF"

# The known judge run: unit -> final text of its one sample.
CANNED_VERDICTS = {
    (PRIMES, "primes"): 'Both describe the primes.\n\\boxed{"match": true}',
    (PRIMES, "composite numbers"): '\\boxed{{"match": false}}',
    (SIMILAR, "\\triangle DEF \\sim \\triangle ABC"): '\\boxed{"match": "yes"}',  # not a JSON boolean
    (SIMILAR, "5"): '\\boxed{"match": true} \\boxed{"match": false}',  # contradicts itself
    ("1/2", "3"): '\\boxed{"match": true}',  # a pair the grader decided: must not change curation
}
CANNED_TALLIES = {
    "toy:0": '\\boxed{"primes": 3, "composite numbers": 1}',  # same top answer as the symbolic vote
    "toy:2": '\\boxed{"3": 3, "1/2": 1}',  # disagrees
    "toy:1": '\\boxed{"a": 1.5}',  # malformed
}


def _write_known_judge_run() -> None:
    units = {judge_unit_id(*pair): text for pair, text in CANNED_VERDICTS.items()}
    units.update({vote_unit_id(pid): text for pid, text in CANNED_TALLIES.items()})
    lake.write_manifest("judge-known", purpose="judge", model="known-outputs", backend="import", n_samples=1,
                        status="complete")
    with lake.PartWriter("generations", defaults={"shard": 0}) as writer:
        for unit_id, text in units.items():
            writer.add({"run_id": "judge-known", "problem_id": unit_id, "sample_idx": 0, "model": "known-outputs",
                        "backend": "import", "prompt": "(known)", "completion": text, "final": text,
                        "finish_reason": "stop", "prompt_tokens": 100, "completion_tokens": 10,
                        "created_at": lake.now_utc()})


def _sql(query: str) -> list[tuple]:
    con = duckdb.connect(str(lake.database_path()), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _lake(query: str) -> list[tuple]:
    from warehouse import db

    con = db.connect(marts=False)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_judge_sends_only_abstained_pairs_and_marts_use_the_verdicts(lake_env, tmp_path, tiny_llama_dir, capsys):
    tiny = ["--set", f"model={tiny_llama_dir}", "--set", "sampling.max_tokens=8", "--no-progress"]
    assert main(["import-generations", str(write_run(tmp_path / "run.jsonl")), "--run-id", "teacher-toy",
                 "--model", "toy-teacher", "--reasoning-level", "medium"]) == 0
    assert main(["curate", "--quiet", "--no-test"]) == 0  # the data tests run on the second build

    # What the marts call abstained is what the grader's own Python API says, pair by pair.
    flagged = set(_sql("SELECT DISTINCT label, answer FROM judged_generations WHERE grader_abstained"))
    for _, (_, label, samples) in PROBLEMS.items():
        for answer, _finish in samples:
            gold_key, key = grading.canonical_key(label), grading.canonical_key(answer)
            if grader_abstains(gold_key, key, grading.answers_equal(label, answer)):
                assert (label, answer) in flagged or _finish != "stop"
    assert flagged == ABSTAINED_PAIRS

    capsys.readouterr()
    assert main(["judge", "--config", CONFIG, "--dry-run", *tiny]) == 0
    assert f"{len(ABSTAINED_PAIRS)} (label, answer) pairs" in capsys.readouterr().out
    assert not _lake("SELECT 1 FROM generations WHERE run_id = 'judge-cpu-smollm2'")  # dry run sent nothing

    # The real judge run: exactly one unit per abstained pair, nothing else.
    assert main(["judge", "--config", CONFIG, *tiny]) == 0
    sent = dict(_lake("SELECT problem_id, count(*) FROM generations WHERE run_id = 'judge-cpu-smollm2' "
                      "GROUP BY problem_id"))
    assert set(sent) == {judge_unit_id(*p) for p in ABSTAINED_PAIRS} and set(sent.values()) == {1}
    manifest = lake.read_manifest("judge-cpu-smollm2")
    assert manifest["purpose"] == "judge" and manifest["status"] == "complete"
    prompt = _lake(f"SELECT prompt FROM generations WHERE problem_id = '{judge_unit_id(PRIMES, 'primes')}'")[0][0]
    assert "Ground truth answer:\n" + PRIMES in prompt and "<|im_start|>user" in prompt  # the chat template
    # Resumable: a second call sends nothing new.
    assert main(["judge", "--config", CONFIG, *tiny]) == 0
    assert _lake("SELECT count(*) FROM generations WHERE run_id = 'judge-cpu-smollm2'")[0][0] == len(ABSTAINED_PAIRS)

    # For comparison: every pair, and upstream's LLM tally for every problem.
    assert main(["judge", "--config", CONFIG, "--all", *tiny]) == 0
    all_pairs = _sql("SELECT count(DISTINCT (label, answer)) FROM judged_generations WHERE is_well_formed")[0][0]
    assert _lake("SELECT count(*) FROM generations WHERE run_id = 'judge-cpu-smollm2'")[0][0] == all_pairs
    assert main(["vote-llm", "--config", VOTE_CONFIG, "--dry-run", *tiny]) == 0
    assert f"{len(ABSTAINED_PROBLEMS)} problems" in capsys.readouterr().out
    assert main(["vote-llm", "--config", VOTE_CONFIG, "--all", *tiny]) == 0
    assert {r[0] for r in _lake("SELECT problem_id FROM generations WHERE run_id = 'vote-llm-cpu-smollm2'")} == \
        {vote_unit_id(pid) for pid in PROBLEMS}
    vote_prompt = _lake("SELECT prompt FROM generations WHERE problem_id = 'vote:toy:0'")[0][0]
    assert "Answer Index 0:\nprimes\n\nAnswer Index 1:\nprimes\n\n" in vote_prompt

    _write_known_judge_run()
    assert main(["curate", "--quiet"]) == 0

    verdicts = dict(_sql("SELECT unit_id, llm_status FROM int_llm_verdicts"))
    assert verdicts[judge_unit_id(PRIMES, "primes")] == "match"
    assert verdicts[judge_unit_id(PRIMES, "composite numbers")] == "no_match"
    assert verdicts[judge_unit_id(SIMILAR, "5")] == "unparseable"  # recorded, not guessed
    assert verdicts[judge_unit_id(SIMILAR, "\\triangle DEF \\sim \\triangle ABC")] == "unparseable"

    rows = {(p, i): (src, consistent, keep) for p, i, src, consistent, keep in _sql(
        "SELECT problem_id, sample_idx, judge_source, is_consistent, keep FROM judged_generations")}
    assert rows[("toy:0", 0)] == rows[("toy:0", 1)] == ("llm", True, True)  # "primes": the LLM said match
    assert rows[("toy:0", 3)] == ("llm", False, False)
    assert rows[("toy:1", 1)][0] == rows[("toy:1", 2)][0] == "none"  # abstained, no usable verdict
    assert rows[("toy:1", 3)][0] == "none"  # truncated: no label check
    assert rows[("toy:2", 2)] == ("symbolic", False, False)  # decided by the grader; the LLM's "true" ignored
    assert rows[("toy:0", 2)][0] == rows[("toy:3", 0)][0] == "symbolic"

    funnel = {stage: (n, pairs, tokens) for stage, n, pairs, tokens in _sql(
        "SELECT stage, n_rows, llm_pairs, llm_prompt_tokens + llm_completion_tokens FROM curation_funnel")}
    assert funnel["llm_needed"][0] == 5 and funnel["llm_needed"][1] == len(ABSTAINED_PAIRS)
    assert funnel["llm_judged"][0] == 3
    # the judge's token cost on the abstained pairs: the tiny model's rows and the known run's
    cost = _lake("SELECT sum(prompt_tokens + completion_tokens) FROM generations WHERE run_id LIKE 'judge-%' AND "
                 f"problem_id IN ({', '.join(repr(judge_unit_id(*p)) for p in ABSTAINED_PAIRS)})")[0][0]
    assert funnel["llm_needed"][2] == cost > 0

    summary = {(c, s): (n_llm, n_cmp, n_agree, rate) for c, s, n_llm, n_cmp, n_agree, rate in _sql(
        "SELECT comparison, scope, n_llm, n_compared, n_agree, agreement_rate FROM judge_agreement "
        "WHERE row_type = 'summary'")}
    all_units = _sql("SELECT count(DISTINCT judge_unit_id) FROM judged_generations WHERE is_well_formed")[0][0]
    # abstained: 4 pairs judged, 2 parsed; the grader's fallback says no_match to both, the LLM says
    # match to "primes": 1 of 2 agree
    assert summary[("verdict", "grader_abstained")] == (4, 2, 1, 0.5)
    assert summary[("verdict", "grader_decided")][:3] == (all_units - 4, 1, 0)  # only ("1/2", "3") parsed
    assert summary[("verdict", "all")][:3] == (all_units, 3, 1)
    assert summary[("tally", "all")][:3] == (4, 2, 1)
    disagreements = _sql("SELECT comparison, gold, answer, problem_id, symbolic, llm FROM judge_agreement "
                         "WHERE row_type = 'disagreement' ORDER BY ALL")
    assert ("tally", None, None, "toy:2", "0.5 (3/4)", "3 (3/4)") in disagreements
    assert ("verdict", "1/2", "3", None, "no_match", "match") in disagreements
    assert ("verdict", PRIMES, "primes", None, "no_match", "match") in disagreements
    tally = _sql("SELECT top_agrees, llm_status, llm_top_answer FROM int_llm_tallies WHERE problem_id = 'toy:0'")
    assert tally == [(True, "parsed", "primes")]

    capsys.readouterr()
    assert main(["sql", "select * from judge_agreement"]) == 0
    assert "summary" in capsys.readouterr().out
