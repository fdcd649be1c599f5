"""The lake: where every table lives, its Arrow schema, and atomic hive-partitioned Parquet I/O.

This module is the only place that knows paths. Everything else asks it:
``table_dir("generations")``, ``parquet_glob("problems")``, ``exports_dir()``, ``database_path()``.

Layout (root = $REASONLITE_LAKE, default ``warehouse/lake``)::

    problems/source=<source>/part-<time>-<uuid>.parquet
    generations/run_id=<run_id>/shard=<k>/part-<time>-<uuid>.parquet
    runs/run_id=<run_id>/manifest.json

A part becomes visible only by ``os.replace`` of a finished temp file, so readers and crashes
never see half a file. Readers glob ``part-*.parquet``; temp files start with ``.tmp-``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------- paths


# DuckDB reads the lake through globs and hive paths: in the root these characters would be a
# pattern ('[', '*', '?', '{') or a partition key ('='), so another folder would be read.
_ROOT_FORBIDDEN = "[]*?{}="


def lake_root() -> Path:
    root = Path(os.environ.get("REASONLITE_LAKE") or PACKAGE_DIR / "lake").resolve()
    bad = sorted({c for c in str(root) if c in _ROOT_FORBIDDEN})
    if bad:
        raise UserError(f"lake folder {str(root)!r} (REASONLITE_LAKE) contains {' '.join(bad)}: DuckDB would read "
                        f"it as a glob or a hive key; choose a folder without any of {_ROOT_FORBIDDEN}")
    return root


def _warehouse_path(env: str, default: str) -> Path:
    return Path(os.environ.get(env) or PACKAGE_DIR / default).resolve()


def database_path() -> Path:
    """The DuckDB file dbt builds the marts into."""
    return _warehouse_path("REASONLITE_DB", "reasonlite.duckdb")


def snapshots_dir() -> Path:
    """Complete curation builds, one folder each (``<build_id>/<database file>`` and its
    ``exports/``); ``database_path()`` is a hard link to the newest one's database file."""
    database = database_path()
    return database.with_name(f"{database.stem}.snapshots")


def exports_dir() -> Path:
    return _warehouse_path("REASONLITE_EXPORTS", "exports")


def reports_dir() -> Path:
    return _warehouse_path("REASONLITE_REPORTS", "reports")


def models_dir() -> Path:
    return _warehouse_path("REASONLITE_MODELS", "models")


def checkpoints_dir() -> Path:
    return _warehouse_path("REASONLITE_CHECKPOINTS", "checkpoints")


def inputs_dir() -> Path:
    """Files made to be ingested (the demo's generated problems, benchmark copies)."""
    return _warehouse_path("REASONLITE_INPUTS", "inputs")


def quarantine_dir() -> Path:
    return lake_root() / "_quarantine"


def scratch_dir() -> Path:
    """DuckDB spill space and other throwaway files."""
    path = _warehouse_path("REASONLITE_TMP", "tmp")
    path.mkdir(parents=True, exist_ok=True)
    return path


def dbt_target_dir() -> Path:
    """dbt's own files (manifest, run results, docs): beside the marts, never in the checkout's
    dbt_project/ unless the user points DBT_TARGET_PATH there."""
    return Path(os.environ.get("DBT_TARGET_PATH") or database_path().parent / "dbt_target").resolve()


def dbt_log_dir() -> Path:
    return Path(os.environ.get("DBT_LOG_PATH") or database_path().parent / "dbt_logs").resolve()


def env_for_root(root: Path) -> dict[str, str]:
    """Environment that points every warehouse path (and dbt's own files) under ``root``:
    an isolated warehouse for a test, a benchmark or a second experiment. Models stay shared."""
    root = Path(root).resolve()
    return {
        "REASONLITE_LAKE": str(root / "lake"),
        "REASONLITE_DB": str(root / "reasonlite.duckdb"),
        "REASONLITE_EXPORTS": str(root / "exports"),
        "REASONLITE_REPORTS": str(root / "reports"),
        "REASONLITE_CHECKPOINTS": str(root / "checkpoints"),
        "REASONLITE_INPUTS": str(root / "inputs"),
        "REASONLITE_TMP": str(root / "tmp"),
        "DBT_TARGET_PATH": str(root / "dbt_target"),
        "DBT_LOG_PATH": str(root / "dbt_logs"),
    }


