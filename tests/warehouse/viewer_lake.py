"""A small real lake for the viewers (`reasonlite report`'s report.html, `reasonlite serve`), with
hostile text in every place a person can see it, brought in by the real commands: `reasonlite
ingest` (problem statements, dataset labels, metadata), `reasonlite import-generations` (reasoning,
final text, extracted answers, model names; a teacher run and an evaluation run) and `reasonlite
curate` (the real dbt build).

Every payload, were it to run, sets ``window.__xss`` (or opens a dialog); the tests check in a real
browser that it never does and that the payload shows as the text it is.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from warehouse import lake

SOURCE = "web"
TEACHER_RUN = "teacher-web"
EVAL_RUN = "eval-web"
PLAIN_PROBLEMS = 40  # more than one page of the problem list at 25 per page

SCRIPT = "<script>window.__xss='script'</script>"
IMG = "<img src=x onerror=\"window.__xss='img'\">"
LINK = "<a href=\"javascript:window.__xss='link'\">click me</a>"
SVG = "<svg onload=\"window.__xss='svg'\"></svg>"
BREAKOUT = "</pre></details></td></tr></table><script>alert('breakout')</script>"
TEMPLATE = "{{ 7*7 }} {% raw %}"
# What a reader must see, verbatim, somewhere on the pages.
PAYLOADS = (SCRIPT, IMG, LINK, SVG, BREAKOUT, TEMPLATE)

HOSTILE_MODEL = "teacher<img src=x onerror=\"window.__xss='model'\">"
EVAL_MODEL = "student<svg onload=\"window.__xss='eval-model'\">"
HOSTILE_ANSWER = "<img src=x onerror=\"window.__xss='answer'\">"

# (statement, dataset label, extra metadata) of the hostile problems, web:0..3.
HOSTILE_PROBLEMS = [
    (f"What is 1 + 1? {SCRIPT}", "2", {}),
    (f"Compute 3 * 3. {IMG}", "9", {"url": "javascript:window.__xss='metadata'"}),
    (f"{LINK} What is 10 - 4?", SCRIPT, {}),  # hostile dataset label: the vote (7 of 8) is short of 0.9, it stands
    (f"{TEMPLATE} What is 5 + 5? {BREAKOUT}", "10", {"note": SVG}),
]
RIGHT = {0: "2", 1: "9", 2: "6", 3: "10"}


def completion(reasoning: str, final: str) -> str:
    return f"<think>{reasoning}</think>{final}"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def problem_rows() -> list[dict]:
    rows = [{"problem": text, "answer": label, **extra} for text, label, extra in HOSTILE_PROBLEMS]
    rows += [{"problem": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(PLAIN_PROBLEMS)]
    return rows


def teacher_rows() -> list[dict]:
    rows = []
    for p, right in RIGHT.items():
        for k in range(8):
            reasoning = f"Sample {k}. {PAYLOADS[(p + k) % len(PAYLOADS)]} So the result follows."
            if k == 7:  # a dissenting, hostile answer: it shows up in the tally and as a rejected sample
                final = f"The answer is \\boxed{{{HOSTILE_ANSWER}}}. {SVG}"
            else:
                final = f"The answer is \\boxed{{{right}}}. {LINK}"
            rows.append({"problem_id": f"{SOURCE}:{p}", "sample_idx": k, "completion": completion(reasoning, final),
                         "finish_reason": "stop", "completion_tokens": 40 + 30 * k + 5 * p, "reasoning_level": "medium"})
    for i in range(PLAIN_PROBLEMS):
        # kept counts 0..4 so the list's kept filter has something to separate
        correct = i % 5
        for k in range(4):
            answer = 2 * i if k < correct else 2 * i + 1
            rows.append({"problem_id": f"{SOURCE}:{len(RIGHT) + i}", "sample_idx": k,
                         "completion": completion(f"Adding {i} and {i}.", f"\\boxed{{{answer}}}"),
                         "finish_reason": "stop", "completion_tokens": 20 + i + 50 * k, "reasoning_level": "high"})
    return rows


def eval_rows() -> list[dict]:
    rows = []
    for p, right in RIGHT.items():
        for k in range(4):
            answer = right if k % 2 == 0 else HOSTILE_ANSWER
            rows.append({"problem_id": f"{SOURCE}:{p}", "sample_idx": k,
                         "completion": completion(f"Eval {k}: {SCRIPT}", f"\\boxed{{{answer}}}"),
                         "finish_reason": "stop", "completion_tokens": 100 + 10 * k})
    return rows


def _cli(*argv: str) -> None:
    from warehouse.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    assert code == 0, f"reasonlite {' '.join(argv)} exited {code}: {out.getvalue()}"


def build(root: Path, work: Path) -> None:
    """Ingest, import and curate into the warehouse the environment points at (lake.env_for_root(root))."""
    from warehouse.curate import curate

    assert lake.lake_root() == (Path(root) / "lake").resolve(), "point the environment at root first"
    work.mkdir(parents=True, exist_ok=True)
    _cli("ingest", str(_jsonl(work / "problems.jsonl", problem_rows())), "--source", SOURCE)
    _cli("import-generations", str(_jsonl(work / "teacher.jsonl", teacher_rows())), "--run-id", TEACHER_RUN,
         "--model", HOSTILE_MODEL, "--problem-source", SOURCE)
    _cli("import-generations", str(_jsonl(work / "eval.jsonl", eval_rows())), "--run-id", EVAL_RUN,
         "--model", EVAL_MODEL, "--purpose", "eval", "--problem-source", SOURCE)
    result = curate(test=False, quiet=True)
    assert result.success, result.failures


@contextlib.contextmanager
def environment(root: Path):
    """Every warehouse path under root for the duration of the block (module-scoped fixtures)."""
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        for key, value in lake.env_for_root(root).items():
            mp.setenv(key, value)
        yield root


def built_root(tmp_path_factory) -> Path:
    """The viewer lake, built once per test session (the serve and the browser tests share it)."""
    import shutil

    root = tmp_path_factory.getbasetemp() / "viewer-lake"
    stamp = root / ".built"
    if not stamp.exists():
        shutil.rmtree(root, ignore_errors=True)
        with environment(root):
            build(root, root / "inputs")
        stamp.write_text("ok\n")
    return root
