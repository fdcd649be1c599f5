"""The LLM judge and the LLM vote: a measured fallback for the answers the symbolic grader abstains on.

Upstream ReasonLite asked the teacher itself to judge every solution against its label and to
tally each problem's answers. Here the grader (``evaluation.grading``) decides what it can, and
the LLM is asked only where it abstains (or, with ``--all``, everywhere, to compare the two):

* ``reasonlite judge`` sends each distinct (label, answer) pair the grader abstained on
  (``judged_generations.grader_abstained``) as one unit of a generation run with purpose
  ``judge``. Unit id: ``judge:<md5(label + chr(31) + answer)>`` -- computed identically in SQL
  (``'judge:' || md5(label || chr(31) || answer)``), which is how the marts join a verdict back to
  every sample with that pair; there is no mapping table to keep in sync.
* ``reasonlite vote-llm`` sends one unit per problem, ``vote:<problem_id>``, listing the voting
  samples' extracted answers (``int_llm_tallies.answers``), and asks for upstream's JSON tally.

Verdicts are stored raw in the lake (generations rows) and parsed when the marts are built, by
the ONE parser below (``parse_verdict``, ``parse_tally``), registered on DuckDB by the dbt plugin
as ``judge_verdict(text)`` and ``judge_tally(text)``. Parsing is strict: the final text (after
the reasoning, ``generation.parsing.split_reasoning``) must hold a ``\\boxed{...}`` whose content
(the grader's ``extract_answer``) is a JSON object (``json.loads``, never eval) of bounded size,
with ``"match"`` a JSON boolean, resp. answer -> positive integer count. Anything else --
``"yes"``, conflicting duplicate keys, two contradicting boxes, no box, a truncated output -- is
recorded as unparseable (NULL), never guessed.

When does the grader abstain? ``grader_abstains(gold_key, pred_key, equal)``: the canonical keys
differ, the grader found no equivalence, and a side is either an unparseable answer (fallback
``str:`` key) or free-form text (``text:`` key: words compared only as normalized strings, e.g.
``\\text{the set of all primes}`` vs ``primes``). Registered on DuckDB as ``grader_abstains``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from warehouse.errors import UserError

# Size bounds: model output can be anything, parsing must stay cheap and bounded.
MAX_TEXT_CHARS = 200_000  # of a completion, only the tail is read (the verdict comes last)
MAX_VERDICT_CHARS = 2_000  # a verdict box holds a tiny object: {"match": true}
MAX_TALLY_CHARS = 100_000  # a tally box lists at most a few hundred answers
MAX_TALLY_ENTRIES = 1_000
MAX_TALLY_ANSWER_CHARS = 1_000
MAX_TALLY_COUNT = 1_000_000

UNIT_SEP = "\x1f"  # chr(31), the ASCII unit separator: cannot be confused with answer text
JUDGE_PREFIX = "judge:"
VOTE_PREFIX = "vote:"


# ------------------------------------------------------------------------------------- unit ids


def judge_unit_id(label: str, answer: str) -> str:
    """Stable id of one (label, answer) pair; SQL: ``'judge:' || md5(label || chr(31) || answer)``."""
    digest = hashlib.md5((label + UNIT_SEP + answer).encode("utf-8")).hexdigest()
    return JUDGE_PREFIX + digest


def vote_unit_id(problem_id: str) -> str:
    return VOTE_PREFIX + problem_id


# -------------------------------------------------------------------------------------- parsing


def _grading():
    # Lazy: importing this module (dbt plugin, CLI --help) must not pay for the grader.
    from evaluation import grading

    return grading


class _Conflict(ValueError):
    pass


def _object_without_conflicts(pairs: list[tuple[str, Any]]) -> dict:
    # json.loads keeps the last of duplicate keys; a judge that says true and false is no verdict.
    out: dict = {}
    for key, value in pairs:
        if key in out and (out[key] != value or type(out[key]) is not type(value)):
            raise _Conflict(f"conflicting values for {key!r}")
        out[key] = value
    return out


_LATEX_BACKSLASH = re.compile(r'\\(["\\])|\\')


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: Python's json accepts them by default


def boxed_json(text: str | None, max_chars: int) -> dict | None:
    """The JSON object in the last ``\\boxed{}`` of a completion's final text, or None.

    Both ``\\boxed{"match": true}`` (upstream's f-string gave the model that shape: the box's own
    braces are the object's) and ``\\boxed{{"match": true}}`` / ``\\boxed{\\{"match": true\\}}``
    are read.
    """
    if not isinstance(text, str) or not text:
        return None
    from generation.parsing import split_reasoning

    _, final = split_reasoning(text[-MAX_TEXT_CHARS:])
    if not final or ("\\boxed" not in final and "\\fbox" not in final):
        return None  # the prompt asks for a box: no box (or only one inside the reasoning), no verdict
    content = _grading().extract_answer(final)
    if content is None:
        return None
    content = content.strip()
    if not content or len(content) > max_chars:
        return None
    if content.startswith("\\{") and content.endswith("\\}"):
        content = "{" + content[2:-2] + "}"
    if not content.startswith("{"):
        content = "{" + content + "}"
    # Backslashes in a box are LaTeX (\frac, \neq, \times), not JSON escapes that would turn them
    # into form feeds, newlines and tabs; only \" and \\ keep their JSON meaning.
    content = _LATEX_BACKSLASH.sub(lambda m: m.group(0) if m.group(1) else "\\\\", content)
    try:
        value = json.loads(content, object_pairs_hook=_object_without_conflicts, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def parse_verdict(text: str | None) -> bool | None:
    """True / False from ``\\boxed{"match": true|false}``; None when the output holds no such verdict."""
    try:
        obj = boxed_json(text, MAX_VERDICT_CHARS)
    except Exception:  # noqa: BLE001 - a pathological output is unparseable, never a crash
        return None
    if obj is None:
        return None
    value = obj.get("match")
    return value if isinstance(value, bool) else None  # "yes", 1, "true": not the JSON asked for


def parse_tally(text: str | None) -> dict[str, int] | None:
    """``{"answer": count, ...}`` from the last box (answers stripped, counts positive integers),
    in the model's order; None when malformed in any entry."""
    try:
        obj = boxed_json(text, MAX_TALLY_CHARS)
    except Exception:  # noqa: BLE001
        return None
    if not obj or len(obj) > MAX_TALLY_ENTRIES:
        return None
    tally: dict[str, int] = {}
    for key, count in obj.items():
        answer = key.strip()
        if not answer or len(answer) > MAX_TALLY_ANSWER_CHARS or answer in tally:
            return None
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_TALLY_COUNT:
            return None
        tally[answer] = count
    return tally


def tally_json(text: str | None) -> str | None:
    """``parse_tally`` as JSON text for SQL: ``[{"answer": ..., "count": ...}]``, most votes first
    (ties keep the model's order, as upstream sorted)."""
    tally = parse_tally(text)
    if tally is None:
        return None
    ranked = sorted(tally.items(), key=lambda item: -item[1])
    return json.dumps([{"answer": a, "count": c} for a, c in ranked], ensure_ascii=False)


# ------------------------------------------------------------------------------------ abstention


def grader_abstains(gold_key: str | None, pred_key: str | None, equal: bool | None = None) -> bool:
    """Whether the grader's verdict on (gold, answer) is no real decision: the keys differ, the
    grader found them not equal, and a side is unparseable (fallback key) or free-form words."""
    if gold_key is None or pred_key is None or equal or gold_key == pred_key:
        return False
    grading = _grading()
    return any(grading.is_fallback_key(k) or grading.key_kind(k) == "text" for k in (gold_key, pred_key))


# ------------------------------------------------------------------------------------ DuckDB UDFs


def _vector(fn: Callable[..., Any], out_type, arity: int = 1):
    """A vectorized Arrow UDF (one call per DuckDB vector); NULL first argument -> NULL."""
    import pyarrow as pa

    def apply(*columns):
        rows = zip(*(c.to_pylist() for c in columns), strict=True)
        return pa.array([None if args[0] is None else fn(*args) for args in rows], type=out_type)

    # DuckDB reads the parameter count from the signature, so no *args here.
    if arity == 1:
        return lambda a: apply(a)
    return lambda a, b, c: apply(a, b, c)


def register_udfs(conn) -> None:
    """``judge_verdict(text)``, ``judge_tally(text)`` and ``grader_abstains(gold_key, pred_key,
    equal)`` on a DuckDB connection (the dbt plugin calls this on every connection)."""
    import contextlib

    import pyarrow as pa

    functions = [
        ("judge_verdict", _vector(parse_verdict, pa.bool_()), ["VARCHAR"], "BOOLEAN"),
        ("judge_tally", _vector(tally_json, pa.string()), ["VARCHAR"], "VARCHAR"),
        ("grader_abstains", _vector(grader_abstains, pa.bool_(), 3), ["VARCHAR", "VARCHAR", "BOOLEAN"], "BOOLEAN"),
    ]
    for name, fn, params, returns in functions:
        with contextlib.suppress(Exception):  # not registered yet on this connection
            conn.remove_function(name)
        conn.create_function(name, fn, params, returns, type="arrow", null_handling="special", side_effects=False)


# ------------------------------------------------------------------------------- what to send


def _marts_query(sql: str, needs: str) -> list[tuple]:
    import duckdb

    from warehouse import db, lake

    if not lake.database_path().exists():
        raise UserError(f"no curation marts at {lake.database_path()}: run `reasonlite curate` first")
    con = db.connect(read_only=True)
    try:
        return con.execute(sql).fetchall()
    except duckdb.Error as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"{needs} is missing or out of date ({first}); run `reasonlite curate` first") from None
    finally:
        con.close()


