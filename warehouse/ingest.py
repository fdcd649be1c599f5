"""Bring problems and existing model outputs into the lake, idempotently and crash-safely.

Both loaders validate the whole input before writing anything (bad input writes nothing), then
append only rows whose key is not yet in the lake. Parts are atomic, so a killed import leaves
whole parts, and running it again writes exactly the missing rows.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from warehouse import db, lake
from warehouse.errors import UserError
from warehouse.sources import int_field, iter_rows, text_field

# Column names in the public sets we ingest: (problem column, answer column, difficulty column).
PRESETS: dict[str, dict[str, str | None]] = {
    "polaris": {"problem": "problem", "answer": "answer", "difficulty": "difficulty"},
    "openmathreasoning": {"problem": "problem", "answer": "expected_answer", "difficulty": None},
    "benchmark": {"problem": "problem", "answer": "answer", "difficulty": None},
}
_PROBLEM_GUESSES = ("problem", "question", "prompt")
_ANSWER_GUESSES = ("expected_answer", "answer", "final_answer", "label")
_DIFFICULTY_GUESSES = ("difficulty", "level")

FLUSH_ROWS = 20_000


@dataclass
class IngestReport:
    source: str
    rows_read: int = 0
    rows_written: int = 0
    already_present: int = 0
    duplicate_prompts: int = 0  # rows whose exact prompt appears earlier in this source
    duplicate_examples: list[str] = field(default_factory=list)


def _pick(columns: set[str], wanted: str | None, guesses: tuple[str, ...], role: str, spec: str,
          required: bool) -> str | None:
    if wanted:
        if wanted not in columns:
            raise UserError(f"{spec}: no column {wanted!r} for the {role}; columns are: {', '.join(sorted(columns))}")
        return wanted
    for guess in guesses:
        if guess in columns:
            return guess
    if required:
        raise UserError(f"{spec}: cannot find the {role} column (tried {', '.join(guesses)}); "
                        f"columns are: {', '.join(sorted(columns))}; pass --{role}-col")
    return None


def _existing(sql: str, params: list) -> set:
    con = db.connect(marts=False)
    try:
        return {tuple(r) if len(r) > 1 else r[0] for r in con.execute(sql, params).fetchall()}
    finally:
        con.close()


def ingest_problems(
    spec: str,
    source: str,
    preset: str | None = None,
    problem_col: str | None = None,
    answer_col: str | None = None,
    difficulty_col: str | None = None,
    split: str = "train",
    config: str | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    lake.partition_dir("problems", {"source": source})  # validates the source name early
    if preset:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        chosen = PRESETS[preset]
        problem_col = problem_col or chosen["problem"]
        answer_col = answer_col or chosen["answer"]
        difficulty_col = difficulty_col or chosen["difficulty"]

    def rows() -> Iterator[tuple[int, dict]]:
        for index, row in iter_rows(spec, split=split, config=config):
            if limit is not None and index >= limit:
                return
            yield index, row

    # Pass 1: validate everything, so bad input writes nothing.
    columns: tuple[str | None, str | None, str | None] | None = None
    report = IngestReport(source=source)
    seen_prompts: dict[str, int] = {}
    for index, row in rows():
        if columns is None:
            names = set(row)
            columns = (
                _pick(names, problem_col, _PROBLEM_GUESSES, "problem", spec, True),
                _pick(names, answer_col, _ANSWER_GUESSES, "answer", spec, False),
                _pick(names, difficulty_col, _DIFFICULTY_GUESSES, "difficulty", spec, False)
                if difficulty_col or preset is None else difficulty_col,
            )
        where = f"{spec}: row {index}"
        prompt = text_field(row, columns[0], where, required=True)
        if columns[1]:
            text_field(row, columns[1], where, required=False)
        report.rows_read += 1
        if prompt in seen_prompts:
            report.duplicate_prompts += 1
            if len(report.duplicate_examples) < 5:
                report.duplicate_examples.append(f"{source}:{index} = {source}:{seen_prompts[prompt]}")
        else:
            seen_prompts[prompt] = index
    if columns is None:
        raise UserError(f"{spec}: no rows")
    del seen_prompts

    # Pass 2: append the rows the lake does not have yet.
    present = _existing("SELECT problem_id FROM problems WHERE source = ?", [source])
    problem_c, answer_c, difficulty_c = columns
    used = {c for c in columns if c}
    with lake.PartWriter("problems", flush_rows=FLUSH_ROWS) as writer:
        for index, row in rows():
            problem_id = f"{source}:{index}"
            if problem_id in present:
                report.already_present += 1
                continue
            where = f"{spec}: row {index}"
            extra = {k: v for k, v in row.items() if k not in used}
            writer.add({
                "problem_id": problem_id,
                "source": source,
                "prompt": text_field(row, problem_c, where, required=True),
                "expected_answer": text_field(row, answer_c, where, required=False) if answer_c else None,
                "difficulty": text_field(row, difficulty_c, where, required=False) if difficulty_c else None,
                "metadata": json.dumps(extra, default=str, ensure_ascii=False) if extra else None,
            })
            if progress:
                progress(1)
    report.rows_written = writer.rows_written
    return report


@dataclass
class ImportReport:
    run_id: str
    rows_read: int = 0
    rows_written: int = 0
    already_present: int = 0
    problems_created: int = 0


def _problem_id(raw: str, default_source: str) -> tuple[str, str]:
    """`<source>:<index>` ids keep their source; bare ids get the default source prefix."""
    if ":" in raw:
        source = raw.split(":", 1)[0]
        if source:
            return raw, source
    return f"{default_source}:{raw}", default_source


def import_generations(
    spec: str,
    run_id: str,
    model: str,
    purpose: str = "teacher",
    backend: str = "import",
    reasoning_level: str | None = None,
    problem_source: str = "imported",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    from generation.parsing import split_reasoning

    lake.partition_dir("generations", {"run_id": run_id, "shard": 0})  # validates run_id early
    report = ImportReport(run_id=run_id)

    def rows() -> Iterator[tuple[int, str, dict]]:
        next_sample: Counter = Counter()
        for index, row in iter_rows(spec):
            where = f"{spec}: row {index}"
            raw_id = text_field(row, "problem_id", where, required=True).strip()
            problem_id, _ = _problem_id(raw_id, problem_source)
            sample_idx = int_field(row, "sample_idx", where)
            if sample_idx is None:  # order of appearance per problem: stable across re-imports
                sample_idx = next_sample[problem_id]
            next_sample[problem_id] = max(next_sample[problem_id], sample_idx + 1)
            row["_problem_id"], row["_sample_idx"] = problem_id, sample_idx
            yield index, where, row

    # Pass 1: validate, collect keys and problems the lake lacks.
    keys: set[tuple[str, int]] = set()
    new_problems: dict[str, dict] = {}
    for _, where, row in rows():
        key = (row["_problem_id"], row["_sample_idx"])
        if key in keys:
            raise UserError(f"{where}: duplicate (problem_id, sample_idx) {key}")
        keys.add(key)
        text_field(row, "completion", where, required=False)
        for column in ("prompt", "finish_reason", "reasoning_level", "error"):
            text_field(row, column, where, required=False)
        for column in ("prompt_tokens", "completion_tokens"):
            int_field(row, column, where)
        problem = text_field(row, "problem", where, required=False)
        if problem and row["_problem_id"] not in new_problems:
            new_problems[row["_problem_id"]] = {
                "prompt": problem,
                "expected_answer": text_field(row, "expected_answer", where, required=False),
            }
        report.rows_read += 1
    if not keys:
        raise UserError(f"{spec}: no rows")

    known = _existing("SELECT problem_id FROM problems", [])
    unknown = {pid for pid, _ in keys} - known - set(new_problems)
    if unknown:
        example = sorted(unknown)[0]
        raise UserError(
            f"{spec}: {len(unknown)} problem_id(s) not in the lake, e.g. {example!r}; ingest the problems "
            "first or give `problem` and `expected_answer` columns"
        )
    present = _existing(
        # Every key already imported counts, errored ones too: importing the same file twice is a no-op.
        "SELECT problem_id, sample_idx FROM generations WHERE run_id = ?", [run_id]
    )

    lake.write_manifest(
        run_id, purpose=purpose, model=model, backend=backend, reasoning_level=reasoning_level,
        status="running", code_version=lake.code_version(),
        problem_selection={"imported_from": str(spec)},
    )
    with lake.PartWriter("problems", flush_rows=FLUSH_ROWS) as problems:
        for problem_id, problem in sorted(new_problems.items()):
            if problem_id in known:
                continue
            problems.add({"problem_id": problem_id, "source": problem_id.split(":", 1)[0], **problem})
    report.problems_created = problems.rows_written

    created_at = lake.now_utc()
    with lake.PartWriter("generations", flush_rows=FLUSH_ROWS, defaults={"shard": 0}) as writer:
        for _, where, row in rows():
            key = (row["_problem_id"], row["_sample_idx"])
            if key in present:
                report.already_present += 1
                continue
            completion = text_field(row, "completion", where, required=False)
            reasoning, final = split_reasoning(completion) if completion is not None else (None, None)
            writer.add({
                "run_id": run_id,
                "problem_id": key[0],
                "sample_idx": key[1],
                "model": model,
                "backend": backend,
                "reasoning_level": text_field(row, "reasoning_level", where, False) or reasoning_level,
                "prompt": text_field(row, "prompt", where, False),
                "completion": completion,
                "reasoning": reasoning,
                "final": final,
                "finish_reason": text_field(row, "finish_reason", where, False),
                "prompt_tokens": int_field(row, "prompt_tokens", where),
                "completion_tokens": int_field(row, "completion_tokens", where),
                "error": text_field(row, "error", where, False),
                "created_at": created_at,
            })
            if progress:
                progress(1)
    report.rows_written = writer.rows_written
    lake.write_manifest(run_id, status="complete", finished_at=lake.now_utc().isoformat())
    return report