# Partition keys per table, outermost first. Values also stay inside the files where the schema
# has the column (run_id, source); `shard` lives only in the path.
PARTITIONS: dict[str, tuple[str, ...]] = {
    "problems": ("source",),
    "generations": ("run_id", "shard"),
    "runs": ("run_id",),
    "training_runs": ("run_id",),
}
# Small per-run tables kept as one JSON record per run (rewritten atomically as the run progresses).
RECORD_FILES = {"runs": "manifest.json", "training_runs": "record.json"}


def table_dir(table: str) -> Path:
    if table not in PARTITIONS:
        raise ValueError(f"unknown lake table {table!r}; known: {', '.join(PARTITIONS)}")
    return lake_root() / table


def partition_dir(table: str, partition: Mapping[str, Any]) -> Path:
    keys = PARTITIONS[table]
    missing = [k for k in keys if k not in partition]
    if missing:
        raise ValueError(f"{table}: partition needs {', '.join(missing)}")
    path = table_dir(table)
    for key in keys:
        path = path / f"{key}={_partition_value(key, partition[key])}"
    return path


# Partition values are folder names that DuckDB decodes when it reads them back (`%20` becomes a
# space, `__HIVE_DEFAULT_PARTITION__` NULL, `?` a glob), so only plain names are allowed.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters"


def check_name(value: Any, where: str) -> str:
    """A source or run id that can be a partition folder; ``where`` says where the value came from."""
    text = value if isinstance(value, str) else str(value)
    if not NAME_PATTERN.fullmatch(text):
        raise UserError(f"{where}: {text!r} is not a valid name ({NAME_RULE})")
    return text


def _partition_value(key: str, value: Any) -> str:
    if key == "shard":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(f"shard: {value!r} is not a shard number (an integer >= 0)")
        return str(value)
    return check_name(value, key)


def parquet_glob(table: str) -> str:
    """Glob over every visible part of a table, for DuckDB's read_parquet."""
    depth = "/".join("*" for _ in PARTITIONS[table])
    return str(table_dir(table) / depth / "part-*.parquet")


def record_path(table: str, run_id: str) -> Path:
    return partition_dir(table, {"run_id": run_id}) / RECORD_FILES[table]


def record_glob(table: str) -> str:
    return str(table_dir(table) / "*" / RECORD_FILES[table])


def manifest_path(run_id: str) -> Path:
    return record_path("runs", run_id)


# ------------------------------------------------------------------------------------------- schemas

PROBLEMS_SCHEMA = pa.schema(
    [
        ("problem_id", pa.string()),
        ("source", pa.string()),
        ("prompt", pa.string()),
        ("expected_answer", pa.string()),
        ("difficulty", pa.string()),
        ("metadata", pa.string()),  # JSON text: whatever else the source row carried
        ("prompt_sha256", pa.string()),  # content identity: a problem id never changes its prompt
    ]
)

GENERATIONS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("problem_id", pa.string()),
        ("sample_idx", pa.int32()),
        ("model", pa.string()),
        ("backend", pa.string()),
        ("reasoning_level", pa.string()),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("reasoning", pa.string()),
        ("final", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("seed", pa.int64()),
        ("temperature", pa.float32()),
        ("top_p", pa.float32()),
        ("max_tokens", pa.int32()),
        ("latency_s", pa.float32()),
        ("error", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("purpose", pa.string()),  # teacher | eval | judge | vote
        ("model", pa.string()),
        ("backend", pa.string()),
        ("reasoning_level", pa.string()),
        ("n_samples", pa.int32()),
        ("temperature", pa.float32()),
        ("top_p", pa.float32()),
        ("max_tokens", pa.int32()),
        ("prompt_template", pa.string()),
        ("problem_selection", pa.string()),  # JSON text
        ("config", pa.string()),  # JSON text: the whole resolved config
        ("status", pa.string()),  # running | complete | failed
        ("code_version", pa.string()),
        ("created_at", pa.string()),
        ("updated_at", pa.string()),
        ("finished_at", pa.string()),
        ("samples_per_s", pa.float32()),  # throughput over the run's busy time, set when it completes
        ("tokens_per_s", pa.float32()),
    ]
)

