"""Bring problems and existing model outputs into the lake, idempotently and crash-safely.

Both loaders validate the whole input against the lake's schema before writing anything (bad
input writes nothing), then append only rows whose key is not yet in the lake. A problem id keeps
its first content (``prompt_sha256``): input that would give an existing id another prompt or
answer is refused. Each holds the lock of the partitions it writes around its read-then-write
step, so two at once never both write a row. Parts are atomic, so a killed import leaves whole
parts, and running it again writes exactly the missing rows.

A dataset with one row per *solution* (OpenMathReasoning: ~3.2M rows for ~306K problems) is
ingested as one problem per distinct problem text (``merge_duplicates``; on for the teacher-pool
presets). Two rows are the same problem when their texts are equal after ``problem_text_key``
(Unicode NFKC, every run of whitespace as one space, trimmed). The problem keeps the id and content
of its first row, ``<source>:<row>``; the merged rows are counted, never silently dropped. Memory
stays bounded: 24 bytes of digests per row, not the texts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from difflib import get_close_matches

from warehouse import db, lake
from warehouse.errors import UserError
from warehouse.sources import int_field, iter_rows, text_field


@dataclass(frozen=True)
class Preset:
    """Column names of a public set, and how it is ingested."""

    problem: str
    answer: str
    difficulty: str | None = None  # taken when the file has it (a pass rate in both public sets)
    # The source name the teacher configs select (generation/configs/teacher_*.yaml): the default --source.
    source: str | None = None
    # Columns that describe one solution, not the problem: left out of the problem's metadata.
    solution_columns: tuple[str, ...] = ()
    merge_duplicates: bool = False  # one problem per distinct problem text


PRESETS: dict[str, Preset] = {
    # POLARIS-Project/Polaris-Dataset-53K: problem, answer, difficulty ("k/8": a pass rate)
    "polaris": Preset("problem", "answer", "difficulty", source="polaris", merge_duplicates=True),
    # nvidia/OpenMathReasoning, split cot: one row per solution; pass_rate_72b_tir is per problem
    "openmathreasoning": Preset(
        "problem", "expected_answer", "pass_rate_72b_tir", source="openmathreasoning",
        solution_columns=("generated_solution", "generation_model", "inference_mode", "used_in_kaggle"),
        merge_duplicates=True,
    ),
    # a benchmark: every row is an item, even a repeated one
    "benchmark": Preset("problem", "answer"),
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
    merge_duplicates: bool = False
    problems: int = 0  # distinct problem texts (problem_text_key) among the rows read
    duplicate_prompts: int = 0  # rows whose problem text appears earlier in the file: merged or kept
    duplicate_examples: list[str] = field(default_factory=list)
    answer_conflicts: int = 0  # merged problems whose rows disagree on expected_answer (the first row's kept)
    conflict_examples: list[str] = field(default_factory=list)
    not_in_file: int = 0  # problems of this source in the lake that the file no longer has

    @property
    def rows_merged(self) -> int:
        return self.duplicate_prompts if self.merge_duplicates else 0


def problem_text_key(text: str) -> str:
    """What makes two rows the same problem: the text after Unicode NFKC (full-width and compatibility
    forms folded, e.g. \uff11 -> 1, \u00a0 -> space), with every run of whitespace as one space and
    no leading or trailing space. Case, punctuation and LaTeX stay significant."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


