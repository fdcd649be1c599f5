"""Upstream ReasonLite's own files (github.com/AMD-AGI/ReasonLite, ``datas/<exp>/``), imported as they are.

Upstream's pipeline (``infer.py -m infer | vote | judge | judge_vote``) writes JSON lines under
``datas/<exp>/<kind>/<timestamp>/<rank>_<world>.jsonl``; each mode reads the *latest* timestamp of
the mode before it (upstream ``utils/mode_handler.py``, ``_latest_origin_jsonls``), and a resumed
run copies what was finished into a new timestamp, so the latest one is the whole result:

* ``answer_origin/``: one row per sample. ``index`` ``"pol:0_3"`` is problem ``pol:0``, sample 3
  (also its sampling seed); ``model_input`` the rendered prompt (gpt-oss Harmony, with
  ``reasoning: <level>`` in its system message); ``answer`` the completion (``null`` when the
  request failed); ``prompt`` the problem text; ``info`` the problem's ``info.jsonl`` row
  (``expected_answer``, ``difficulty``).
* ``answer_judge/``, ``answer_judge_vote/``: the same rows plus ``judge`` (true / false / null),
  the teacher's verdict on the sample's last ``\\boxed{}`` against the dataset label, resp. against
  the vote label where the vote passed (``info.vote``, ``info.label_source``).
* ``vote/``: one row per problem, its ``info.jsonl`` row plus ``vote``: the teacher's tally
  ``{"answer": count, ...}``, most votes first.

Here the samples become a teacher run ``<exp>`` (problems are created from the rows themselves).
Upstream's verdicts and tallies are written exactly as ``reasonlite judge`` / ``vote-llm`` write
theirs (``evaluation/judge.py``): judge runs (purpose ``judge``, backend ``upstream``) named
``<exp>-answer_judge``, ``<exp>-answer_judge_vote`` and ``<exp>-vote``, whose units are
``judge:<md5(label, answer)>`` with the final text ``\\boxed{"match": true|false}``, and
``vote:<problem_id>`` with the final text ``\\boxed{<the tally's JSON>}``. So ``int_llm_verdicts``,
``int_llm_tallies`` and the ``judge_agreement`` mart compare them with the symbolic grader and the
SQL vote with no change to dbt. A verdict is keyed by the answer *our* marts extract from the same
sample (``judged_generations.answer``); upstream judged the last box of the whole output, which is
the same string whenever the final channel holds the box (the samples the marts judge). A verdict
on a sample with no final answer is left out and counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from warehouse import lake
from warehouse.errors import UserError
from warehouse.ingest import ImportReport, ImportRows, import_rows
from warehouse.sources import iter_rows, text_field

KINDS = ("answer_origin", "answer_judge", "answer_judge_vote", "vote")
JUDGE_KINDS = ("answer_judge", "answer_judge_vote")
BACKEND = "upstream"
# Upstream's vote label rule (utils/prompt_func.py judge_prompt): the top answer when it has at
# least this share of the tally and this many votes.
VOTE_RATIO, MIN_VOTES = 0.9, 4

_REASONING_LEVEL = re.compile(r"^reasoning: *(\w+) *$", re.MULTILINE)
# What the marts read an answer from (dbt macro answer_span): the final text from its first box on.
_ANSWER_SPAN = re.compile(r"\\(?:boxed|fbox).*\Z", re.DOTALL)


@dataclass
class Files:
    """The files of one upstream kind that an import reads."""

    kind: str
    files: list[Path]
    experiment: str | None = None
    timestamp: str | None = None
    older: list[str] = field(default_factory=list)  # earlier timestamps, superseded


def row_kind(row: dict) -> str | None:
    """The upstream kind a row has the shape of, or None for anything else."""
    if "index" not in row:
        return None
    if "model_input" in row and "answer" in row:
        if "judge" not in row:
            return "answer_origin"
        info = row.get("info")
        return "answer_judge_vote" if isinstance(info, dict) and "vote" in info else "answer_judge"
    if "vote" in row and "model_input" not in row:
        return "vote"
    return None


def _first_row(path: Path) -> dict | None:
    if path.suffix.lower() not in (".jsonl", ".ndjson") or not path.is_file() or path.stat().st_size == 0:
        return None
    for _, row in iter_rows(str(path)):
        return row
    return None


def is_upstream(spec: str) -> bool:
    """Whether ``spec`` is an upstream folder (``datas/<exp>/``, a kind folder or a timestamp
    folder) or a JSONL file whose first row has an upstream shape."""
    path = Path(spec)
    if path.is_dir():
        return any((path / kind).is_dir() for kind in KINDS) or path.name in KINDS or path.parent.name in KINDS
    row = _first_row(path)
    return row is not None and row_kind(row) is not None


def _jsonl(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.jsonl") if p.is_file())


def _latest(kind_dir: Path, kind: str, experiment: str | None) -> Files | None:
    """The latest timestamp folder with files (upstream sorts the names: ``%Y%m%d_%H%M%S``)."""
    stamps = sorted(d.name for d in kind_dir.iterdir() if d.is_dir() and _jsonl(d))
    if not stamps:
        return None
    return Files(kind, _jsonl(kind_dir / stamps[-1]), experiment, stamps[-1], stamps[:-1])


def collect(spec: str) -> list[Files]:
    """What an import of ``spec`` reads, kind by kind (in KINDS order)."""
    path = Path(spec)
    if not path.exists():
        raise UserError(f"{spec}: no such file or folder")
    if path.is_file():
        row = _first_row(path)
        kind = row_kind(row) if row is not None else None
        if kind is None:
            raise UserError(f"{spec}: not an upstream ReasonLite file (rows with index and model_input/answer, "
                            "or index and vote)")
        stamp, kind_dir = path.parent, path.parent.parent
        nested = kind_dir.name in KINDS
        return [Files(kind, [path], kind_dir.parent.name if nested else None, stamp.name if nested else None)]
    if any((path / kind).is_dir() for kind in KINDS):  # datas/<exp>/
        found = [_latest(path / kind, kind, path.name) for kind in KINDS if (path / kind).is_dir()]
    elif path.name in KINDS:  # datas/<exp>/<kind>/
        found = [_latest(path, path.name, path.parent.name)]
    elif path.parent.name in KINDS:  # datas/<exp>/<kind>/<timestamp>/
        files = _jsonl(path)
        found = [Files(path.parent.name, files, path.parent.parent.name, path.name)] if files else []
    else:
        raise UserError(f"{spec}: not an upstream ReasonLite folder (datas/<exp>/ with answer_origin/, "
                        "answer_judge/, answer_judge_vote/ or vote/)")
    found = [f for f in found if f is not None]
    if not found:
        raise UserError(f"{spec}: no <timestamp>/*.jsonl files in it")
    return found


def _rows(files: Files) -> Iterator[tuple[str, dict]]:
    for path in files.files:
        for index, row in iter_rows(str(path)):
            yield f"{path}: row {index}", row


def _split_index(index: str, where: str) -> tuple[str, int]:
    """``"pol:0_3"`` -> (``"pol:0"``, 3): upstream appends ``_<sample>`` to the problem's index."""
    problem, sep, sample = index.rpartition("_")
    if not sep or not problem or not sample.isdigit():
        raise UserError(f"{where}: column 'index' {index!r} is not upstream's '<problem index>_<sample>'")
    return problem, int(sample)