@dataclass
class Pair:
    label: str
    answer: str
    n_samples: int  # samples of the curated runs judged on this pair
    abstained: bool

    @property
    def unit_id(self) -> str:
        return judge_unit_id(self.label, self.answer)


def judge_pairs(all_pairs: bool = False, limit: int | None = None) -> list[Pair]:
    """Distinct (label, answer) pairs of the samples that reach the label check
    (``judged_generations.is_well_formed``): those the grader abstained on, or all of them.
    Most frequent first, so ``limit`` judges the pairs that decide the most samples."""
    where = "" if all_pairs else " AND grader_abstained"
    sql = (
        "SELECT label, answer, count(*) AS n, bool_or(grader_abstained) FROM judged_generations "
        f"WHERE is_well_formed AND label IS NOT NULL AND answer IS NOT NULL{where} "
        "GROUP BY label, answer ORDER BY n DESC, label, answer"
        + (f" LIMIT {int(limit)}" if limit is not None else "")
    )
    rows = _marts_query(sql, "judged_generations.grader_abstained")
    return [Pair(label, answer, int(n), bool(abstained)) for label, answer, n, abstained in rows]


def vote_problems(all_problems: bool = False, limit: int | None = None) -> list[tuple[str, list[str], bool]]:
    """(problem_id, voting answers in sample order, symbolic_abstained) from int_llm_tallies:
    problems whose symbolic tally involves an answer the grader cannot key, or all of them."""
    where = "" if all_problems else " AND symbolic_abstained"
    sql = (
        "SELECT problem_id, answers, symbolic_abstained FROM int_llm_tallies "
        f"WHERE n_answered > 0{where} ORDER BY problem_id"
        + (f" LIMIT {int(limit)}" if limit is not None else "")
    )
    rows = _marts_query(sql, "int_llm_tallies")
    return [(pid, list(answers), bool(abstained)) for pid, answers, abstained in rows]