class _Duplicates:
    """First occurrence of each problem text, over a stream of rows, in 24 bytes per row
    (16-byte BLAKE2b digest of the text key, 8 of the answer): bounded by rows, not by text size."""

    def __init__(self) -> None:
        self._digests = bytearray()

    def add(self, prompt: str, answer: str | None) -> None:
        key = hashlib.blake2b(problem_text_key(prompt).encode("utf-8"), digest_size=16).digest()
        # None and "" are different answers: None digests a byte no UTF-8 text starts with.
        label = b"\xff" if answer is None else answer.encode("utf-8")
        self._digests += key + hashlib.blake2b(label, digest_size=8).digest()

    def resolve(self) -> None:
        import numpy as np

        rows = np.frombuffer(self._digests, dtype=[("text", "V16"), ("answer", "V8")])
        _, first, inverse, counts = np.unique(rows["text"], return_index=True, return_inverse=True,
                                              return_counts=True)
        self.n_rows, self.n_problems = len(rows), len(first)
        # row -> the row whose problem it repeats (itself when first); row -> rows sharing its text
        self.first_row = first.astype(np.int64)[inverse]
        self.rows_of = counts.astype(np.uint32)[inverse]
        del first, inverse, counts
        # Problems whose rows disagree on the answer: more than one distinct (text, answer) per text.
        texts, per_text = np.unique(np.unique(rows)["text"], return_counts=True)
        conflicting = np.isin(rows["text"], texts[per_text > 1])
        self.conflict_rows = np.unique(self.first_row[conflicting])
        del rows, texts, per_text, conflicting
        self._digests = bytearray()

    def is_first(self, index: int) -> bool:
        return int(self.first_row[index]) == index

    def first_repeats(self, count: int) -> list[int]:
        """The first ``count`` rows that repeat an earlier row's problem text."""
        import numpy as np

        return np.flatnonzero(self.first_row != np.arange(self.n_rows))[:count].tolist()


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


def _problem_identities(where_sql: str = "", params: list | None = None) -> dict[str, tuple[str, str | None]]:
    """problem_id -> (prompt SHA-256, expected_answer) of the problems in the lake."""
    con = db.connect(marts=False)
    try:
        columns = {c[0] for c in con.execute("SELECT * FROM problems LIMIT 0").description}
        # Parts written before prompt_sha256 existed hash on read; DuckDB's sha256 is lake.prompt_sha256.
        digest = "coalesce(prompt_sha256, sha256(prompt))" if "prompt_sha256" in columns else "sha256(prompt)"
        rows = con.execute(f"SELECT problem_id, {digest}, expected_answer FROM problems {where_sql}",
                           params or []).fetchall()
    finally:
        con.close()
    return {problem_id: (digest, answer) for problem_id, digest, answer in rows}


def _checked(table: str, row: dict, where: str) -> dict:
    """The row, after checking every value fits the lake's schema (before anything is written)."""
    try:
        lake.check_row(table, row)
    except ValueError as err:
        raise UserError(f"{where}: {err}") from None
    return row


def _shorten(text: str | None, width: int = 40) -> str:
    return repr(text if text is None or len(text) <= width else text[:width] + "...")