def _info(row: dict, where: str) -> dict:
    info = row.get("info")
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise UserError(f"{where}: column 'info' must be an object (the problem's info.jsonl row)")
    return info


def reasoning_level(model_input: str | None) -> str | None:
    """``reasoning: <level>`` of a gpt-oss system message, as upstream renders it."""
    if not model_input:
        return None
    match = _REASONING_LEVEL.search(model_input.split("<|start|>user", 1)[0])
    return match.group(1).lower() if match else None


def _sample(where: str, row: dict) -> dict:
    """An upstream sample row as an import row (warehouse.ingest.IMPORT_COLUMNS)."""
    for column in ("index", "model_input", "answer"):
        if column not in row:
            raise UserError(f"{where}: column {column!r} is missing (an upstream sample row has index, "
                            "model_input, model_output, prompt, answer, info)")
    info = _info(row, where)
    problem_id, sample_idx = _split_index(text_field(row, "index", where, required=True), where)
    model_input = text_field(row, "model_input", where, required=False)
    completion = text_field(row, "answer", where, required=False)
    return {
        "problem_id": problem_id,
        "sample_idx": sample_idx,
        "seed": sample_idx,  # upstream seeds each request with its sample number (mode_handler.py preprocess)
        "prompt": model_input,
        "completion": completion,
        "error": None if completion is not None else "upstream saved no output (answer: null, the request failed)",
        "reasoning_level": reasoning_level(model_input),
        "problem": text_field(row, "prompt", where, required=False) or text_field(info, "prompt", where, False),
        "expected_answer": text_field(info, "expected_answer", f"{where}: info", required=False),
        "difficulty": text_field(info, "difficulty", f"{where}: info", required=False),
    }