TRAINING_RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("stage", pa.string()),  # stage1 | stage2 | ...
        ("base_model", pa.string()),
        ("output_dir", pa.string()),
        ("export_path", pa.string()),
        ("export_fingerprint", pa.string()),  # hash of the exported Parquet files it trained on
        ("train_rows", pa.int64()),
        ("config", pa.string()),  # JSON text
        ("metrics", pa.string()),  # JSON text: final train loss, steps, tokens, runtime
        ("status", pa.string()),
        ("code_version", pa.string()),
        ("created_at", pa.string()),
        ("updated_at", pa.string()),
        ("finished_at", pa.string()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "problems": PROBLEMS_SCHEMA,
    "generations": GENERATIONS_SCHEMA,
    "runs": RUNS_SCHEMA,
    "training_runs": TRAINING_RUNS_SCHEMA,
}
# Columns added after the first release: parts written before them lack them and stay valid.
ADDED_COLUMNS: dict[str, frozenset[str]] = {"problems": frozenset({"prompt_sha256"})}
# Fields stored as JSON text when given as Python objects.
_JSON_FIELDS = {"config", "problem_selection", "metrics"}

# zstd keeps text-heavy parts small; ~128K-row groups let DuckDB parallelise and prune.
ROW_GROUP_SIZE = 131_072
DEFAULT_FLUSH_ROWS = 50_000


def now_utc() -> datetime:
    return datetime.now(UTC)


def prompt_sha256(prompt: str | None) -> str | None:
    """Hex SHA-256 of the UTF-8 prompt; the same as DuckDB's ``sha256(prompt)``."""
    return None if prompt is None else hashlib.sha256(prompt.encode("utf-8")).hexdigest()


_INT_BOUNDS = {pa.int32(): 2**31, pa.int64(): 2**63}


def check_value(table: str, column: str, value: Any) -> None:
    """Raise ValueError (naming the column) if ``value`` cannot be stored in ``table.column``.

    Ingest calls this on every row before writing anything, so bad input fails before the
    first part instead of halfway (text that is not UTF-8 encodable, a number over int32).
    """
    if value is None:
        return
    field = SCHEMAS[table].field(column)
    if pa.types.is_string(field.type):
        if not isinstance(value, str):
            raise ValueError(f"column {column!r} must be text, got {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"column {column!r} is not valid Unicode text ({err.reason} at character "
                             f"{err.start}: {value[err.start:err.end]!r})") from None
    elif field.type in _INT_BOUNDS:
        bound = _INT_BOUNDS[field.type]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"column {column!r} must be an integer, got {type(value).__name__}")
        if not -bound <= value < bound:
            raise ValueError(f"column {column!r}: {value} does not fit {field.type} "
                             f"(from {-bound} to {bound - 1})")
    elif pa.types.is_floating(field.type) and (
            isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)):
        raise ValueError(f"column {column!r} must be a finite number, got {value!r:.40}")


def check_row(table: str, row: Mapping[str, Any]) -> None:
    for column, value in row.items():
        if column in PARTITIONS[table] and SCHEMAS[table].get_field_index(column) < 0:
            continue  # path-only partition key (shard)
        if SCHEMAS[table].get_field_index(column) < 0:
            raise ValueError(f"{table}: unknown column {column!r}")
        check_value(table, column, value)


# -------------------------------------------------------------------------------------------- writes


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_part(table: str, data: pa.Table, partition: Mapping[str, Any]) -> Path | None:
    """Write one Parquet part into a partition atomically; returns its path (None if empty).

    The temp file is fsynced and renamed into place, so the part appears whole or not at all.
    A failure (disk full, I/O error) removes the temp file and re-raises.
    """
    if data.num_rows == 0:
        return None
    data = conform(table, data)
    directory = partition_dir(table, partition)
    directory.mkdir(parents=True, exist_ok=True)
    # Names sort in write order (16 hex digits of ns since the epoch): a glob, and so every scan of
    # the lake, reads a run's parts in the order its problems were generated, which keeps the rows of
    # a block of problems together in the SFT export's segments (dbt_project/README.md, "Incremental exports").
    name = f"part-{time.time_ns():016x}-{uuid.uuid4().hex}.parquet"
    tmp = directory / f".tmp-{name}"
    try:
        with open(tmp, "wb") as sink:
            pq.write_table(data, sink, compression="zstd", row_group_size=ROW_GROUP_SIZE)
            sink.flush()
            os.fsync(sink.fileno())
        final = directory / name
        os.replace(tmp, final)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno and not err.filename:
            # "[Errno 28] No space left on device" alone does not say where: name the part.
            raise OSError(err.errno, err.strerror or str(err), str(directory / name)) from err
        raise
    _fsync_dir(directory)
    return final