def ingest_problems(
    spec: str,
    source: str | None = None,
    preset: str | None = None,
    problem_col: str | None = None,
    answer_col: str | None = None,
    difficulty_col: str | None = None,
    split: str = "train",
    config: str | None = None,
    limit: int | None = None,
    merge_duplicates: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Problems of a file or dataset into ``problems/source=<source>/``.

    ``merge_duplicates`` (default: the preset's; off without one) keeps one problem per distinct
    problem text (``problem_text_key``), the first row's; off, every row is a problem and repeats
    are only counted.
    """
    chosen = None
    solution_columns: tuple[str, ...] = ()
    if preset:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        chosen = PRESETS[preset]
        source = chosen.source if source is None else source  # an empty --source is refused by name below
        problem_col = problem_col or chosen.problem
        answer_col = answer_col or chosen.answer
        solution_columns = chosen.solution_columns
        if merge_duplicates is None:
            merge_duplicates = chosen.merge_duplicates
    if source is None:
        raise UserError("--source is required" + (f" with --preset {preset}" if preset else "")
                        + "; problem ids become <source>:<row>")
    lake.check_name(source, "--source")
    merge_duplicates = bool(merge_duplicates)

    def rows() -> Iterator[tuple[int, dict]]:
        for index, row in iter_rows(spec, split=split, config=config):
            if limit is not None and index >= limit:
                return
            yield index, row

    columns: tuple[str | None, str | None, str | None] | None = None

    def record(index: int, row: dict) -> dict:
        nonlocal columns
        if columns is None:
            names = set(row)
            if chosen is not None and not difficulty_col:
                # A preset's difficulty column is taken when present (not every copy of a set has it).
                difficulty = chosen.difficulty if chosen.difficulty in names else None
            else:
                difficulty = _pick(names, difficulty_col, _DIFFICULTY_GUESSES, "difficulty", spec, False)
            columns = (
                _pick(names, problem_col, _PROBLEM_GUESSES, "problem", spec, True),
                _pick(names, answer_col, _ANSWER_GUESSES, "answer", spec, False),
                difficulty,
            )
        problem_c, answer_c, difficulty_c = columns
        where = f"{spec}: row {index}"
        skip = {c for c in columns if c} | set(solution_columns)
        extra = {k: v for k, v in row.items() if k not in skip}
        return _checked("problems", {
            "problem_id": f"{source}:{index}",
            "source": source,
            "prompt": text_field(row, problem_c, where, required=True),
            "expected_answer": text_field(row, answer_c, where, required=False) if answer_c else None,
            "difficulty": text_field(row, difficulty_c, where, required=False) if difficulty_c else None,
            "metadata": json.dumps(extra, default=str, ensure_ascii=False) if extra else None,
        }, where)

    report = IngestReport(source=source, merge_duplicates=merge_duplicates)
    # One writer per source: a second ingest waits here, then finds these rows already present.
    with lake.partition_lock("problems", {"source": source}), contextlib.ExitStack() as stack:
        present = _problem_identities("WHERE source = ?", [source])
        # Pass 1: validate everything and compare with the lake, so bad or changed input writes nothing.
        duplicates = _Duplicates()
        changed: list[str] = []
        # The new rows wait in a local spool for pass 2: the input is read once (a Hub dataset is
        # streamed, and reading it twice would download it twice).
        spool = stack.enter_context(tempfile.NamedTemporaryFile(
            "w+", encoding="utf-8", dir=lake.scratch_dir(), prefix="ingest-", suffix=".jsonl"))
        for index, row in rows():
            problem = record(index, row)
            report.rows_read += 1
            duplicates.add(problem["prompt"], problem["expected_answer"])
            old = present.get(problem["problem_id"])
            if old is None:
                spool.write(json.dumps([index, problem], ensure_ascii=False) + "\n")
                continue
            report.already_present += 1
            if old[0] != lake.prompt_sha256(problem["prompt"]):
                changed.append(f"row {index}: prompt differs")
            elif old[1] != problem["expected_answer"]:
                changed.append(f"row {index}: expected_answer {_shorten(old[1])} in the lake, "
                               f"{_shorten(problem['expected_answer'])} in the file")
        if columns is None:
            raise UserError(f"{spec}: no rows")
        if changed:
            raise UserError(
                f"{spec}: {len(changed)} of {report.already_present} rows differ from the problems source "
                f"{source!r} already holds ({'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''}); "
                f"a problem id keeps its first content, so ingest a different or edited file under another "
                f"--source (e.g. --source {source}-v2); nothing was written"
            )
        duplicates.resolve()
        report.problems = duplicates.n_problems
        report.duplicate_prompts = duplicates.n_rows - duplicates.n_problems
        report.duplicate_examples = [f"{source}:{index} = {source}:{duplicates.first_row[index]}"
                                     for index in duplicates.first_repeats(5)]
        if merge_duplicates:
            report.answer_conflicts = len(duplicates.conflict_rows)
            report.conflict_examples = [f"{source}:{i}" for i in duplicates.conflict_rows[:5].tolist()]
        report.not_in_file = len(present) - report.already_present if limit is None else 0

        # Pass 2: append the rows the lake does not have yet (with merging: first rows only).
        spool.seek(0)
        with lake.PartWriter("problems", flush_rows=FLUSH_ROWS) as writer:
            for line in spool:
                index, problem = json.loads(line)
                if merge_duplicates:
                    if not duplicates.is_first(index):
                        continue
                    if duplicates.rows_of[index] > 1:  # how many dataset rows this problem stands for
                        metadata = json.loads(problem["metadata"]) if problem["metadata"] else {}
                        metadata["source_rows"] = int(duplicates.rows_of[index])
                        problem["metadata"] = json.dumps(metadata, default=str, ensure_ascii=False)
                writer.add(problem)
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
    purpose: str = "teacher"
    notes: list[str] = field(default_factory=list)  # what an upstream import left out, and why


# The columns an import row may have (documented in README, "Bringing existing outputs").
IMPORT_COLUMNS = {
    "problem_id": "the problem: '<source>:<id>' or a bare id (gets --problem-source)",
    "sample_idx": "0, 1, ... per problem (default: order of appearance)",
    "completion": "the raw model output; reasoning and final are split from it",
    "prompt": "the rendered model input",
    "finish_reason": "stop, length, ...",
    "reasoning_level": "overrides --reasoning-level for this row",
    "error": "why the sample failed, if it did",
    "prompt_tokens": "integer",
    "completion_tokens": "integer",
    "seed": "the sampling seed, an integer",
    "problem": "the problem text, to create a problem the lake lacks",
    "expected_answer": "its dataset answer (with problem)",
    "difficulty": "its difficulty (with problem)",
}

# Rows of an import: (where, row) with IMPORT_COLUMNS keys; called once per pass.
ImportRows = Callable[[], Iterable[tuple[str, dict]]]


def _problem_id(raw: str, default_source: str) -> tuple[str, str]:
    """`<source>:<index>` ids keep their source; bare ids get the default source prefix."""
    if ":" in raw:
        source = raw.split(":", 1)[0]
        if source:
            return raw, source
    return f"{default_source}:{raw}", default_source


def _check_import_columns(row: dict, where: str) -> None:
    unknown = sorted(set(row) - set(IMPORT_COLUMNS))
    if unknown:
        hint = get_close_matches(unknown[0], IMPORT_COLUMNS, n=1)
        raise UserError(f"{where}: unknown column {unknown[0]!r}"
                        + (f" (did you mean {hint[0]!r}?)" if hint else "")
                        + f"; an import row may have: {', '.join(IMPORT_COLUMNS)}")


def _check_same_run(run_id: str, wanted: dict[str, str | None]) -> dict | None:
    """Refuse to add rows to an existing run made with another model, purpose, backend or level."""
    existing = lake.read_manifest(run_id)
    if not existing:
        return None
    for name, new in wanted.items():
        old = existing.get(name)
        if new is not None and old != new:
            raise UserError(f"run {run_id} already has samples with {name} {old!r}, this import says {new!r}; "
                            "use another --run-id (samples of one run must be alike)")
    return existing


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
    """Samples from a JSONL/Parquet file with IMPORT_COLUMNS into run ``run_id``."""

    def rows() -> Iterator[tuple[str, dict]]:
        for index, row in iter_rows(spec):
            where = f"{spec}: row {index}"
            _check_import_columns(row, where)
            yield where, row

    return import_rows(spec, rows, run_id, model, purpose=purpose, backend=backend,
                       reasoning_level=reasoning_level, problem_source=problem_source, progress=progress)


def import_rows(
    spec: str,
    source_rows: ImportRows,
    run_id: str,
    model: str,
    purpose: str = "teacher",
    backend: str = "import",
    reasoning_level: str | None = None,
    problem_source: str = "imported",
    selection: dict | None = None,
    units: bool = False,
    empty_ok: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """The import itself, for rows already in IMPORT_COLUMNS form (``import_generations``, and
    ``warehouse.upstream`` for upstream ReasonLite's files). ``units``: the ids are judge units
    (``judge:<md5>``, ``vote:<problem_id>``), not problems, so they need not be in the lake.
    ``empty_ok``: no rows is a no-op (no run), not an error."""
    from generation.parsing import split_reasoning

    lake.check_name(run_id, "--run-id")
    lake.check_name(problem_source, "--problem-source")
    report = ImportReport(run_id=run_id, purpose=purpose)

    def rows() -> Iterator[tuple[str, dict]]:
        next_sample: Counter = Counter()
        for where, row in source_rows():
            raw_id = text_field(row, "problem_id", where, required=True).strip()
            problem_id, _ = _problem_id(raw_id, problem_source)
            sample_idx = int_field(row, "sample_idx", where)
            if sample_idx is None:  # order of appearance per problem: stable across re-imports
                sample_idx = next_sample[problem_id]
            next_sample[problem_id] = max(next_sample[problem_id], sample_idx + 1)
            row["_problem_id"], row["_sample_idx"] = problem_id, sample_idx
            yield where, row

    def record(where: str, row: dict, level: str | None, created_at, split: bool) -> dict:
        completion = text_field(row, "completion", where, required=False)
        finish_reason = text_field(row, "finish_reason", where, False)
        reasoning, final = split_reasoning(completion, finish_reason) if split else (None, None)
        return _checked("generations", {
            "run_id": run_id,
            "problem_id": row["_problem_id"],
            "sample_idx": row["_sample_idx"],
            "model": model,
            "backend": backend,
            "reasoning_level": text_field(row, "reasoning_level", where, False) or level,
            "prompt": text_field(row, "prompt", where, False),
            "completion": completion,
            "reasoning": reasoning,
            "final": final,
            "finish_reason": finish_reason,
            "prompt_tokens": int_field(row, "prompt_tokens", where),
            "completion_tokens": int_field(row, "completion_tokens", where),
            "seed": int_field(row, "seed", where),
            "error": text_field(row, "error", where, False),
            "created_at": created_at,
        }, where)

    # Pass 1: validate every row (values, derived sources) before touching the lake.
    keys: set[tuple[str, int]] = set()
    new_problems: dict[str, dict] = {}
    row_levels: set[str | None] = set()
    for where, row in rows():
        key = (row["_problem_id"], row["_sample_idx"])
        if key in keys:
            raise UserError(f"{where}: duplicate (problem_id, sample_idx) {key}")
        keys.add(key)
        row_levels.add(record(where, row, reasoning_level, None, split=False)["reasoning_level"])
        problem = text_field(row, "problem", where, required=False)
        if problem:
            source = row["_problem_id"].split(":", 1)[0]
            lake.check_name(source, f"{where}: source of problem_id {row['_problem_id']!r}")
            created = _checked("problems", {
                "problem_id": row["_problem_id"], "source": source, "prompt": problem,
                "expected_answer": text_field(row, "expected_answer", where, required=False),
                "difficulty": text_field(row, "difficulty", where, required=False),
            }, where)
            first = new_problems.setdefault(row["_problem_id"], {**created, "where": where})
            if first["prompt"] != problem:
                raise UserError(f"{where}: problem_id {row['_problem_id']!r} has another problem text than "
                                f"in {first['where']}")
        report.rows_read += 1
    if not keys:
        if empty_ok:
            return report
        raise UserError(f"{spec}: no rows")

    sources = sorted({p["source"] for p in new_problems.values()})
    with contextlib.ExitStack() as locks:
        # One writer per partition, always taken in this order (run first, then sources by name).
        locks.enter_context(lake.partition_lock("generations", {"run_id": run_id, "shard": 0}))
        for source in sources:
            locks.enter_context(lake.partition_lock("problems", {"source": source}))
        existing = _check_same_run(run_id, {"purpose": purpose, "model": model, "backend": backend,
                                            "reasoning_level": reasoning_level})
        # The run's level: given, else the existing run's, else the one level every row names.
        level = reasoning_level or (existing or {}).get("reasoning_level")
        run_level = level or (next(iter(row_levels)) if len(row_levels) == 1 else None)

        ids = {pid for pid, _ in keys}
        known = {pid: identity for pid, identity in _problem_identities().items() if pid in ids}
        for problem_id, problem in sorted(new_problems.items()):
            if problem_id in known and known[problem_id][0] != lake.prompt_sha256(problem["prompt"]):
                raise UserError(f"{problem['where']}: problem_id {problem_id!r} is in the lake with "
                                "another problem text; give it another id (or drop the problem column)")
        unknown = set() if units else ids - set(known) - set(new_problems)
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

        with lake.PartWriter("problems", flush_rows=FLUSH_ROWS) as problems:
            for problem_id, problem in sorted(new_problems.items()):
                if problem_id not in known:
                    problems.add({k: v for k, v in problem.items() if k != "where"})
        report.problems_created = problems.rows_written

        manifest = dict(purpose=purpose, model=model, backend=backend, reasoning_level=run_level,
                        code_version=lake.code_version(),
                        problem_selection={"imported_from": str(spec), **(selection or {})})

        def start_run() -> None:  # once the first part is written: a failed import leaves no manifest
            lake.write_manifest(run_id, status="running", finished_at=None, **manifest)

        created_at = lake.now_utc()
        with lake.PartWriter("generations", flush_rows=FLUSH_ROWS, defaults={"shard": 0},
                             after_first_part=start_run) as writer:
            for where, row in rows():
                if (row["_problem_id"], row["_sample_idx"]) in present:
                    report.already_present += 1
                    continue
                writer.add(record(where, row, level, created_at, split=True))
                if progress:
                    progress(1)
        report.rows_written = writer.rows_written
        if writer.rows_written or existing is None:  # None: rows of an import killed before its manifest
            lake.write_manifest(run_id, status="complete", finished_at=lake.now_utc().isoformat(), **manifest)
    return report
