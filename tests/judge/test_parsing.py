"""The LLM judge's verdict / tally parser, unit ids, abstention rule, prompts and CLI errors (fast)."""

from __future__ import annotations

import json
import time

import duckdb
import pytest

from evaluation import grading
from evaluation.judge import (
    MAX_TALLY_ENTRIES,
    grader_abstains,
    judge_unit_id,
    parse_tally,
    parse_verdict,
    register_udfs,
    tally_json,
)
from evaluation.judge_prompts import judge_prompt, vote_prompt
from warehouse.cli import main

H_ANALYSIS = "<|channel|>analysis<|message|>"
H_FINAL = "<|end|><|start|>assistant<|channel|>final<|message|>"

VERDICTS = [
    # the shapes upstream's prompt produces
    ('Same value. \\boxed{"match": true}', True),
    ('\\boxed{"match": false}', False),
    ('\\boxed{{"match": true}}', True),
    ('\\boxed{\\{"match": false\\}}', False),
    ('So: $\\boxed{"match": true}$.', True),
    ('\\fbox{"match": false}', False),
    ('\\boxed{"match": true, "reason": "both are the primes"}', True),
    # Harmony: the final channel decides, the analysis channel does not
    (H_ANALYSIS + 'maybe \\boxed{"match": false}' + H_FINAL + '\\boxed{"match": true}<|return|>', True),
    (H_ANALYSIS + 'cut off while thinking \\boxed{"match": true}', None),
    ('<think>\\boxed{"match": true}</think>I am not sure.', None),
    # the last box is the commitment (as for answers); contradicting adjacent boxes are no verdict
    ('\\boxed{"match": false}\n\nOn reflection they are equal. \\boxed{"match": true}', True),
    ('\\boxed{"match": true} \\boxed{"match": false}', None),
    ('\\boxed{"match": true} \\boxed{"match": true}', True),
    ('\\boxed{"match": true, "match": false}', None),
    ('\\boxed{"match": true}. The final answer is false.', None),
    # not the JSON asked for: never guessed
    ('\\boxed{"match": "yes"}', None),
    ('Output:\n\n\\boxed{"match": true or false}', None),  # the template echoed (SmolLM2 does this)
    ('\\boxed{"match": "true"}', None),
    ('\\boxed{"match": 1}', None),
    ('\\boxed{"match": null}', None),
    ('\\boxed{"match": NaN}', None),
    ('\\boxed{"Match": true}', None),
    ('\\boxed{"match": {"match": true}}', None),
    ('\\boxed{"match": [true]}', None),
    ('\\boxed{true}', None),
    ('\\boxed{yes}', None),
    ('\\boxed{"match": true', None),
    ('{"match": true}', None),
    ('The answer is {"match": true}', None),
    ('"match": true', None),
    ("", None),
    (None, None),
    ("\\boxed{}", None),
    ('\\boxed{' + "[" * 5000 + "]" * 5000 + "}", None),
]


@pytest.mark.parametrize(("text", "expected"), VERDICTS)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) is expected


def test_hostile_verdicts_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f'\\boxed{{__import__("pathlib").Path({str(marker)!r}).touch()}}',
        f'\\boxed{{"match": __import__("pathlib").Path({str(marker)!r}).touch()}}',
        f'\\boxed{{"match": "__import__(\'pathlib\').Path(\'{marker}\').touch()"}}',
        f'\\boxed{{"{marker}": 1, "__class__": 2}}',
    ]
    for text in payloads:
        assert parse_verdict(text) is None
        parse_tally(text)
    assert not marker.exists()


def test_huge_outputs_are_bounded():
    junk = "blah " * 200_000  # 1 MB of rambling before the verdict
    started = time.perf_counter()
    assert parse_verdict(junk + '\\boxed{"match": true}') is True
    assert parse_verdict('\\boxed{"match": true, "pad": "' + "x" * 50_000 + '"}') is None  # box too big
    assert parse_tally("\\boxed{" + ", ".join(f'"a{i}": 1' for i in range(MAX_TALLY_ENTRIES + 1)) + "}") is None
    # only the tail of an output is read: a verdict followed by a megabyte of rambling is not found
    assert parse_verdict('\\boxed{"match": true}' + junk) is None
    assert parse_verdict('\\boxed{"match": true}' + junk[:50_000]) is True
    assert time.perf_counter() - started < 10


TALLIES = [
    ('\\boxed{"25": 3, "12": 2, "-2": 1}', {"25": 3, "12": 2, "-2": 1}),
    ('\\boxed{{"25": 3, "12": 2}}', {"25": 3, "12": 2}),
    # LaTeX backslashes stay LaTeX (not form feed / newline escapes); \" and \\ keep their JSON meaning
    ('\\boxed{"\\frac{1}{2}": 2, "\\neq 3": 1, "\\\\sqrt{2}": 1, "say \\"hi\\"": 1}',
     {"\\frac{1}{2}": 2, "\\neq 3": 1, "\\sqrt{2}": 1, 'say "hi"': 1}),
    ('\\boxed{" x=25 ": 4}', {"x=25": 4}),
    ('\\boxed{"25": 3.0}', None),
    ('\\boxed{"25": -1}', None),
    ('\\boxed{"25": 0}', None),
    ('\\boxed{"25": true}', None),
    ('\\boxed{"25": "3"}', None),
    ('\\boxed{"": 2}', None),
    ('\\boxed{"25": 3, " 25": 1}', None),
    ('\\boxed{"25": 3, "25": 1}', None),
    ('\\boxed{}', None),
    ('\\boxed{"match": true}', None),
    ('{"25": 3}', None),
    ('\\boxed{[["25", 3]]}', None),
]


