"""The lake: where every table lives, its Arrow schema, and atomic hive-partitioned Parquet I/O.

This module is the only place that knows paths. Everything else asks it:
``table_dir("generations")``, ``parquet_glob("problems")``, ``exports_dir()``, ``database_path()``.

Layout (root = $REASONLITE_LAKE, default ``warehouse/lake``)::

    problems/source=<source>/part-<uuid>.parquet
    generations/run_id=<run_id>/shard=<k>/part-<uuid>.parquet
    runs/run_id=<run_id>/manifest.json

A part becomes visible only by ``os.replace`` of a finished temp file, so readers and crashes
never see half a file. Readers glob ``part-*.parquet``; temp files start with ``.tmp-``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

PACKAGE_DIR = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------- paths


def lake_root() -> Path:
    return Path(os.environ.get("REASONLITE_LAKE") or PACKAGE_DIR / "lake").resolve()


def _warehouse_path(env: str, default: str) -> Path:
    return Path(os.environ.get(env) or PACKAGE_DIR / default).resolve()


def database_path() -> Path:
    """The DuckDB file dbt builds the marts into."""
    return _warehouse_path("REASONLITE_DB", "reasonlite.duckdb")


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


def _partition_value(key: str, value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in "/\\=\0") or text in (".", ".."):
        raise ValueError(f"invalid {key} {text!r}: must be non-empty without '/', '\\' or '='")
    return text


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
# Fields stored as JSON text when given as Python objects.
_JSON_FIELDS = {"config", "problem_selection", "metrics"}

# zstd keeps text-heavy parts small; ~128K-row groups let DuckDB parallelise and prune.
ROW_GROUP_SIZE = 131_072
DEFAULT_FLUSH_ROWS = 50_000


def now_utc() -> datetime:
    return datetime.now(UTC)


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
    name = f"part-{uuid.uuid4().hex}.parquet"
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

    def __init__(self, table: str, flush_rows: int = DEFAULT_FLUSH_ROWS, defaults: Mapping | None = None):
        self.table = table
        self.flush_rows = flush_rows
        self.defaults = dict(defaults or {})
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
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def write_manifest(run_id: str, **fields: Any) -> dict:
    return write_record("runs", run_id, **fields)


def read_manifest(run_id: str) -> dict | None:
    return read_record("runs", run_id)


def iter_parts(table: str) -> Iterator[Path]:
    root = table_dir(table)
    if root.exists():
        yield from sorted(root.glob("/".join("*" for _ in PARTITIONS[table]) + "/part-*.parquet"))


def quarantine_corrupt_parts(table: str) -> list[tuple[Path, str]]:
    """Move parts whose Parquet footer cannot be read out of the table, into ``_quarantine/``.

    A part is only ever created by atomic rename, so a corrupt one came from outside (a bad copy,
    a failing disk). Readers would fail on it; moving it aside keeps the data for inspection and
    lets the pipeline go on. Returns (new path, reason) for each part moved.
    """
    moved = []
    for part in iter_parts(table):
        try:
            pq.read_metadata(part)
        except (pa.ArrowException, OSError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            target = quarantine_dir() / part.relative_to(lake_root())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, target)
            moved.append((target, reason))
    return moved


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