def conform(table: str, data: pa.Table) -> pa.Table:
    """Cast to the table's schema: columns in schema order, missing nullable columns as nulls."""
    schema = SCHEMAS[table]
    unknown = [n for n in data.column_names if schema.get_field_index(n) < 0 and n != "shard"]
    if unknown:
        raise ValueError(f"{table}: unknown columns {', '.join(unknown)}")
    if table == "problems" and "prompt" in data.column_names:  # the hash always follows the prompt
        hashes = pa.array([prompt_sha256(p) for p in data.column("prompt").to_pylist()], pa.string())
        data = data.drop_columns([c for c in ("prompt_sha256",) if c in data.column_names])
        data = data.append_column("prompt_sha256", hashes)
    columns = []
    for field in schema:
        if field.name in data.column_names:
            columns.append(data.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(data.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


class PartWriter:
    """Buffers rows per partition and flushes a part every ``flush_rows`` rows (bounded memory).

    Use as a context manager; leaving the block flushes what remains. Partition values are taken
    from each row's partition columns (``shard`` may be given per row or fixed in ``defaults``).
    """

    def __init__(self, table: str, flush_rows: int = DEFAULT_FLUSH_ROWS, defaults: Mapping | None = None,
                 after_first_part: Callable[[], None] | None = None):
        self.table = table
        self.flush_rows = flush_rows
        self.defaults = dict(defaults or {})
        # Called once, right after the first part is written: a run's manifest appears with its rows,
        # so a run that wrote nothing (bad input, a full disk at the first part) leaves no manifest.
        self.after_first_part = after_first_part
        self.keys = PARTITIONS[table]
        self._buffers: dict[tuple, list[dict]] = {}
        self.rows_written = 0
        self.parts: list[Path] = []

    def add(self, row: Mapping[str, Any]) -> None:
        row = {**self.defaults, **row}
        key = tuple(row[k] for k in self.keys)
        buffer = self._buffers.setdefault(key, [])
        buffer.append(row)
        if len(buffer) >= self.flush_rows:
            self._flush(key)

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.add(row)

    def flush(self) -> None:
        for key in list(self._buffers):
            self._flush(key)

    def _flush(self, key: tuple) -> None:
        rows = self._buffers.pop(key, [])
        if not rows:
            return
        partition = dict(zip(self.keys, key, strict=True))
        schema = SCHEMAS[self.table]
        data = pa.Table.from_pylist(
            [{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema
        )
        path = write_part(self.table, data, partition)
        if path:
            self.parts.append(path)
            self.rows_written += len(rows)
            if self.after_first_part is not None:
                self.after_first_part()
                self.after_first_part = None

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # On error keep what was already flushed; flush the rest only on success.
        if exc_type is None:
            self.flush()


def write_record(table: str, run_id: str, **fields: Any) -> dict:
    """Create or update one run's JSON record (``runs`` manifest, ``training_runs``) atomically."""
    schema = SCHEMAS[table]
    path = record_path(table, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = read_record(table, run_id) or {"run_id": run_id, "created_at": now_utc().isoformat()}
    for key, value in fields.items():
        if schema.get_field_index(key) < 0:
            raise ValueError(f"{table}: unknown field {key!r}")
        if key in _JSON_FIELDS and not isinstance(value, str | None):
            value = json.dumps(value, sort_keys=True, default=str)
        record[key] = value
    record["updated_at"] = now_utc().isoformat()
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}.json")
    try:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return record


def read_record(table: str, run_id: str) -> dict | None:
    path = record_path(table, run_id)
    return _load_record(table, path) if path.exists() else None


def _load_record(table: str, path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); fix or remove this {table} record") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: expected one JSON object, got {type(record).__name__}; "
                        f"fix or remove this {table} record")
    folder = path.parent.name
    if not folder.startswith("run_id=") or not NAME_PATTERN.fullmatch(folder.removeprefix("run_id=")):
        raise UserError(f"{path}: folder {folder!r} should be run_id=<name> ({NAME_RULE})")
    return record


def write_manifest(run_id: str, **fields: Any) -> dict:
    return write_record("runs", run_id, **fields)


def read_manifest(run_id: str) -> dict | None:
    return read_record("runs", run_id)


def iter_parts(table: str) -> Iterator[Path]:
    root = table_dir(table)
    if root.exists():
        yield from sorted(root.glob("/".join("*" for _ in PARTITIONS[table]) + "/part-*.parquet"))


def _same_kind(found: pa.DataType, wanted: pa.DataType) -> bool:
    """Types DuckDB reads as the column's type without loss of meaning (int32 vs int64, ...)."""
    if found == wanted or pa.types.is_null(found):
        return True
    for kind in (pa.types.is_integer, pa.types.is_floating, pa.types.is_timestamp):
        if kind(found) and kind(wanted):
            return True
    return pa.types.is_string(wanted) and (pa.types.is_string(found) or pa.types.is_large_string(found))


def part_problem(table: str, part: Path, folder: Path | None = None) -> str | None:
    """Why a part cannot be read as one of ``table``'s parts (None when it can).

    Checks its folders (``key=<valid name>`` in the table's partition order), its footer, and its
    columns against the table's Arrow schema: every column present (but those added later) with a
    compatible type, none unknown. A part that drifted (``sample_idx`` missing, ``completion``
    renamed) would otherwise be merged by ``union_by_name`` with NULLs in its rows.
    """
    folders = part.relative_to(folder or table_dir(table)).parts[:-1]
    for key, segment in zip(PARTITIONS[table], folders, strict=True):
        name, _, value = segment.partition("=")
        if name != key:
            return f"folder {segment!r} should be {key}=<value>"
        try:
            _partition_value(key, int(value) if key == "shard" and value.isdigit() else value)
        except UserError:
            return f"folder {segment!r}: {value!r} is not a valid {key} ({NAME_RULE})"
    try:
        schema = pq.read_schema(part)
    except (pa.ArrowException, OSError) as err:
        text = str(err).strip()
        return f"unreadable Parquet footer ({text.splitlines()[0] if text else type(err).__name__})"
    found = {f.name: f.type for f in schema}
    wanted = {f.name: f.type for f in SCHEMAS[table]}
    unknown = [n for n in found if n not in wanted and n not in PARTITIONS[table]]
    missing = [n for n in wanted if n not in found and n not in ADDED_COLUMNS.get(table, ())]
    wrong = [f"{n} is {found[n]}, not {t}" for n, t in wanted.items() if n in found and not _same_kind(found[n], t)]
    problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
        [f"unknown column(s) {', '.join(unknown)}"] if unknown else []) + wrong
    return f"schema differs from the lake's {table} schema: {'; '.join(problems)}" if problems else None


def _verified_ledger(table: str) -> Path:
    """Parts never change once renamed into place, so a part checked once stays good: the ledger
    lists them (path, size, mtime) in the scratch folder, and later commands only stat them
    (measured on 2 busy cores: 1,000 parts 1.3 s to check, 0.09 s once listed)."""
    digest = hashlib.sha256(str(lake_root()).encode()).hexdigest()[:16]
    return scratch_dir() / "verified-parts" / f"{digest}-{table}.tsv"


def check_table(table: str) -> None:
    """Refuse, in one line naming the file, a part or record that every read of ``table`` would trip
    on (unreadable, drifted schema, wrong folder, a manifest that is not one JSON object).
    ``reasonlite curate`` quarantines such parts; every other command stops here."""
    if table in RECORD_FILES:
        for path in sorted(table_dir(table).glob(f"*/{RECORD_FILES[table]}")):
            _load_record(table, path)
        return
    folder = table_dir(table)
    ledger = _verified_ledger(table)
    verified = set(ledger.read_text().splitlines()) if ledger.exists() else set()
    newly_verified = []
    try:
        for part in iter_parts(table):
            try:
                stat = part.stat()
            except FileNotFoundError:
                continue  # quarantined or removed by another process since the glob
            entry = f"{part.relative_to(folder)}\t{stat.st_size}\t{stat.st_mtime_ns}"
            if entry in verified:
                continue
            problem = part_problem(table, part, folder)
            if problem:
                raise UserError(f"{part}: {problem}; `reasonlite curate` moves such parts to "
                                f"{quarantine_dir()}, or move it away yourself")
            newly_verified.append(entry + "\n")
    finally:
        if newly_verified:
            ledger.parent.mkdir(parents=True, exist_ok=True)
            with open(ledger, "a") as handle:  # appends: a torn line only means one part is checked again
                handle.write("".join(newly_verified))


def unreadable_data_part(table: str, skip: set[str] = frozenset()) -> tuple[Path, str] | None:
    """The first part of ``table`` (not in ``skip``, paths as the lake glob spells them) whose data
    pages do not decode, with DuckDB's reason; None when all do. A full read of each part, so only
    for naming the part behind a read error that did not (a Thrift "Invalid data" from a damaged page
    header carries no file name); ``skip`` lists parts already read whole by an earlier build."""
    import duckdb

    con = duckdb.connect()
    try:
        for part in iter_parts(table):
            if str(part) in skip:
                continue
            try:
                reader = con.execute("SELECT * FROM read_parquet(?)", [str(part)]).fetch_record_batch(8192)
                for _ in reader:
                    pass
            except Exception as err:  # noqa: BLE001 - any decode error names this part
                text = str(err).strip()
                return part, (text.splitlines()[0] if text else type(err).__name__)
    finally:
        con.close()
    return None


def quarantine_corrupt_parts(table: str) -> list[tuple[Path, str]]:
    """Move parts that cannot be read as the table's parts out of it, into ``_quarantine/``.

    A part is only ever created by atomic rename with the table's schema, so an unreadable or
    drifted one came from outside (a bad copy, a failing disk, another tool). Readers would fail
    on it or merge it wrongly; moving it aside keeps the data for inspection and lets the
    pipeline go on. Returns (new path, reason) for each part moved.
    """
    moved = []
    for part in iter_parts(table):
        reason = part_problem(table, part)
        if reason:
            target = quarantine_dir() / part.relative_to(lake_root())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, target)
            moved.append((target, reason))
    return moved


# ---------------------------------------------------------------------------------------- locks


# A holder writes its record just after it takes the lock: a writer that finds the lock taken in
# between reads an empty file, and waits this long for the record before naming nobody.
HOLDER_RECORD_WAIT_S = 2.0


def _holder_text(handle) -> str | None:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        holder = {}
    if not holder:
        return None
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} ({holder.get('command')})"