def marts_answer(completion: str | None) -> str | None:
    """The answer the marts extract from a completion (int_answer_extractions on the answer span
    of ``final``, trimmed of spaces; empty = none): the key of a judge unit."""
    from evaluation.grading import extract_answer
    from generation.parsing import split_reasoning

    _, final = split_reasoning(completion)
    if final is None:
        return None
    span = _ANSWER_SPAN.search(final)
    answer = extract_answer(span.group(0) if span else final)
    return (answer or "").strip(" ") or None


def judged_label(kind: str, info: dict, where: str) -> str | None:
    """The label upstream judged a sample against: the dataset label (answer_judge), or in
    answer_judge_vote the vote's top answer where the vote passed (``info.label_source``, which
    upstream records; recomputed with its rule when absent)."""
    expected = text_field(info, "expected_answer", f"{where}: info", required=False)
    if kind == "answer_judge":
        return expected
    vote = info.get("vote")
    if not isinstance(vote, dict) or not vote:
        return expected
    top, top_votes = next(iter(vote.items()))
    source = info.get("label_source")
    if source is None:
        counts = [v for v in vote.values() if isinstance(v, int | float) and not isinstance(v, bool)]
        passes = (len(counts) == len(vote) and sum(counts) > 0 and top_votes >= MIN_VOTES
                  and top_votes / sum(counts) >= VOTE_RATIO)
        source = "vote" if passes else "dataset"
    return str(top) if source == "vote" else expected


@dataclass
class _Skipped:
    no_answer: int = 0
    no_label: int = 0


def _judged(files: Files, where: str, row: dict) -> tuple[bool | None, dict]:
    """A judged row's verdict and info, checked."""
    if row_kind(row) not in JUDGE_KINDS:
        raise UserError(f"{where}: not a judged sample (an {files.kind} row has index, model_input, answer, "
                        "info and judge)")
    verdict = row["judge"]
    if verdict is not None and not isinstance(verdict, bool):
        raise UserError(f"{where}: column 'judge' must be true, false or null, got {verdict!r:.40}")
    return verdict, _info(row, where)


def _check(files: Files) -> None:
    """The cheap checks of a kind's rows (no answer extraction), before anything is written."""
    for where, row in _rows(files):
        if files.kind in JUDGE_KINDS:
            _judged(files, where, row)
        elif files.kind == "vote":
            _tally(where, row)
        else:
            _sample(where, row)


def _verdicts(files: Files, skipped: _Skipped) -> ImportRows:
    from evaluation.judge import judge_unit_id

    def rows() -> Iterator[tuple[str, dict]]:
        skipped.no_answer = skipped.no_label = 0
        for where, row in _rows(files):
            verdict, info = _judged(files, where, row)
            label = judged_label(files.kind, info, where)
            answer = marts_answer(text_field(row, "answer", where, required=False))
            if label is None:
                skipped.no_label += 1
                continue
            if answer is None:
                skipped.no_answer += 1
                continue
            yield where, {
                "problem_id": judge_unit_id(label, answer),
                # Upstream keeps only the parsed verdict; this is the box it asked its judge for.
                "completion": None if verdict is None else f'\\boxed{{"match": {json.dumps(verdict)}}}',
                "error": "upstream judge gave no verdict (judge: null)" if verdict is None else None,
            }

    return rows