# ----------------------------------------------------------------------------------------- runs


@dataclass
class LLMRunReport:
    command: str
    run_id: str
    units: int  # units selected (pairs or problems)
    samples_covered: int = 0  # judge: samples of the curated runs these pairs decide
    already_done: int = 0
    written: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    status: str = "nothing to do"
    dry_run: bool = False
    extra: dict = field(default_factory=dict)


def _load_judge_config(path: str, overrides: Sequence[str]):
    from generation.config import load_config

    config = load_config(path, list(overrides))
    if config.purpose != "judge":
        raise UserError(f"{config.where}: purpose: must be 'judge' for LLM judge / vote runs, got {config.purpose!r}")
    return config


def _run_units(config, units: list, report: LLMRunReport, progress: bool) -> LLMRunReport:
    if not units:
        return report
    from generation.cli import ensure_local_model
    from generation.runner import run_generation

    ensure_local_model(config)
    started = time.monotonic()
    summary = run_generation(config, units=units, progress=progress)
    report.seconds = time.monotonic() - started
    report.already_done = summary.units_already_done
    report.written = summary.samples_written
    report.errors = summary.errors
    report.prompt_tokens = summary.prompt_tokens
    report.completion_tokens = summary.completion_tokens
    report.status = summary.status
    return report


def run_judge(config_path: str, overrides: Sequence[str] = (), all_pairs: bool = False, limit: int | None = None,
              dry_run: bool = False, progress: bool = True) -> LLMRunReport:
    """``reasonlite judge``: one generation run (purpose judge) over the abstained pairs (or all)."""
    from evaluation.judge_prompts import judge_messages

    config = _load_judge_config(config_path, overrides)
    pairs = judge_pairs(all_pairs, limit)
    report = LLMRunReport("judge", config.run_id, len(pairs), samples_covered=sum(p.n_samples for p in pairs),
                          dry_run=dry_run, extra={"abstained": sum(p.abstained for p in pairs)})
    if dry_run:
        return report
    units = [(p.unit_id, judge_messages(p.label, p.answer)) for p in pairs]
    return _run_units(config, units, report, progress)


