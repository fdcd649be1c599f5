"""Upstream's scoring of an evaluation response (AMD-AGI/ReasonLite ``eval/eval.py:694-708``), with this
grader's equivalence where upstream compares two answers.

A response is correct when any of these holds, tried in upstream's order:

1. ``boxed``: the content of the last ``\\boxed{...}`` anywhere in the response -- the reasoning
   included, so an unclosed ``<think>`` still counts -- equals the gold answer. As upstream's
   ``extract_answer`` (``eval/utils/openmathinst_utils.py:553-598``): only the very last
   ``\\boxed``, which must open a brace right away and close it; otherwise there is no boxed answer.
2. ``answer_is``: the text after ``The answer is: `` running to the end of the response (the
   regex ``The answer is: (.+)$``, case-sensitive, no multiline: the marker sits on the last line)
   equals the gold answer.
3. ``math_verify``: math-verify finds the gold answer in the whole response,
   ``verify(parse("\\boxed{$<gold>}$"), parse(response))`` -- the gold string exactly as upstream
   builds it (``eval/eval.py:707``).

Equality in 1 and 2 is ``grade_many`` (equal keys or math-verify, the one definition of "equal"
this package has). Upstream compares there with OpenMathInstruct's ``math_equal``; the difference is
measured beside the strict scoring in the ``eval_scores`` mart (``scoring`` column). Step 3 runs
in the grader's worker processes under the same CPU budget as every other math-verify call.
"""

from __future__ import annotations

import re

from .common import _REFUSED, _TIMED_OUT, _UNPARSEABLE
from .decide import GradeResult, grade_many
from .sandbox import _run_bounded

_BOXED = "\\boxed"
_ANSWER_IS_RE = re.compile(r"The answer is: (.+)$")
STAGES = ("boxed", "answer_is", "math_verify")


def last_boxed_upstream(response: str | None) -> str | None:
    """The content of the last ``\\boxed{...}`` in the whole response, or None when the last
    ``\\boxed`` is not followed at once by a balanced ``{...}`` (upstream then finds nothing)."""
    if not isinstance(response, str):
        return None
    start = response.rfind(_BOXED)
    if start < 0:
        return None
    open_at = start + len(_BOXED)
    if response[open_at:open_at + 1] != "{":
        return None
    depth = 0
    for i in range(open_at, len(response)):
        ch = response[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return response[open_at + 1:i]
    return None


def answer_is_upstream(response: str | None) -> str | None:
    """What follows ``The answer is: `` when it runs to the end of the response (upstream's regex)."""
    if not isinstance(response, str):
        return None
    found = _ANSWER_IS_RE.search(response)
    return found.group(1) if found else None


def extract_answers_upstream(response: str | None) -> dict[str, str | None]:
    """The two answers upstream's scoring reads from a response: ``boxed`` and ``answer_is``."""
    return {"boxed": last_boxed_upstream(response), "answer_is": answer_is_upstream(response)}


def upstream_gold(gold: str) -> str:
    """The gold answer as upstream hands it to math-verify (``eval/eval.py:707``)."""
    return f"{_BOXED}{{${gold}}}$"


def grade_upstream_many(pairs: list[tuple[str | None, str | None]]) -> list[GradeResult]:
    """Upstream's verdict for each (gold answer, whole response). ``method`` names the step that
    found the gold answer (``boxed``, ``answer_is``, ``math_verify``); a response none of them
    finds correct is not equal (``method`` ``no_answer`` when it offered nothing to compare), or
    undecided when a step that might have said yes ran out of its budget or was refused."""
    pairs = list(pairs)
    results: dict[int, GradeResult] = {}
    undecided: dict[int, str] = {}
    todo = []
    for i, (gold, response) in enumerate(pairs):
        if not (isinstance(gold, str) and isinstance(response, str)):
            results[i] = GradeResult(False, None, None, "missing")
        else:
            todo.append(i)
    for stage in ("boxed", "answer_is"):
        asked = [(i, found) for i in todo
                 if i not in results and (found := extract_answers_upstream(pairs[i][1])[stage]) is not None]
        graded = grade_many([(pairs[i][0], found) for i, found in asked])
        for (i, _), result in zip(asked, graded, strict=True):
            if result.equal:
                results[i] = GradeResult(True, result.gold_key, result.pred_key, stage)
            elif result.undecided in ("timeout", "refused"):
                undecided.setdefault(i, result.undecided)
    rest = [i for i in todo if i not in results]
    verified = _run_bounded("verify_response", [(upstream_gold(pairs[i][0]), pairs[i][1]) for i in rest])
    for i, res in zip(rest, verified, strict=True):
        if res is True:
            results[i] = GradeResult(True, None, None, "math_verify")
            continue
        reason = {_TIMED_OUT: "timeout", _REFUSED: "refused"}.get(res) or undecided.get(i)
        if reason:
            results[i] = GradeResult(False, None, None, reason, reason)
        else:
            offered = any(extract_answers_upstream(pairs[i][1]).values()) or res != _UNPARSEABLE
            results[i] = GradeResult(False, None, None, "math_verify" if offered else "no_answer")
    return [results[i] for i in range(len(pairs))]


def grade_upstream(gold: str | None, response: str | None) -> GradeResult:
    """``grade_upstream_many`` for one pair."""
    return grade_upstream_many([(gold, response)])[0]
