"""Upstream ReasonLite's own files (`datas/<exp>/`), imported as they are, and its training format out.

The fixture folder tests/fixtures/upstream/datas/demo/ is hand-made in upstream's exact shapes (its
README cites the upstream code of each field).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from evaluation.judge import judge_unit_id, parse_tally, parse_verdict, vote_unit_id
from tests.training.sft_data import SCHEMA, seal_strata, write_segments
from warehouse import db, lake, upstream
from warehouse.cli import main

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "upstream" / "datas" / "demo"
LATEST_ORIGIN = DEMO / "answer_origin" / "20251009_083232" / "0_1.jsonl"
MODEL = "openai/gpt-oss-120b"
INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
PRIMES = "\\text{the primes}"


def lake_rows(sql: str) -> list[tuple]:
    con = db.connect(marts=False)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def marts(sql: str) -> list[tuple]:
    con = duckdb.connect(str(lake.database_path()), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("reasonlite import-generations: error: ") and len(err.splitlines()) == 1, err
    return err


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_upstream_answer_origin_file_imports_as_it_is(lake_env, capsys):
    # Before: "row 0: column 'problem_id' is missing or null".
    assert main(["import-generations", str(LATEST_ORIGIN), "--model", MODEL]) == 0
    assert "demo: read 12 samples, wrote 12, already in the lake 0, new problems 3" in capsys.readouterr().out
    got = lake_rows("select problem_id, sample_idx, seed, reasoning_level, error is not null, reasoning, final "
                    "from generations where run_id = 'demo' order by problem_id, sample_idx")
    assert [g[:5] for g in got] == [
        ("omr:7", 0, 0, "medium", False), ("omr:7", 1, 1, "medium", False), ("omr:7", 2, 2, "medium", False),
        ("omr:7", 3, 3, "medium", False),
        ("pol:0", 0, 0, "medium", False), ("pol:0", 1, 1, "medium", False), ("pol:0", 2, 2, "medium", False),
        ("pol:0", 3, 3, "medium", False),
        ("pol:1", 0, 0, "medium", False), ("pol:1", 1, 1, "medium", False), ("pol:1", 2, 2, "medium", False),
        ("pol:1", 3, 3, "medium", True),  # answer: null, the request failed
    ]
    assert got[4][5:] == ("Add 2/4 and 1/4.", "The sum is \\boxed{\\frac{3}{4}}.")
    assert got[7][5:] == ("Let me write both over a common denominator and then", None)  # truncated
    first = read_jsonl(LATEST_ORIGIN)[0]
    assert lake_rows("select prompt, completion from generations where problem_id = 'pol:0' and sample_idx = 0") == [
        (first["model_input"], first["answer"])]
    assert lake_rows("select problem_id, source, prompt, expected_answer, difficulty from problems order by 1") == [
        ("omr:7", "omr", "Which positive integers have exactly two positive divisors?", PRIMES, "2/8"),
        ("pol:0", "pol", "What is 1/2 + 1/4?", "3/4", "7/8"),
        ("pol:1", "pol", "How many primes are less than 10?", "4", "8/8"),
    ]
    manifest = lake.read_manifest("demo")
    assert (manifest["purpose"], manifest["model"], manifest["backend"], manifest["reasoning_level"]) == (
        "teacher", MODEL, "upstream", "medium")
    selection = json.loads(manifest["problem_selection"])["upstream"]
    assert (selection["kind"], selection["experiment"], selection["timestamp"]) == (
        "answer_origin", "demo", "20251009_083232")

    assert main(["import-generations", str(LATEST_ORIGIN), "--model", MODEL]) == 0  # again: nothing new
    assert "wrote 0, already in the lake 12" in capsys.readouterr().out
    assert lake_rows("select count(*) from generations") == [(12,)]


def test_an_experiment_folder_brings_samples_verdicts_and_tallies(lake_env, capsys):
    assert main(["import-generations", str(DEMO), "--model", MODEL, "--run-id", "exp1"]) == 0
    out = capsys.readouterr().out
    assert "exp1: read 12 samples, wrote 12" in out
    # The interrupted first attempt is superseded by the latest, as upstream's own later steps read it.
    assert "answer_origin: read the latest attempt 20251009_083232 (upstream's rule); left out 1 older: " \
           "20251009_080000" in out
    assert "exp1-answer_judge: read 10 verdicts/tallies, wrote 10" in out
    assert "exp1-answer_judge: 2 verdicts left out: their sample has no final answer" in out
    assert "exp1-answer_judge_vote: read 10 verdicts/tallies, wrote 10" in out
    assert "exp1-vote: read 3 verdicts/tallies, wrote 3" in out
    runs = lake_rows("select run_id, purpose, model, backend from runs order by 1")
    assert runs == [("exp1", "teacher", MODEL, "upstream"), ("exp1-answer_judge", "judge", MODEL, "upstream"),
                    ("exp1-answer_judge_vote", "judge", MODEL, "upstream"), ("exp1-vote", "judge", MODEL, "upstream")]

    # Verdicts: one judgment per judged sample, keyed as judged_generations keys (label, answer).
    verdicts: dict[str, list] = {}
    for unit, final, error in lake_rows("select problem_id, final, error from generations "
                                        "where run_id = 'exp1-answer_judge' order by problem_id, sample_idx"):
        verdicts.setdefault(unit, []).append("error" if error else parse_verdict(final))
    assert verdicts == {
        judge_unit_id("3/4", "\\frac{3}{4}"): [True],
        judge_unit_id("3/4", "0.75"): [True],
        judge_unit_id("3/4", "3/4"): [True],
        judge_unit_id("4", "4"): [True, True, "error"],  # pol:1_2: upstream's judge gave no verdict
        judge_unit_id(PRIMES, "primes"): [True, True],
        judge_unit_id(PRIMES, PRIMES): [True],
        judge_unit_id(PRIMES, "composite numbers"): [False],
    }
    # Tallies: upstream's counts, readable by the same parser as `reasonlite vote-llm`'s.
    tallies = dict(lake_rows("select problem_id, final from generations where run_id = 'exp1-vote'"))
    for row in read_jsonl(DEMO / "vote" / "20251010_000000" / "0_1.jsonl"):
        assert parse_tally(tallies[vote_unit_id(row["index"])]) == row["vote"]

    # Importing the folder again adds nothing; a single judged file finds its samples already there.
    assert main(["import-generations", str(DEMO), "--model", MODEL, "--run-id", "exp1"]) == 0
    assert lake_rows("select count(*) from generations") == [(12 + 10 + 10 + 3,)]


def test_the_run_is_named_after_the_experiment_folder(lake_env, tmp_path, capsys):
    datas = tmp_path / "datas"
    shutil.copytree(DEMO, datas / "s2_medium")
    assert main(["import-generations", str(datas / "s2_medium" / "vote"), "--model", MODEL]) == 0
    assert lake_rows("select run_id, count(*) from generations group by 1") == [("s2_medium-vote", 3)]
    loose = tmp_path / "loose.jsonl"  # outside datas/<exp>/<kind>/<ts>/: the run needs a name
    shutil.copy(LATEST_ORIGIN, loose)
    assert main(["import-generations", str(loose), "--model", MODEL]) == 2
    assert "cannot be named after the experiment; pass --run-id" in one_line(capsys)
    assert main(["import-generations", str(loose), "--run-id", "mine", "--model", MODEL]) == 0


@pytest.mark.parametrize("row, edit, message", [
    (0, lambda r: r.update(index="pol:0"), "row 0: column 'index' 'pol:0' is not upstream's '<problem index>_<sample>'"),
    (5, lambda r: r.update(judge="yes"), "row 5: column 'judge' must be true, false or null, got 'yes'"),
    (0, lambda r: r.update(info="pol:0"), "row 0: column 'info' must be an object"),
    (3, lambda r: r.pop("model_input"), "row 3: not a judged sample"),
])
def test_bad_upstream_rows_are_named_and_write_nothing(lake_env, tmp_path, capsys, row, edit, message):
    rows = read_jsonl(DEMO / "answer_judge" / "20251010_010101" / "0_1.jsonl")
    edit(rows[row])
    folder = tmp_path / "datas" / "bad" / "answer_judge" / "20251010_010101"
    folder.mkdir(parents=True)
    (folder / "0_1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # The judged file alone: its samples (a teacher run) and its verdicts (a judge run).
    assert main(["import-generations", str(folder / "0_1.jsonl"), "--model", MODEL]) == 2
    assert message in one_line(capsys)
    assert lake_rows("select count(*) from generations") == [(0,)]
    assert lake_rows("select count(*) from runs") == [(0,)]


def test_model_is_required_and_upstream_takes_its_level_from_the_files(lake_env, capsys):
    assert main(["import-generations", str(DEMO)]) == 2
    assert "--model is required" in (err := one_line(capsys)) and "do not record it" in err
    assert main(["import-generations", str(DEMO), "--model", MODEL, "--reasoning-level", "high"]) == 2
    assert "--reasoning-level come from the files" in one_line(capsys)


def test_the_label_upstream_judged_against():
    info = {"expected_answer": "7", "vote": {"8": 9, "7": 1}}
    assert upstream.judged_label("answer_judge", info, "w") == "7"
    assert upstream.judged_label("answer_judge_vote", {**info, "label_source": "vote"}, "w") == "8"
    assert upstream.judged_label("answer_judge_vote", {**info, "label_source": "dataset"}, "w") == "7"
    # Without label_source, upstream's rule (utils/prompt_func.py judge_prompt): share >= 0.9 and >= 4 votes.
    assert upstream.judged_label("answer_judge_vote", info, "w") == "8"
    assert upstream.judged_label("answer_judge_vote", {**info, "vote": {"8": 3}}, "w") == "7"
    assert upstream.judged_label("answer_judge_vote", {**info, "vote": {"8": 8, "7": 2}}, "w") == "7"


# ------------------------------------------------------------------------------ training format out

# The judged samples upstream's converter drops but our curation keeps: pol:1_2, whose judge failed.
POL_1_2 = {"messages": [
    {"role": "user", "content": "How many primes are less than 10?" + INSTRUCTION},
    {"role": "assistant", "content": "<think>\n2, 3, 5, 7: four numbers.\n</think>The answer is \\boxed{4}."},
]}


def check_upstream_format(folder: Path, expected: list[dict]) -> None:
    """Field by field against what upstream's utils/saving_to_training_format.py writes."""
    lines = (folder / "short_cot" / "data_part1.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert not (folder / "long_cot").exists()  # no rows: no file
    for line in lines:
        example = json.loads(line)
        assert list(example) == ["messages"]
        assert [list(m) for m in example["messages"]] == [["role", "content"], ["role", "content"]]
        assert [m["role"] for m in example["messages"]] == ["user", "assistant"]
        user, assistant = (m["content"] for m in example["messages"])
        assert user == user.strip() and user.endswith(INSTRUCTION)
        assert assistant.startswith("<think>\n") and assistant.count("\n</think>") == 1
        assert "\n</think>\n" not in assistant  # upstream: the final follows </think> directly
        # jsonlines' default: ensure_ascii=False, separators ", " and ": ", one object and "\n" per line
        assert line == json.dumps(example, ensure_ascii=False) + "\n"
    assert sorted(lines) == sorted(json.dumps(e, ensure_ascii=False) + "\n" for e in expected)


def strata_from_samples(exports: Path, judged: list[dict]) -> None:
    """SFT strata as sft_examples writes them, for the fixture's correctly judged samples: user = the
    user turn of the rendered prompt; assistant = "<think>\\n{reasoning}\\n</think>\\n\\n{final}"."""
    from generation.parsing import split_reasoning

    rows = []
    for r in judged:
        reasoning, final = split_reasoning(r["answer"])
        user = r["model_input"].split("<|start|>user<|message|>")[1].split("<|end|>")[0].strip()
        rows.append({"problem_id": r["index"].rsplit("_", 1)[0], "source": "pol", "run_id": "demo",
                     "sample_idx": int(r["index"].rsplit("_", 1)[1]), "teacher_model": MODEL,
                     "reasoning_level": "medium", "stratum": "short_cot", "label": "x", "label_source": "dataset",
                     "prompt_tokens": 1, "completion_tokens": 1,
                     "messages": [{"role": "user", "content": user},
                                  {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{final}"}],
                     "answer_key": "x"})
    # As curate publishes them: a folder of segments per stratum (an empty one: one empty segment).
    write_segments(exports / "sft_short_cot", "upstream-format", [pa.Table.from_pylist(rows, schema=SCHEMA)])
    write_segments(exports / "sft_long_cot", "upstream-format", [pa.Table.from_pylist([], schema=SCHEMA)])
    seal_strata(exports, "upstream-format")


def test_export_writes_upstreams_training_format(lake_env, capsys):
    judged = [r for r in read_jsonl(DEMO / "answer_judge" / "20251010_010101" / "0_1.jsonl") if r["judge"] is True]
    strata_from_samples(lake.exports_dir(), judged)
    assert main(["export", "--format", "upstream-jsonl"]) == 0
    out = lake.exports_dir() / "upstream_jsonl"
    check_upstream_format(out, read_jsonl(DEMO / "format_data" / "data_part1.jsonl"))
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["format"] == "upstream-jsonl"
    assert lineage["configs"] == {"short_cot": {"source": "sft_short_cot", "rows": 8,
                                                "files": ["short_cot/data_part1.jsonl"]}}
    assert main(["export", "--format", "upstream-jsonl"]) == 0  # replaces its own earlier export
    assert main(["export", "--format", "upstream-jsonl", "--out", str(lake.exports_dir())]) == 2


def test_upstream_files_chunk_like_upstreams(lake_env, monkeypatch):
    from warehouse import hub

    monkeypatch.setattr(hub, "UPSTREAM_CHUNK_ROWS", 3)
    judged = [r for r in read_jsonl(DEMO / "answer_judge" / "20251010_010101" / "0_1.jsonl") if r["judge"] is True]
    strata_from_samples(lake.exports_dir(), judged)
    record = hub.export(fmt="upstream-jsonl", log=lambda *_: None)
    assert record["configs"]["short_cot"]["files"] == [f"short_cot/data_part{k}.jsonl" for k in (1, 2, 3)]
    folder = Path(record["path"]) / "short_cot"
    assert [len(read_jsonl(folder / f"data_part{k}.jsonl")) for k in (1, 2, 3)] == [3, 3, 2]


@pytest.mark.slow
def test_upstream_experiment_through_curation_agreement_and_export(lake_env, capsys):
    """Import the folder, curate, and compare: upstream's verdicts and tallies against the grader and the
    SQL vote in judge_agreement; our SFT strata against upstream's own training files."""
    from evaluation import grading

    assert main(["import-generations", str(DEMO), "--model", MODEL]) == 0
    assert main(["curate", "--quiet", "--no-test"]) == 0

    summary = {(c, s): (n_llm, n_agree, n_disagree) for c, s, n_llm, n_agree, n_disagree in marts(
        "select comparison, scope, n_llm, n_agree, n_disagree from judge_agreement where row_type = 'summary'")}
    # Seven judged (label, answer) pairs reach the label check; upstream judged each of them.
    assert summary[("verdict", "all")][0] == 7
    disagreements = marts("select comparison, scope, gold, answer, problem_id, symbolic, llm from judge_agreement "
                          "where row_type = 'disagreement' order by comparison")
    # Upstream's judge calls "primes" the same as "\text{the primes}"; the grader cannot decide words.
    assert ("tally", "grader_abstained", None, None, "omr:7", "primes (2/4)", f"{PRIMES} (3/4)") in disagreements
    assert [d for d in disagreements if d[0] == "verdict"] == [
        ("verdict", "grader_abstained", PRIMES, "primes", None, "no_match", "match")]
    assert summary[("tally", "all")] == (3, 2, 1)
    verdicts = dict(marts("select unit_id, n_errors from int_llm_verdicts"))
    # pol:1_2: the judge's failed request, kept as an error (once in answer_judge, once in answer_judge_vote)
    assert verdicts[judge_unit_id("4", "4")] == 2
    assert grading.answers_equal("3/4", "0.75")

    assert main(["export", "--format", "upstream-jsonl"]) == 0
    # Where the grader abstained ("primes"), upstream's verdict decided, so both keep the same samples,
    # except pol:1_2, which upstream dropped only because its judge request failed.
    check_upstream_format(lake.exports_dir() / "upstream_jsonl",
                          read_jsonl(DEMO / "format_data" / "data_part1.jsonl") + [POL_1_2])