def run_vote_llm(config_path: str, overrides: Sequence[str] = (), all_problems: bool = False,
                 limit: int | None = None, dry_run: bool = False, progress: bool = True) -> LLMRunReport:
    """``reasonlite vote-llm``: upstream's LLM tally, one unit per problem."""
    from evaluation.judge_prompts import vote_messages

    config = _load_judge_config(config_path, overrides)
    problems = vote_problems(all_problems, limit)
    report = LLMRunReport("vote-llm", config.run_id, len(problems),
                          samples_covered=sum(len(a) for _, a, _ in problems), dry_run=dry_run,
                          extra={"abstained": sum(ab for _, _, ab in problems)})
    if dry_run:
        return report
    units = [(vote_unit_id(pid), vote_messages(answers)) for pid, answers, _ in problems]
    return _run_units(config, units, report, progress)


def format_report(report: LLMRunReport, all_units: bool) -> str:
    what = {"judge": "(label, answer) pairs", "vote-llm": "problems"}[report.command]
    scope = "all" if all_units else "grader abstained on"
    covered = "samples" if report.command == "judge" else "answers"
    head = (f"{report.command} {report.run_id}: {report.units} {what} ({scope}; "
            f"{report.extra.get('abstained', 0)} abstained), covering {report.samples_covered} {covered}")
    if report.dry_run:
        return head + "; dry run, nothing sent"
    if not report.units:
        return head + "; nothing to send"
    lines = [
        head,
        f"sent {report.written} ({report.already_done} already done in this run, {report.errors} with error) "
        f"in {report.seconds:.1f}s: {report.prompt_tokens} prompt + {report.completion_tokens} completion tokens; "
        f"run {report.status}",
        "next: `reasonlite curate`, then `reasonlite sql \"select * from judge_agreement\"`",
    ]
    if report.errors:
        lines.append(f"{report.errors} units failed (error column); run the same command again to retry them")
    return "\n".join(lines)