@pytest.mark.parametrize(("text", "expected"), TALLIES)
def test_parse_tally(text, expected):
    assert parse_tally(text) == expected


def test_tally_json_ranks_by_count_keeping_the_models_order_on_ties():
    ranked = json.loads(tally_json('\\boxed{"12": 2, "25": 3, "x": 2}'))
    assert ranked == [{"answer": "25", "count": 3}, {"answer": "12", "count": 2}, {"answer": "x", "count": 2}]
    assert tally_json("no box") is None


@pytest.mark.parametrize("label,answer", [
    ("\\text{the set of all primes}", "primes"),
    ("1/2", "0.5"),
    ("it's \"quoted\"", "naïve ∑ 中文 \\frac{1}{2}"),
    ("a\nb", "c\td"),
    ("", ""),
])
def test_unit_id_is_the_same_in_python_and_sql(label, answer):
    sql = duckdb.connect().execute("SELECT 'judge:' || md5($1 || chr(31) || $2)", [label, answer]).fetchone()[0]
    assert judge_unit_id(label, answer) == sql
    assert judge_unit_id(label, answer) != judge_unit_id(answer, label) or label == answer


def test_grader_abstains_on_free_form_and_unparseable_answers_only():
    def abstains(gold: str, pred: str) -> bool:
        return grader_abstains(grading.canonical_key(gold), grading.canonical_key(pred), grading.answers_equal(gold, pred))

    assert abstains("\\text{the set of all primes}", "primes")  # words: compared only as strings
    assert abstains("\\triangle ABC \\sim \\triangle DEF", "\\triangle DEF \\sim \\triangle ABC")  # unparseable
    assert abstains("\\triangle ABC \\sim \\triangle DEF", "5")
    assert not abstains("\\triangle ABC \\sim \\triangle DEF", "\\triangle ABC \\sim \\triangle DEF")  # same key
    assert not abstains("1/2", "0.5")  # decided: equal
    assert not abstains("1/2", "3")  # decided: different numbers
    assert not abstains("\\text{primes}", "primes")  # same text key
    assert grader_abstains(None, "text:x", False) is False
    assert grader_abstains("str:x", "num:1", True) is False  # the grader found them equal


def test_udfs_in_duckdb():
    con = duckdb.connect()
    register_udfs(con)
    rows = con.execute(
        "SELECT judge_verdict(t) FROM (VALUES (1, '\\boxed{\"match\": true}'), (2, NULL), "
        "(3, '\\boxed{\"match\": \"yes\"}'), (4, 'The answer is \\boxed{\"match\": false}')) AS v(i, t) ORDER BY i"
    ).fetchall()
    assert [r[0] for r in rows] == [True, None, None, False]
    tally = con.execute(
        "SELECT from_json(judge_tally('\\boxed{\"12\": 1, \"25\": 3}'), "
        "'[{\"answer\": \"VARCHAR\", \"count\": \"BIGINT\"}]')[1]"
    ).fetchone()[0]
    assert tally == {"answer": "25", "count": 3}
    flags = con.execute(
        "SELECT grader_abstains(g, p, e) FROM (VALUES (1, 'text:primes', 'text:the set of all primes', false), "
        "(2, 'num:1/2', 'num:3', false), (3, NULL, 'str:x', false), (4, 'str:x', 'num:1', NULL)) AS v(i, g, p, e) "
        "ORDER BY i"
    ).fetchall()
    assert [r[0] for r in flags] == [True, False, None, True]


def test_prompts_follow_upstream_and_keep_answers_verbatim():
    text = judge_prompt("\\{1, 2\\}", "{1,2} and {x}")
    assert "Ground truth answer:\n\\{1, 2\\}\n\nModel's answer:\n{1,2} and {x}\n" in text
    assert text.rstrip().endswith('put your final answer within \\boxed{"match": true or false}.')
    assert "mathematical equivalence" in text
    votes = vote_prompt(["25", "x=25", "12"])
    assert "Answer Index 0:\n25\n\nAnswer Index 1:\nx=25\n\nAnswer Index 2:\n12\n\n" in votes
    assert '\\boxed{"25": 3, "12": 2, "-2": 1}' in votes


def test_cli_errors_are_one_line(lake_env, capsys):
    assert main(["judge", "--config", "generation/configs/judge_cpu.yaml", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "run `reasonlite curate` first" in err and len(err.strip().splitlines()) == 1
    assert main(["vote-llm", "--config", "generation/configs/cpu_smollm2.yaml"]) == 2
    assert "purpose: must be 'judge'" in capsys.readouterr().err
    assert main(["judge", "--config", "generation/configs/judge_cpu.yaml", "--limit", "-1"]) == 2
    assert "--limit" in capsys.readouterr().err
    assert main(["judge", "--config", "generation/configs/judge_cpu.yaml", "--set", "sampling.temprature=1"]) == 2
    assert "did you mean 'sampling.temperature'" in capsys.readouterr().err
