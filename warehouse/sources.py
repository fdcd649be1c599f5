"""Reading user files row by row with errors that name the file, row and column.

JSONL, JSON arrays, CSV and Parquet are streamed (bounded memory); a HuggingFace dataset id goes
through the real ``datasets.load_dataset`` in streaming mode. Rows come out as
``(row_index, dict)`` with 0-based indices, which become part of stable ids.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from warehouse.errors import UserError

LOCAL_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def looks_like_file(spec: str) -> bool:
    path = Path(spec)
    return path.is_file() or path.suffix.lower() in LOCAL_FORMATS


def iter_rows(spec: str, split: str = "train", config: str | None = None) -> Iterator[tuple[int, dict]]:
    """Rows of a local file, or of a dataset through ``datasets.load_dataset``: a hub id
    (``org/name``) or a local dataset folder (what a hub repo looks like once downloaded)."""
    if not looks_like_file(spec):
        return _hub_dataset(spec, split, config)
    path = Path(spec)
    if not path.exists():
        raise UserError(f"{spec}: no such file")
    kind = LOCAL_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{spec}: unknown file type {path.suffix!r}; use .jsonl, .json, .csv or .parquet")
    if path.stat().st_size == 0:
        raise UserError(f"{spec}: file is empty")
    return {"jsonl": _jsonl, "json": _json_array, "csv": _csv, "parquet": _parquet}[kind](path)


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    index = 0
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UserError(f"{path}:{line_no}: invalid UTF-8 at byte {err.start}") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{line_no}: invalid JSON ({err.msg} at column {err.colno})") from None
            except RecursionError:  # e.g. [[[[...]]]] 100k deep: refuse the row, not crash with a traceback
                raise UserError(f"{path}:{line_no}: JSON nested too deeply") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
            yield index, row
            index += 1
    if index == 0:
        raise UserError(f"{path}: no rows")


def _json_array(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: invalid UTF-8 at byte {err.start}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply") from None
    if isinstance(data, dict):  # {"data": [...]} style exports
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else None
    if not isinstance(data, list) or not data:
        raise UserError(f"{path}: expected a non-empty JSON array of objects")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {index}: expected an object, got {type(row).__name__}")
        yield index, row


def _csv(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            index = -1
            for index, row in enumerate(reader):
                if None in row:
                    raise UserError(f"{path}:{reader.line_num}: more fields than the header has")
                yield index, row
            if index < 0:
                raise UserError(f"{path}: no rows")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: invalid UTF-8 at byte {err.start}") from None
    except csv.Error as err:
        raise UserError(f"{path}: invalid CSV ({err})") from None


def _parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    if parquet.metadata.num_rows == 0:
        raise UserError(f"{path}: no rows")
    index = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            yield index, row
            index += 1


def _hub_dataset(spec: str, split: str, config: str | None) -> Iterator[tuple[int, dict]]:
    import datasets

    try:
        stream = datasets.load_dataset(spec, config, split=split, streaming=True)
    except Exception as err:  # the hub client raises many types; the message is what matters
        raise UserError(f"{spec}: cannot load dataset ({str(err).splitlines()[0]})") from None
    index = -1
    for index, row in enumerate(stream):
        yield index, dict(row)
    if index < 0:
        raise UserError(f"{spec}: split {split!r} has no rows")


def text_field(row: dict, column: str, where: str, required: bool) -> str | None:
    """A text cell: numbers become text (answers are often ints), anything else is an error."""
    if column not in row or row[column] is None or (isinstance(row[column], float) and math.isnan(row[column])):
        if required:
            raise UserError(f"{where}: column {column!r} is missing or null")
        return None
    value: Any = row[column]
    if isinstance(value, bool):
        raise UserError(f"{where}: column {column!r} must be text, got a boolean")
    if isinstance(value, int | float):
        value = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if not isinstance(value, str):
        raise UserError(f"{where}: column {column!r} must be text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # e.g. a lone surrogate "\ud800" from JSON: Parquet cannot store it
        raise UserError(f"{where}: column {column!r} is not valid Unicode text ({err.reason} at character "
                        f"{err.start})") from None
    if required and not value.strip():
        raise UserError(f"{where}: column {column!r} is empty")
    return value


def int_field(row: dict, column: str, where: str) -> int | None:
    value = row.get(column)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UserError(f"{where}: column {column!r} must be an integer, got a boolean")
    try:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        number = int(number)
    except (TypeError, ValueError):
        raise UserError(f"{where}: column {column!r} must be an integer, got {value!r:.40}") from None
    if number < 0:
        raise UserError(f"{where}: column {column!r} must be >= 0, got {number}")
    return number