def _tally(where: str, row: dict) -> dict:
    if row_kind(row) != "vote":
        raise UserError(f"{where}: not a vote row (index, prompt, expected_answer, vote)")
    if not isinstance(row["vote"], dict):
        raise UserError(f"{where}: column 'vote' must be an object {{answer: count}}")
    return row["vote"]


def _tallies(files: Files, problem_source: str) -> ImportRows:
    from evaluation.judge import vote_unit_id
    from warehouse.ingest import _problem_id

    def rows() -> Iterator[tuple[str, dict]]:
        for where, row in _rows(files):
            vote = _tally(where, row)
            problem_id, _ = _problem_id(text_field(row, "index", where, required=True).strip(), problem_source)
            yield where, {
                "problem_id": vote_unit_id(problem_id),
                "sample_idx": 0,
                # The tally as upstream's vote prompt asked for it: \boxed{"answer": count, ...}.
                "completion": "\\boxed{" + json.dumps(vote, ensure_ascii=False)[1:-1] + "}",
            }

    return rows


def _selection(files: Files, base: str) -> dict:
    return {"upstream": {"kind": files.kind, "experiment": files.experiment, "timestamp": files.timestamp,
                         "files": [str(p) for p in files.files], "teacher_run": base}}


def import_upstream(
    spec: str,
    model: str,
    run_id: str | None = None,
    problem_source: str = "imported",
    progress: Callable[[int], None] | None = None,
) -> list[ImportReport]:
    """Import an upstream file or folder: its samples as teacher run ``run_id`` (default: the
    experiment's folder name), its verdicts and tallies as judge runs ``<run_id>-<kind>``."""
    found = collect(spec)
    experiment = next((f.experiment for f in found if f.experiment), None)
    base = experiment if run_id is None else run_id
    if not base:
        raise UserError(f"{spec}: not under datas/<exp>/<kind>/<timestamp>/, so the run cannot be named "
                        "after the experiment; pass --run-id")
    lake.check_name(base, "--run-id" if run_id else f"{spec}: experiment folder name (or pass --run-id)")
    by_kind = {f.kind: f for f in found}
    # The samples: answer_origin's, else those a judged file carries (the same rows plus `judge`).
    samples = next((by_kind[k] for k in ("answer_origin", *JUDGE_KINDS) if k in by_kind), None)
    skipped = {kind: _Skipped() for kind in JUDGE_KINDS}
    sources: list[tuple[Files, str, str, ImportRows]] = []  # (files, run id, purpose, rows)
    if samples is not None:
        sources.append((samples, base, "teacher", lambda: ((w, _sample(w, r)) for w, r in _rows(samples))))
    sources += [(by_kind[k], f"{base}-{k}", "judge", _verdicts(by_kind[k], skipped[k]))
                for k in JUDGE_KINDS if k in by_kind]
    if "vote" in by_kind:
        sources.append((by_kind["vote"], f"{base}-vote", "judge", _tallies(by_kind["vote"], problem_source)))
    # Every file's rows are checked before the first run is written: one bad row writes nothing (the
    # first run's rows are checked by the import itself).
    for files, *_ in sources[1:]:
        _check(files)

    reports: list[ImportReport] = []
    for files, run, purpose, rows in sources:
        report = import_rows(spec, rows, run, model, purpose=purpose, backend=BACKEND, problem_source=problem_source,
                             selection=_selection(files, base), units=purpose == "judge",
                             empty_ok=purpose == "judge", progress=progress)
        if files.older and (purpose == "teacher" or files is not samples):
            report.notes.append(f"{files.kind}: read the latest attempt {files.timestamp} (upstream's rule); "
                                f"left out {len(files.older)} older: {', '.join(files.older)}")
        counts = skipped.get(files.kind) if purpose == "judge" else None
        if counts and counts.no_answer:
            report.notes.append(f"{counts.no_answer} verdicts left out: their sample has no final answer "
                                "(truncated, or no output) for the marts to judge")
        if counts and counts.no_label:
            report.notes.append(f"{counts.no_label} verdicts left out: no label (info.expected_answer is null)")
        reports.append(report)
    return reports