def _lock_or_holder(handle) -> str | None:
    """Take the lock if it is free (None), else say who holds it, once its record is there."""
    deadline = time.monotonic() + HOLDER_RECORD_WAIT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            holder = _holder_text(handle)
            if holder or time.monotonic() >= deadline:
                return holder or "another process (holder unknown)"
            time.sleep(0.05)


def _say_waiting(message: str) -> None:
    print(f"reasonlite: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def partition_lock(table: str, partition: Mapping[str, Any], wait: bool = True,
                   waiting: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the one-writer lock of a partition (``fcntl.flock`` on a file under ``<lake>/_locks``).

    Ingest and import hold it around their read-then-write step, ``generate`` per (run, shard),
    so two writers never both decide a row is missing. The kernel (or the NFS server, which
    Linux maps flock onto) drops the lock when its holder dies, so a killed writer never leaves
    a stale lock. ``wait=False`` raises UserError naming the holder (pid, host, start, command);
    ``wait=True`` says once who it waits for (``waiting``, default: a line on stderr) and blocks.
    """
    folders = [f"{k}={_partition_value(k, partition[k])}" for k in PARTITIONS[table] if k in partition]
    name = " ".join([table, *folders])
    path = lake_root().joinpath("_locks", table, *folders[:-1], f"{folders[-1]}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        holder = _lock_or_holder(handle)
        if holder is not None:
            if not wait:
                raise UserError(f"{name} is being written by {holder}; "
                                f"not starting a second writer (lock {path})") from None
            (waiting or _say_waiting)(f"waiting for {name}, being written by {holder}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": now_utc().isoformat(timespec="seconds"),
                                 "command": " ".join(sys.argv[1:3]) or sys.argv[0]}))
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def code_version() -> str:
    """The git commit of the code that wrote a row (or 'unknown' outside a checkout)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
