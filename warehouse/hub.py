"""`reasonlite export` and `reasonlite publish`: the curated SFT strata as a HuggingFace dataset.

Export reads the two strata the SQL stages write, each a folder of Parquet segments
(``<exports>/sft_short_cot/part-<build>-<n>.parquet`` ..., ``sft_long_cot/``; files whose names start
with ``_`` or ``.`` are not data; an older curate's single ``sft_short_cot.parquet`` is read the same
way as a folder of one segment) and builds a dataset folder that
``datasets.load_dataset(DIR, "short_cot")`` reads as is::

    README.md                 dataset card: YAML `configs:` + `dataset_info:`, curation vars, lineage
    lineage.json              the same lineage, machine-readable (fingerprints, runs, code version)
    data/short_cot/train-00000-of-00002.parquet ...   shards of at most 500 MB
    data/long_cot/train-00000-of-00001.parquet

A segment already in the shards' schema and within the shard size becomes a shard by hard link (a
copy across filesystems): at real volume (tens of GB of text) an export then rewrites only what a
curate wrote in another layout. Every row of a segment is read once, for the row checks and the
fingerprint, the first time an export sees it: what that pass computes (row count, token sums, the
rows' digests) is kept in ``<exports>/.export_cache/<sha256>.arrow`` (:class:`ExportCache`), keyed by
the segment's sha256 in ``curation_build.json``, so after an incremental curate an export decodes only
the new segments and gives the same fingerprint as without the cache.
A linked shard shares its inode with a published segment: replace a shard by rename, never write into it.

``--format upstream-jsonl`` writes upstream ReasonLite's training format instead (what its
``utils/saving_to_training_format.py`` writes for open-r1): ``<config>/data_part<k>.jsonl``, 100,000
rows each, one ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`` per line.

The folder is built beside its destination and renamed into place, so a reader never sees half an
export. Each config's *fingerprint* (:func:`fingerprint_rows`) is a digest of its rows' values,
whatever their order and however they are split into files; training recomputes it on the shards and
records it, so ``reasonlite sql`` can tell which data made a checkpoint.

Publish uploads that folder with huggingface_hub. The token comes from ``HF_TOKEN`` or the login
cache and is never printed or logged; error messages are scrubbed of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse import lake
from warehouse.errors import UserError
from warehouse.snapshots import SEGMENTS_DIR, STRATA_DIRS

# config name -> the stratum folder the SQL stages export
STRATA = {folder.removeprefix("sft_"): folder for folder in STRATA_DIRS}
MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
# The input contract (dbt exports). Integer widths may differ; strings may be large_string.
REQUIRED_COLUMNS = {
    "problem_id": "string",
    "source": "string",
    "run_id": "string",
    "sample_idx": "integer",
    "teacher_model": "string",
    "reasoning_level": "string",
    "stratum": "string",
    "label": "string",
    "label_source": "string",
    "prompt_tokens": "integer",
    "completion_tokens": "integer",
    "messages": "messages",
}
MAX_SHARD_BYTES = 500 * 1024**2  # the Hub's recommendation for Parquet shards
MIN_SHARD_MB = 1  # below this the Parquet footer allowance leaves no room for rows
BATCH_ROWS = 1024
DATASET_DIRNAME = "hf_dataset"
FORMATS = ("hf", "upstream-jsonl")
UPSTREAM_DIRNAME = "upstream_jsonl"
UPSTREAM_CHUNK_ROWS = 100_000  # upstream's chunk_size (utils/saving_to_training_format.py)
LINEAGE_FILE = "lineage.json"
# What publish uploads (upload caches and temp files stay local).
PUBLISH_PATTERNS = ["README.md", LINEAGE_FILE, "data/**/*.parquet"]


def default_export_dir(fmt: str = "hf") -> Path:
    return lake.exports_dir() / (DATASET_DIRNAME if fmt == "hf" else UPSTREAM_DIRNAME)


def config_files(export_dir: Path, config: str) -> list[Path]:
    """The Parquet shards of one config of an exported dataset, in order."""
    return sorted((Path(export_dir) / "data" / config).glob("train-*.parquet"))


def stratum_source(folder_name: str) -> Path:
    """Where a published stratum is: its folder of segments or, from an older curate, its single file."""
    folder = lake.exports_dir() / folder_name
    single = folder.with_name(f"{folder_name}.parquet")
    if folder.is_dir():
        return folder
    if single.is_file():
        return single
    raise UserError(f"{folder}: not found; run `reasonlite curate` to export the SFT strata first")


def segment_files(source: Path) -> list[Path]:
    """A stratum's data files in name order: the folder's files, except those whose names start with
    ``_`` (a segment index) or ``.`` (temp files), or the single file of the older layout."""
    if not source.is_dir():
        return [source]
    segments = []
    for path in sorted(source.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if not path.is_file():
            raise UserError(f"{path}: not a Parquet segment (a stratum folder holds only segment files)")
        segments.append(path)
    return segments


# ---------------------------------------------------------------------------------------- fingerprint

FINGERPRINT_METHOD = "rows-sha256-v1"  # recorded beside each fingerprint: what it is a digest of
_FINGERPRINT_HEADER = b"reasonlite SFT rows v1\n"


def _encoded(values: pa.Array) -> pa.Array:
    """Each value of ``values`` as a self-delimiting string (the serialization of :func:`fingerprint_rows`)."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.dictionary_decode(), kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = values.cast(pa.large_string())
        body = _concat("S", pc.cast(pc.binary_length(text), pa.large_string()), ":", text)
    elif pa.types.is_integer(kind):
        body = _concat("I", pc.cast(values, pa.large_string()), ";")
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        lengths = pc.fill_null(pc.list_value_length(values), 0).cast(pa.int64())
        offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)])
        items = pa.LargeListArray.from_arrays(offsets, _encoded(values.flatten()))
        body = _concat("L", pc.cast(lengths, pa.large_string()), ":", pc.binary_join(items, _text("")))
    elif pa.types.is_struct(kind):
        pieces: list[Any] = []
        for i in sorted(range(kind.num_fields), key=lambda i: kind.field(i).name):
            name = kind.field(i).name
            pieces += [f"S{len(name.encode())}:{name}", _encoded(pc.struct_field(values, [i]))]
        body = _concat(f"D{kind.num_fields}:", *pieces)
    else:  # floats, booleans, dates, ...: their JSON text (ASCII, so its length is its byte count)
        texts = [json.dumps(v, sort_keys=True, default=str) for v in values.to_pylist()]
        body = pa.array([f"J{len(t)}:{t}" for t in texts], pa.large_string())
    return pc.if_else(pc.is_valid(values), body, _text("N"))


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _concat(*parts: str | pa.Array) -> pa.Array:
    """Element-wise concatenation of large_string arrays and constant strings."""
    return pc.binary_join_element_wise(*(_text(p) if isinstance(p, str) else p for p in parts), _text(""))


class RowFingerprint:
    """:func:`fingerprint_rows` fed batch by batch; keeps 32 bytes per row."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None
        self.rows = 0
        self._digests = bytearray()

    def update(self, rows: pa.Table | pa.RecordBatch, where: Path | str) -> None:
        names = sorted(rows.schema.names)
        if self.columns is None:
            self.columns = names
        elif names != self.columns:
            raise UserError(f"{where}: columns {', '.join(names)} differ from the other files' "
                            f"{', '.join(self.columns)}")
        if rows.num_rows == 0:
            return
        serialized = _concat(*(_encoded(_array(rows.column(n))) for n in names))
        offsets = np.frombuffer(serialized.buffers()[1], dtype=np.int64)
        offsets = offsets[serialized.offset:serialized.offset + len(serialized) + 1].tolist()
        data = memoryview(serialized.buffers()[2] or b"")
        digests = self._digests
        for start, end in zip(offsets[:-1], offsets[1:], strict=True):
            digests += hashlib.sha256(data[start:end]).digest()
        self.rows += rows.num_rows

    @classmethod
    def from_digests(cls, columns: list[str] | None, digests: bytes) -> RowFingerprint:
        """The state :meth:`update` leaves after rows whose digests are ``digests`` (an export cache entry);
        ``columns`` None: no batch was seen (an empty segment), so it sets no columns."""
        part = cls()
        part.columns, part._digests, part.rows = columns, bytearray(digests), len(digests) // 32
        return part

    def digests(self) -> bytes:
        """The 32-byte row digests, in the order the rows were seen."""
        return bytes(self._digests)

    def absorb(self, other: RowFingerprint, where: Path | str) -> None:
        """Take in the rows another RowFingerprint saw (the files of a fingerprint, read in parallel)."""
        if other.columns is not None:
            self.update(pa.schema([(name, pa.null()) for name in other.columns]).empty_table(), where)
        self._digests += other._digests
        self.rows += other.rows

    def hexdigest(self) -> str:
        digests = np.frombuffer(self._digests, dtype="S32")
        digests.sort()  # in place; fixed-width bytes compare on all 32 bytes
        final = hashlib.sha256(_FINGERPRINT_HEADER)
        final.update(json.dumps(self.columns or []).encode() + b"\n")
        final.update(digests.data)
        return final.hexdigest()


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def fingerprint_rows(paths: list[Path], threads: int | None = None) -> str:
    """A SHA-256 digest of the rows' values in ``paths`` (Parquet files of one set of columns),
    independent of the rows' order and of how they are split into files: equal fingerprints mean the
    same training data.

    Construction (``rows-sha256-v1``): each row is serialized canonically, its columns in name order,
    each value self-delimiting: ``N`` for null, ``S<utf-8 byte count>:<text>`` for a string,
    ``I<decimal>;`` for an integer, ``L<count>:<items>`` for a list, ``D<count>:`` then each field's
    name and value in name order for a struct, ``J<length>:<JSON text>`` for any other type. So integer
    widths and large or small strings do not matter, while any changed value, null or name does. Each
    row's serialization is hashed with SHA-256; the 32-byte row digests are sorted and hashed once
    more, after a version header and the column names. Sorting makes the result a function of the
    multiset of rows (a duplicated row counts twice) and keeps it as collision-resistant as SHA-256,
    which a sum or XOR of the row digests is not. Rows are read in batches of BATCH_ROWS, files on
    ``threads`` threads (default up to 4; Arrow and hashlib release the GIL). Memory: per thread, the
    row group being read and a batch; and the 32-byte digests, 192 MB for the 6M rows of the full
    recipe, sorted in place. Measured on realistic text (2 busy cores): 60-90 MB/s of Parquet.
    """
    fingerprint = RowFingerprint()
    with ThreadPoolExecutor(max_workers=threads or min(4, os.cpu_count() or 1)) as pool:
        for path, part in zip(paths, pool.map(_file_fingerprint, paths), strict=True):
            fingerprint.absorb(part, path)
    return fingerprint.hexdigest()


def _file_fingerprint(path: Path) -> RowFingerprint:
    fingerprint = RowFingerprint()
    parquet = pq.ParquetFile(path)
    fingerprint.update(parquet.schema_arrow.empty_table(), path)  # the file's columns, rows or not
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        fingerprint.update(batch, path)
    return fingerprint


# --------------------------------------------------------------------------------------- export cache

CACHE_DIRNAME = ".export_cache"  # under the exports folder; never published, never part of a dataset
HASHES_FILE = "hashes.json"
CACHE_FORMAT = "reasonlite export cache v1"
_CACHE_KEY = b"reasonlite_export_cache"
_SHA256 = re.compile(r"[0-9a-f]{64}")
STALE_TMP_SECONDS = 24 * 3600  # a temp entry this old was left by a killed export


def _fixed_width_bytes(values: pa.Array) -> bytes:
    """The values of a fixed_size_binary array, end to end (its data buffer may be longer)."""
    width = values.type.byte_width
    return values.buffers()[1].to_pybytes()[values.offset * width:(values.offset + len(values)) * width]


@dataclass
class SegmentSummary:
    """What export computes from one segment's rows: all a later export needs instead of reading them."""

    rows: int
    prompt_tokens: int
    completion_tokens: int
    max_completion_tokens: int
    num_bytes: int  # uncompressed Arrow bytes, summed over batches of BATCH_ROWS as export reads them
    columns: list[str] | None  # sorted, as RowFingerprint keeps them; None when no batch was read
    digests: bytes  # the rows' 32-byte digests (RowFingerprint), in row order


class ExportCache:
    """Per published segment, the :class:`SegmentSummary` of its rows, in ``<exports>/.export_cache/<sha256>.arrow``.

    Keyed by the segment's content identity, the sha256 its build record (``curation_build.json``)
    holds; an incremental curate carries unchanged segments by hard link with their recorded hash, so
    after it an export decodes only the new segments. An entry is used only for the file whose hash was
    verified against the record in this export (same inode, size and mtime), is written only after
    every row passed the checks, and is ignored (and rewritten) when it does not read back whole.

    ``hashes.json`` remembers the sha256 of the segment files hashed before, by (device, inode), with
    their size and mtime: ``check_published_exports`` re-reads only files that changed or are new. The
    ctime is left out on purpose: linking a carried segment into the next build's folder changes it,
    and the bytes of a file are changed only by a write (new mtime) or a replace (new inode).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hashed = 0  # files read and hashed in this export
        self.reused = 0  # files whose remembered hash was taken
        self._remembered: dict[str, Any] = {}
        self._seen: dict[str, dict[str, Any]] = {}
        try:
            remembered = json.loads((folder / HASHES_FILE).read_text())
            if isinstance(remembered, dict):
                self._remembered = remembered
        except (OSError, ValueError):
            pass  # no memory (first export, or a damaged file): everything is hashed

    @staticmethod
    def _identity(stat: os.stat_result) -> tuple[str, dict[str, int]]:
        return f"{stat.st_dev}:{stat.st_ino}", {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def sha256_of(self, path: Path) -> str:
        """The sha256 of ``path``: remembered when the file is unchanged since it was hashed, else read."""
        key, state = self._identity(os.stat(path))
        known = self._remembered.get(key)
        if isinstance(known, dict) and all(known.get(k) == v for k, v in state.items()) \
                and isinstance(known.get("sha256"), str):
            self.reused += 1
            digest = known["sha256"]
        else:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            self.hashed += 1
            if self._identity(os.stat(path)) != (key, state):
                return digest  # written while hashed: what we read is no file's state to remember
        self._seen[key] = {**state, "sha256": digest}
        return digest

    def save_hashes(self) -> None:
        """Remember the hashes of this export's files only (older entries are files no longer published)."""
        self._write(self.folder / HASHES_FILE, json.dumps(self._seen, sort_keys=True).encode())

    def verified_sha256(self, path: Path, recorded: Any) -> str | None:
        """``recorded``'s sha256 when ``path`` is a file this export verified to have that hash, else None."""
        if not (isinstance(recorded, dict) and isinstance(recorded.get("sha256"), str)
                and _SHA256.fullmatch(recorded["sha256"])):
            return None
        key, state = self._identity(os.stat(path))
        seen = self._seen.get(key)
        if seen is None or seen != {**state, "sha256": recorded["sha256"]} or recorded.get("bytes") != state["bytes"]:
            return None
        return recorded["sha256"]

    def load(self, sha256: str, columns: list[str]) -> SegmentSummary | None:
        """The entry of segment ``sha256`` when it reads back whole and matches, else None (deleted)."""
        path = self.folder / f"{sha256}.arrow"
        if not path.exists():
            return None
        try:
            with pa.OSFile(str(path), "rb") as source:
                reader = pa.ipc.open_file(source)
                meta = json.loads(reader.schema.metadata[_CACHE_KEY])
                digests = b"".join(_fixed_width_bytes(reader.get_batch(i).column(0))
                                   for i in range(reader.num_record_batches))
            summary = SegmentSummary(**{k: meta[k] for k in SegmentSummary.__dataclass_fields__ if k != "digests"},
                                     digests=digests)
            whole = (meta["format"] == CACHE_FORMAT and meta["fingerprint_method"] == FINGERPRINT_METHOD
                     and meta["batch_rows"] == BATCH_ROWS and meta["segment_sha256"] == sha256
                     and summary.columns == columns and len(digests) == 32 * summary.rows
                     and hashlib.sha256(digests).hexdigest() == meta["digests_sha256"])
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
            whole = False
        if not whole:  # truncated, damaged or of another version: never trusted, rebuilt from the rows
            path.unlink(missing_ok=True)
            return None
        return summary

    def store(self, sha256: str, summary: SegmentSummary) -> None:
        meta = {k: v for k, v in summary.__dict__.items() if k != "digests"}
        meta.update(format=CACHE_FORMAT, fingerprint_method=FINGERPRINT_METHOD, batch_rows=BATCH_ROWS,
                    segment_sha256=sha256, digests_sha256=hashlib.sha256(summary.digests).hexdigest())
        digests = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), summary.rows, [None, pa.py_buffer(summary.digests)])
        table = pa.table({"digest": digests}).replace_schema_metadata({_CACHE_KEY: json.dumps(meta, sort_keys=True)})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self._write(self.folder / f"{sha256}.arrow", sink.getvalue().to_pybytes())

    def _write(self, path: Path, data: bytes) -> None:
        """Write by temp file + rename; a cache that cannot be written (read-only, full disk) costs
        only the next export's time, so it never fails this one."""
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def prune(self, published: set[str]) -> int:
        """Delete the entries of segments no longer published (and old temp files); returns how many."""
        removed = 0
        if not self.folder.is_dir():
            return 0
        now = time.time()
        for path in self.folder.iterdir():
            stale = (path.suffix == ".arrow" and not path.name.startswith(".") and path.stem not in published) or \
                (path.name.startswith(".tmp-") and now - path.lstat().st_mtime > STALE_TMP_SECONDS)
            if stale:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


# --------------------------------------------------------------------------------------------- export


@dataclass
class ConfigExport:
    name: str
    source: Path  # the stratum folder (or the older layout's single file)
    segments: list[Path] = field(default_factory=list)
    rows: int = 0
    linked: int = 0  # shards that are hard links of (or, across filesystems, copies of) segments
    read: int = 0  # segments whose rows this export decoded and checked
    from_cache: int = 0  # linked segments whose row summary came from the export cache instead
    num_bytes: int = 0  # uncompressed Arrow bytes
    shards: list[Path] = field(default_factory=list)
    download_size: int = 0
    fingerprint: str = ""
    schema: pa.Schema | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def _type_ok(kind: str, dtype: pa.DataType) -> bool:
    if kind == "string":
        return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
    if kind == "integer":
        return pa.types.is_integer(dtype)
    if kind == "messages":
        if not (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)):
            return False
        inner = dtype.value_type
        if not pa.types.is_struct(inner):
            return False
        names = {inner.field(i).name: inner.field(i).type for i in range(inner.num_fields)}
        return all(k in names and _type_ok("string", names[k]) for k in ("role", "content"))
    raise AssertionError(kind)


def _check_schema(path: Path) -> pa.Schema:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    for name, kind in REQUIRED_COLUMNS.items():
        index = schema.get_field_index(name)
        if index < 0:
            raise UserError(f"{path}: column {name}: missing (the SFT export contract needs it)")
        if not _type_ok(kind, schema.field(index).type):
            want = MESSAGES_TYPE if kind == "messages" else kind
            raise UserError(f"{path}: column {name}: expected {want}, got {schema.field(index).type}")
    return schema


def _output_schema(schema: pa.Schema) -> pa.Schema:
    """`messages` first (what trainers read), then the metadata in the contract's order, then extras."""
    order = ["messages"] + [c for c in REQUIRED_COLUMNS if c != "messages"]
    order += [n for n in schema.names if n not in order]
    fields = []
    for name in order:
        f = schema.field(name)
        if name == "messages":
            f = pa.field("messages", MESSAGES_TYPE)
        elif pa.types.is_large_string(f.type):
            f = pa.field(name, pa.string())
        fields.append(f)
    return pa.schema(fields)


def _check_rows(batch: pa.RecordBatch, path: Path, first_row: int) -> None:
    """Every row needs a conversation that ends with an assistant turn, with non-null contents."""
    messages = batch.column("messages")
    lengths = pc.fill_null(pc.list_value_length(messages), 0).to_numpy(zero_copy_only=False)
    bad = (lengths == 0).nonzero()[0]
    if len(bad):
        raise UserError(f"{path}:{first_row + int(bad[0])}:messages: empty or null conversation")
    flat = pc.list_flatten(messages)
    roles = pc.struct_field(flat, "role").to_numpy(zero_copy_only=False)
    contents_null = pc.is_null(pc.struct_field(flat, "content")).to_numpy(zero_copy_only=False)
    ends = lengths.cumsum()
    starts = ends - lengths
    for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
        if roles[end - 1] != "assistant":
            raise UserError(
                f"{path}:{first_row + row}:messages: last message has role {roles[end - 1]!r}, expected 'assistant'"
            )
        if contents_null[start:end].any():
            raise UserError(f"{path}:{first_row + row}:messages: a message has null content")
    for name in ("problem_id", "run_id"):
        nulls = pc.is_null(batch.column(name)).to_numpy(zero_copy_only=False).nonzero()[0]
        if len(nulls):
            raise UserError(f"{path}:{first_row + int(nulls[0])}:{name}: null")


def _same_layout(schema: pa.Schema, wanted: pa.Schema) -> bool:
    """The same columns in the same order with the same types (nullability and metadata aside)."""
    return schema.names == wanted.names and all(a.type.equals(b.type) for a, b in zip(schema, wanted, strict=True))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or one without hard links
        shutil.copyfile(source, target)


def _write_config(item: ConfigExport, tmp_root: Path, max_shard_bytes: int, cache: ExportCache | None = None,
                  recorded: dict[str, Any] | None = None) -> None:
    """Turn the stratum's segments into shards of at most ``max_shard_bytes`` (bounded memory).

    A segment whose file is already what a shard would be (the output schema, within the limit, with
    rows) becomes a shard by hard link. The others are re-encoded, streamed into shards whose budget is
    counted in uncompressed Arrow bytes, an upper bound for a zstd Parquet file of the same rows (minus
    the footer allowance), so no shard can exceed the limit. Every row is read once, for the row checks,
    the token counts and the fingerprint, except those of a linked segment that ``cache`` holds the
    summary of: it is keyed by the sha256 the build record ``recorded`` (strata file -> sha256, bytes)
    gives for the segment, and used only when the shard is the very inode whose hash was verified.
    """
    directory = tmp_root / "data" / item.name
    directory.mkdir(parents=True)
    budget = max(1, int(max_shard_bytes * 0.98) - 64 * 1024)
    writer: pq.ParquetWriter | None = None
    parts: list[Path] = []
    shard_bytes = 0
    fingerprint = RowFingerprint()
    token_totals = {"prompt_tokens": 0, "completion_tokens": 0}
    max_completion = 0
    # Only a folder's segments are cacheable: the older single file was never recorded as segments.
    in_folder = item.source.is_dir()

    def next_part() -> Path:
        parts.append(directory / f".part-{len(parts):05d}.parquet")
        return parts[-1]

    try:
        for segment in item.segments:
            schema = _check_schema(segment)
            if item.schema is None:
                item.schema = _output_schema(schema)
            elif set(schema.names) != set(item.schema.names):
                odd = sorted(set(schema.names) ^ set(item.schema.names))
                raise UserError(f"{segment}: columns {', '.join(odd)}: in this segment or in "
                                f"{item.segments[0].name}, not both (a stratum's segments share their columns)")
            out_schema = item.schema
            linked = (_same_layout(schema, out_schema) and segment.stat().st_size <= max_shard_bytes
                      and pq.read_metadata(segment).num_rows > 0)
            read_from = segment
            if linked:  # link first, then check the shard itself: what was checked is what is exported
                read_from = next_part()
                _link_or_copy(segment, read_from)
                item.linked += 1
            sha256 = None
            if linked and cache is not None and recorded is not None and in_folder:
                sha256 = cache.verified_sha256(read_from, recorded.get(f"{STRATA[item.name]}/{segment.name}"))
            summary = cache.load(sha256, sorted(out_schema.names)) if sha256 else None
            if summary is not None:
                item.from_cache += 1
            else:
                rows = RowFingerprint()
                summary = SegmentSummary(rows=0, prompt_tokens=0, completion_tokens=0, max_completion_tokens=0,
                                         num_bytes=0, columns=None, digests=b"")
                for batch in pq.ParquetFile(read_from).iter_batches(batch_size=BATCH_ROWS, columns=out_schema.names):
                    _check_rows(batch, segment, summary.rows)
                    try:
                        table = pa.Table.from_batches([batch]).select(out_schema.names).cast(out_schema)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                        raise UserError(f"{segment}: its columns do not convert to those of "
                                        f"{item.segments[0].name} ({str(err).splitlines()[0]})") from None
                    rows.update(table, segment)
                    summary.prompt_tokens += int(pc.sum(table.column("prompt_tokens")).as_py() or 0)
                    summary.completion_tokens += int(pc.sum(table.column("completion_tokens")).as_py() or 0)
                    summary.max_completion_tokens = max(
                        summary.max_completion_tokens, int(pc.max(table.column("completion_tokens")).as_py() or 0))
                    summary.num_bytes += table.nbytes
                    summary.rows += batch.num_rows
                    offset = 0
                    while not linked and offset < table.num_rows:
                        room = budget - shard_bytes
                        take = table.num_rows - offset
                        while take > 1 and table.slice(offset, take).nbytes > room:
                            take //= 2
                        piece = table.slice(offset, take)
                        if writer is not None and piece.nbytes > room:  # not even one row fits: next shard
                            writer.close()
                            writer, shard_bytes = None, 0
                            continue
                        if writer is None:
                            writer = pq.ParquetWriter(next_part(), out_schema, compression="zstd")
                        writer.write_table(piece)
                        shard_bytes += piece.nbytes
                        offset += take
                summary.columns, summary.digests = rows.columns, rows.digests()
                item.read += 1
                if sha256:  # every row of it passed every check: later exports may skip reading it
                    cache.store(sha256, summary)
            fingerprint.absorb(RowFingerprint.from_digests(summary.columns, summary.digests), segment)
            token_totals["prompt_tokens"] += summary.prompt_tokens
            token_totals["completion_tokens"] += summary.completion_tokens
            max_completion = max(max_completion, summary.max_completion_tokens)
            item.num_bytes += summary.num_bytes
            item.rows += summary.rows
    finally:
        if writer is not None:
            writer.close()
    if item.rows == 0:  # datasets cannot read a Parquet file without rows: an empty stratum gets no config
        directory.rmdir()
        return
    total = len(parts)
    for index, path in enumerate(parts):
        final = directory / f"train-{index:05d}-of-{total:05d}.parquet"
        os.replace(path, final)
        item.shards.append(final)
        if final.stat().st_size > max_shard_bytes:
            raise UserError(f"{item.source}: a row does not fit in a shard of {max_shard_bytes:,} bytes "
                            f"({final.name} is {final.stat().st_size:,}); raise --max-shard-mb")
    item.download_size = sum(p.stat().st_size for p in item.shards)
    item.fingerprint = fingerprint.hexdigest()
    item.stats = {
        "prompt_tokens": token_totals["prompt_tokens"],
        "completion_tokens": token_totals["completion_tokens"],
        "mean_completion_tokens": round(token_totals["completion_tokens"] / item.rows, 1),
        "max_completion_tokens": max_completion,
    }


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _lineage(items: list[ConfigExport]) -> dict[str, Any]:
    """Runs, teacher models and curation vars behind the export, from the data, the lake and the marts."""
    from warehouse import db

    con = db.connect(read_only=True)
    runs: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, int]] = {}
    label_sources: dict[str, dict[str, int]] = {}
    for item in items:
        files = ", ".join(_sql_str(str(p)) for p in item.shards)
        rows = con.execute(
            f"SELECT run_id, teacher_model, reasoning_level, count(*) FROM read_parquet([{files}]) "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        for run_id, teacher, level, count in rows:
            entry = runs.setdefault(
                run_id, {"run_id": run_id, "teacher_model": _public_name(teacher), "reasoning_level": level, "rows": {}}
            )
            entry["rows"][item.name] = count
        for column, target in (("source", sources), ("label_source", label_sources)):
            target[item.name] = dict(
                con.execute(
                    f"SELECT {column}, count(*) FROM read_parquet([{files}]) GROUP BY ALL ORDER BY ALL"
                ).fetchall()
            )
    if runs:
        ids = ", ".join(_sql_str(r) for r in runs)
        manifest_cols = ["run_id", "model", "backend", "temperature", "top_p", "max_tokens", "code_version", "status"]
        for values in con.execute(
            f"SELECT {', '.join(manifest_cols)} FROM runs WHERE run_id IN ({ids})"
        ).fetchall():
            record = dict(zip(manifest_cols, values, strict=True))
            record["model"] = _public_name(record["model"])
            run_id = record.pop("run_id")
            runs[run_id]["manifest"] = {k: v for k, v in record.items() if v is not None}
    curation_vars, vars_source = _curation_vars(con)
    con.close()
    return {
        "runs": list(runs.values()),
        "teacher_models": sorted({r["teacher_model"] for r in runs.values() if r["teacher_model"]}),
        "sources": sources,
        "label_sources": label_sources,
        "curation_vars": curation_vars,
        "curation_vars_source": vars_source,
    }


def _public_name(model: str | None) -> str | None:
    """A model given as a local folder, as the folder's name: the card and lineage.json are published."""
    return Path(model).name if model and Path(model).is_absolute() else model


def _curation_vars(con) -> tuple[dict[str, Any] | None, str | None]:
    """The dbt vars the strata were curated with: a file the curate stage writes, else a mart."""
    path = lake.exports_dir() / "curation_vars.json"
    if path.exists():
        try:
            return json.loads(path.read_text()), path.name
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON ({err})") from None
    try:
        result = con.execute("SELECT * FROM curation_vars")
    except Exception:  # noqa: BLE001 - the mart is optional; any catalog error means "not built"
        return None, None
    names = [d[0] for d in result.description]
    rows = result.fetchall()
    if names[:2] == ["name", "value"] or set(names) >= {"name", "value"}:
        i, j = names.index("name"), names.index("value")
        return {r[i]: r[j] for r in rows}, "mart curation_vars"
    return ({k: v for k, v in zip(names, rows[0], strict=True)} if rows else None), "mart curation_vars"


def _card(items: list[ConfigExport], lineage: dict[str, Any], code_version: str, created_at: str,
          empty: list[str]) -> str:
    import datasets
    from huggingface_hub import DatasetCard, DatasetCardData

    configs, infos = [], []
    for item in items:
        configs.append(
            {"config_name": item.name, "data_files": [{"split": "train", "path": f"data/{item.name}/train-*.parquet"}]}
        )
        info = datasets.DatasetInfo(
            features=datasets.Features.from_arrow_schema(item.schema),
            splits=datasets.SplitDict({"train": datasets.SplitInfo("train", item.num_bytes, item.rows)}),
            download_size=item.download_size,
            dataset_size=item.num_bytes,
        )
        infos.append({"config_name": item.name, **info._to_yaml_dict()})
    total_rows = sum(i.rows for i in items)
    size = next(
        (label for limit, label in ((1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"), (1e6, "100K<n<1M"),
                                    (1e7, "1M<n<10M")) if total_rows < limit),
        "10M<n<100M",
    )
    data = DatasetCardData(
        language=["en"],
        task_categories=["text-generation"],
        tags=["math", "reasoning", "chain-of-thought", "distillation", "reasonlite"],
        size_categories=[size],
        pretty_name="ReasonLite SFT strata",
        configs=configs,
        dataset_info=infos,
    )
    lines = [
        "# ReasonLite SFT strata",
        "",
        "Math solutions written by a reasoning teacher, kept only when their final answer agrees with the "
        "problem's label (a majority-vote pseudo-label where the teacher was confident, else the dataset "
        "label), finished normally and well-formed, then split by chain-of-thought length into two configs:",
        "",
        "| config | rows | shards | Parquet bytes | mean completion tokens | fingerprint (sha256 of the rows) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for item in items:
        lines.append(
            f"| `{item.name}` | {item.rows:,} | {len(item.shards)} | {item.download_size:,} | "
            f"{item.stats['mean_completion_tokens']:,} | `{item.fingerprint[:16]}` |"
        )
    if empty:
        lines += ["", f"Left out, no rows after curation: {', '.join(f'`{n}`' for n in empty)}."]
    lines += [
        "",
        "`short_cot` (medium reasoning) trains stage 1; `long_cot` (high reasoning) trains stage 2 from the "
        "stage-1 checkpoint.",
        "",
        "```python",
        "from datasets import load_dataset",
        'short = load_dataset("<this repo or folder>", "short_cot", split="train")',
        "```",
        "",
        "## Columns",
        "",
        "- `messages`: the conversation, `[{role: user, content: problem}, {role: assistant, content: "
        "\"<think>\\n{reasoning}\\n</think>\\n\\n{final answer}\"}]`",
        "- `problem_id`, `source`: the problem and the public set it comes from",
        "- `run_id`, `sample_idx`, `teacher_model`, `reasoning_level`: the teacher generation",
        "- `stratum`, `label`, `label_source` (`vote` or `dataset`): curation",
        "- `prompt_tokens`, `completion_tokens`: token counts in the teacher's tokenizer",
        "",
        "## Curation vars",
        "",
    ]
    if lineage["curation_vars"]:
        lines.append(f"From {lineage['curation_vars_source']}:")
        lines.append("")
        lines += [f"- `{k}`: `{json.dumps(v, default=str)}`" for k, v in sorted(lineage["curation_vars"].items())]
    else:
        lines.append("Not recorded (no `curation_vars.json` beside the strata and no `curation_vars` mart).")
    lines += ["", "## Lineage", "", f"- code version: `{code_version}`", f"- exported at: {created_at}"]
    lines.append(f"- teacher models: {', '.join(f'`{m}`' for m in lineage['teacher_models']) or 'unknown'}")
    for name in (i.name for i in items):
        src = ", ".join(f"{k}: {v:,}" for k, v in lineage["sources"].get(name, {}).items())
        labels = ", ".join(f"{k}: {v:,}" for k, v in lineage["label_sources"].get(name, {}).items())
        lines.append(f"- `{name}` problem sources: {src or '-'}; label sources: {labels or '-'}")
    lines += ["", "| run | teacher | reasoning level | rows | sampling |", "|---|---|---|---|---|"]
    for run in lineage["runs"]:
        manifest = run.get("manifest", {})
        sampling = ", ".join(
            f"{k}={manifest[k]:.6g}" if isinstance(manifest[k], float) else f"{k}={manifest[k]}"
            for k in ("temperature", "top_p", "max_tokens") if k in manifest
        )  # float32 columns: print 0.8, not 0.800000011920929
        rows = ", ".join(f"{k}: {v:,}" for k, v in run["rows"].items())
        lines.append(
            f"| `{run['run_id']}` | `{run['teacher_model']}` | {run['reasoning_level']} | {rows} | {sampling or '-'} |"
        )
    lines += ["", f"Machine-readable lineage: `{LINEAGE_FILE}`.", ""]
    card = DatasetCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines))
    return str(card)


def export(out: Path | None = None, max_shard_bytes: int = MAX_SHARD_BYTES, force: bool = False,
           log=print, fmt: str = "hf") -> dict[str, Any]:
    """Build the HF dataset folder (``fmt`` ``hf``) or upstream's JSONL training files
    (``upstream-jsonl``) from the exported strata; returns its lineage record.

    ``out`` may be an earlier export (it is replaced whole), an empty or new folder, or, with
    ``force``, any other file or folder, but never the lake, the marts, the exports folder, the
    current folder or a folder that holds one of them. The strata must be the ones the last
    successful curate published (its build record says so), or nothing is written.
    """
    from warehouse import snapshots

    if max_shard_bytes < 1:
        raise UserError(f"max shard size {max_shard_bytes} bytes: must be positive")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: known formats are {', '.join(FORMATS)}")
    out = Path(out) if out else default_export_dir(fmt)
    given, out = out, out.expanduser().resolve()
    items = []
    for name, folder in STRATA.items():
        # Curate publishes a stratum by swapping a symlink: read the folder it points to now, so that a
        # curate publishing meanwhile cannot mix two builds' segments into one export.
        source = stratum_source(folder).resolve()
        items.append(ConfigExport(name=name, source=source, segments=segment_files(source)))
    # The published files' hashes, re-read only for files changed or new since an earlier export.
    cache = ExportCache(lake.exports_dir() / CACHE_DIRNAME)
    build = snapshots.check_published_exports(cache.sha256_of)
    for item in items:
        if stratum_source(STRATA[item.name]).resolve() != item.source:
            raise UserError(f"{lake.exports_dir() / STRATA[item.name]}: a curate published new strata while "
                            "export started; run `reasonlite export` again")
    _check_destination(given, out, force)
    cache.save_hashes()  # only now: a refused export leaves the exports folder as it was
    log(f"export: checked the published segments against {snapshots.BUILD_FILE}: {cache.hashed} hashed, "
        f"{cache.reused} unchanged since an earlier export")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _destination_lock(out):
        for message in _recover_interrupted(out):
            log(f"export: {message}")
        if fmt == "upstream-jsonl":
            return _export_upstream_into(items, out, build, log)
        return _export_into(items, out, max_shard_bytes, build, log, cache)


def _export_into(items: list[ConfigExport], out: Path, max_shard_bytes: int, build: dict[str, Any],
                 log, cache: ExportCache | None = None) -> dict[str, Any]:
    created_at = lake.now_utc().isoformat()
    code_version = lake.code_version()
    recorded = build.get("strata") if isinstance(build.get("strata"), dict) else {}
    with _staging(out, log) as tmp:
        for item in items:
            _write_config(item, tmp, max_shard_bytes, cache, recorded)
            log(f"export: {item.name}: verified {item.read} segment(s), {item.from_cache} from cache")
            if item.rows:
                log(f"export: {item.name}: {item.rows:,} rows from {len(item.segments)} segment(s) -> "
                    f"{len(item.shards)} shard(s) ({item.linked} linked, not re-encoded), {item.download_size:,} bytes")
            else:
                log(f"export: {item.name}: {item.source} has no rows; config left out of the dataset")
        empty = [i.name for i in items if not i.rows]
        items = [i for i in items if i.rows]
        if not items:
            raise UserError(f"{lake.exports_dir()}: every SFT stratum is empty; nothing to export")
        lineage = _lineage(items)
        record = {
            "created_at": created_at,
            "code_version": code_version,
            "configs": {
                i.name: {
                    "source": i.source.name,  # in the exports folder; the card is published
                    "segments": len(i.segments),
                    "linked_shards": i.linked,
                    "rows": i.rows,
                    "num_bytes": i.num_bytes,
                    "download_size": i.download_size,
                    "shards": [str(p.relative_to(tmp)) for p in i.shards],
                    "fingerprint": i.fingerprint,
                    "fingerprint_method": FINGERPRINT_METHOD,
                    **i.stats,
                }
                for i in items
            },
            "empty_configs": empty,
            "curation_build": build.get("build_id"),
            **lineage,
        }
        (tmp / LINEAGE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        (tmp / "README.md").write_text(_card(items, lineage, code_version, created_at, empty))
    if cache is not None:  # bounded: the entries of the published segments only
        cache.prune({e["sha256"] for e in recorded.values() if isinstance(e, dict) and isinstance(e.get("sha256"), str)})
    return {**record, "path": str(out)}


THINK_OPEN, THINK_SEPARATOR = "<think>\n", "\n</think>\n\n"


def upstream_example(messages: list[dict], where: str) -> dict:
    """One SFT example in upstream's training format. Ours (sft_examples) is
    ``user: <user turn>``, ``assistant: "<think>\\n{reasoning}\\n</think>\\n\\n{final}"``; upstream's
    converter writes ``user: <user turn, stripped>``, ``assistant: "<think>\\n{analysis}\\n</think>{final}"``
    (saving_to_training_format.py: the final channel's header replaced by ``\\n</think>``). The first
    separator is the boundary: a ``<think>`` completion's reasoning ends at its first ``</think>``."""
    if len(messages) != 2 or messages[0]["role"] != "user" or messages[1]["role"] != "assistant":
        raise UserError(f"{where}:messages: expected [user, assistant], got roles "
                        f"{[m['role'] for m in messages]}")
    content = messages[1]["content"]
    reasoning, separator, final = content.removeprefix(THINK_OPEN).partition(THINK_SEPARATOR)
    if not content.startswith(THINK_OPEN) or not separator:
        raise UserError(f"{where}:messages: the assistant turn is not '<think>\\n...\\n</think>\\n\\n...'")
    return {"messages": [{"role": "user", "content": messages[0]["content"].strip()},
                         {"role": "assistant", "content": f"{THINK_OPEN}{reasoning}\n</think>{final}"}]}


def _upstream_lines(segments: list[Path]) -> Iterator[str]:
    for segment in segments:
        row = 0
        for batch in pq.ParquetFile(segment).iter_batches(batch_size=BATCH_ROWS, columns=["messages"]):
            for messages in batch.column("messages").to_pylist():
                yield json.dumps(upstream_example(messages or [], f"{segment}:{row}"), ensure_ascii=False) + "\n"
                row += 1


def _export_upstream_into(items: list[ConfigExport], out: Path, build: dict[str, Any], log) -> dict[str, Any]:
    """Stream each stratum into ``<config>/data_part<k>.jsonl`` (k from 1, UPSTREAM_CHUNK_ROWS rows
    each). Lines are ``json.dumps(example, ensure_ascii=False)``, what upstream's ``jsonlines``
    writer writes. Rows keep the order of the strata's segments (upstream shuffled them; SFT trainers
    shuffle)."""
    configs: dict[str, Any] = {}
    with _staging(out, log) as tmp:
        for item in items:
            for segment in item.segments:
                _check_schema(segment)
            files: list[Path] = []
            row = 0
            lines = _upstream_lines(item.segments)
            line = next(lines, None)
            while line is not None:  # one file per UPSTREAM_CHUNK_ROWS rows, a row at a time
                files.append(tmp / item.name / f"data_part{len(files) + 1}.jsonl")
                files[-1].parent.mkdir(exist_ok=True)
                with open(files[-1], "w", encoding="utf-8") as sink:
                    for _ in range(UPSTREAM_CHUNK_ROWS):
                        sink.write(line)
                        row += 1
                        line = next(lines, None)
                        if line is None:
                            break
            item.rows = row
            if row:
                configs[item.name] = {"source": item.source.name, "rows": row,
                                      "files": [str(p.relative_to(tmp)) for p in files]}
                log(f"export: {item.name}: {row:,} rows -> {len(files)} file(s) in upstream's format")
            else:
                log(f"export: {item.name}: {item.source} has no rows; left out")
        if not configs:
            raise UserError(f"{lake.exports_dir()}: every SFT stratum is empty; nothing to export")
        record = {"format": "upstream-jsonl", "created_at": lake.now_utc().isoformat(),
                  "code_version": lake.code_version(), "curation_build": build.get("build_id"), "configs": configs}
        (tmp / LINEAGE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    return {**record, "path": str(out)}


@contextlib.contextmanager
def _staging(out: Path, log) -> Iterator[Path]:
    """A fresh folder beside ``out`` for an export to fill: swapped into ``out``'s place when the block
    succeeds, removed when it fails (the previous export stays as it was)."""
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        yield tmp
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"export: wrote {out}")


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp``: rename the old one aside, the new one in, then delete the old.
    A kill between the two renames leaves ``.old-*`` for :func:`_recover_interrupted` to put back."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.parent / f".old-{out.name}-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _leftovers(out: Path, kind: str) -> list[Path]:
    """``.old-*`` or ``.tmp-*`` copies an export into ``out`` made, oldest first."""
    pattern = re.compile(rf"\.{kind}-{re.escape(out.name)}-[0-9a-f]{{8}}")
    found = [p for p in out.parent.iterdir() if pattern.fullmatch(p.name)] if out.parent.exists() else []
    return sorted(found, key=lambda p: p.lstat().st_mtime)


def _recover_interrupted(out: Path) -> list[str]:
    """Undo what a killed export left beside ``out``: if it died between the two renames of the swap,
    put the previous export back; then delete its temp and old copies (each a whole dataset)."""
    done = []
    old = _leftovers(out, "old")
    if old and not (out.exists() or out.is_symlink()):
        os.replace(old[-1], out)
        old.pop()
        done.append(f"restored the previous export {out} (an earlier export was killed while replacing it)")
    for path in old + _leftovers(out, "tmp"):
        _remove(path)
        done.append(f"removed {path.name} left by a killed export")
    return done


@contextlib.contextmanager
def _destination_lock(out: Path) -> Iterator[None]:
    """One export per destination: the next one's clean-up must not delete a running one's temp copy.
    An flock, so the kernel drops it when its holder dies."""
    key = hashlib.sha256(str(out).encode()).hexdigest()[:16]
    with open(lake.scratch_dir() / f"export-{key}.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(f"{out}: another export into this folder is running ({holder})") from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_destination(given: Path, out: Path, force: bool) -> None:
    """Refuse an ``--out`` whose replacement would destroy what is not an earlier export."""
    database = lake.database_path()
    keep = {"the lake": lake.lake_root(), "the marts database": database, "the exports folder": lake.exports_dir(),
            "the marts snapshots": lake.snapshots_dir(), "the current folder": Path.cwd().resolve(), "your home folder": Path.home().resolve()}
    for name, path in keep.items():
        if path == out or path.is_relative_to(out):
            where = "is" if path == out else "holds"
            raise UserError(f"--out {given}: {where} {name} ({path}); choose another folder")
    if out.is_relative_to(lake.lake_root()) or out.is_relative_to(lake.snapshots_dir()) or (out.parent == database.parent and out.name.startswith(database.name)):
        raise UserError(f"--out {given}: inside the lake or the marts; choose another folder")
    published = (*STRATA_DIRS, *(f"{name}.parquet" for name in STRATA_DIRS), SEGMENTS_DIR, "curation_vars.json",
                 "curation_build.json", CACHE_DIRNAME)
    for name in published:  # a stratum is a symlink into SEGMENTS_DIR: `out` was resolved, so check both
        path = lake.exports_dir() / name
        if any(out == p or out.is_relative_to(p) for p in (path, path.resolve())):
            raise UserError(f"--out {given}: that is what curate publishes ({path}); choose another folder")
    if not (out.exists() or out.is_symlink()) or force:
        return
    if out.is_dir() and not out.is_symlink():
        if read_lineage(out) is not None or not any(out.iterdir()):
            return  # an earlier export, or nothing to lose
        raise UserError(f"--out {given}: a folder that is not an earlier export (no {LINEAGE_FILE}); "
                        "its files would be deleted: choose another folder, or add --force")
    raise UserError(f"--out {given}: already exists and is not an export folder; add --force to replace it")


def read_lineage(export_dir: Path) -> dict[str, Any] | None:
    """The lineage record of an export folder; None when ``export_dir`` is not one."""
    path = Path(export_dir) / LINEAGE_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "configs" in record else None


# -------------------------------------------------------------------------------------------- publish


def _publish_files(folder: Path) -> list[Path]:
    from fnmatch import fnmatch

    files = [p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    keep = [p for p in files if any(fnmatch(p.relative_to(folder).as_posix(), pat) for pat in PUBLISH_PATTERNS)]
    return sorted(keep)


def _token_source() -> str:
    """Where the token would come from, without reading it into any message."""
    if os.environ.get("HF_TOKEN"):
        return "HF_TOKEN"
    from huggingface_hub import get_token

    return "login cache" if get_token() else "none"


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return text


def publish(
    repo_id: str,
    folder: Path | None = None,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    log=print,
) -> dict[str, Any]:
    """Create the dataset repo (if needed) and upload the export folder to ``revision`` (default main)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    folder = Path(folder) if folder else default_export_dir()
    if repo_id.count("/") != 1:
        raise UserError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UserError(f"--repo-id {repo_id!r}: {str(err).splitlines()[0]}") from None
    if revision is not None and (not revision.strip() or revision.startswith("-") or ".." in revision):
        raise UserError(f"--revision {revision!r}: not a valid branch name")
    if not (folder / "README.md").exists() or not any((folder / "data").glob("*/train-*.parquet")):
        raise UserError(f"{folder}: no exported dataset here; run `reasonlite export` first")
    files = _publish_files(folder)
    branch = revision or "main"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    total = sum(p.stat().st_size for p in files)
    plan = {
        "repo_id": repo_id,
        "repo_type": "dataset",
        "private": private,
        "revision": branch,
        "files": [
            {
                "path": p.relative_to(folder).as_posix(),
                "bytes": p.stat().st_size,
                "url": f"{endpoint}/datasets/{repo_id}/blob/{branch}/{p.relative_to(folder).as_posix()}",
            }
            for p in files
        ],
        "bytes": total,
    }
    if dry_run:
        visibility = "private" if private else "public"
        log(f"publish (dry run): would create {visibility} dataset repo {repo_id} (if missing) at {endpoint}")
        log(f"publish (dry run): would upload {len(files)} files, {total:,} bytes, to revision {branch}:")
        for entry in plan["files"]:
            log(f"  {folder / entry['path']} ({entry['bytes']:,} bytes) -> {entry['url']}")
        log(f"publish (dry run): token from {_token_source()}")
        return plan

    from huggingface_hub import HfApi, get_token

    token = get_token()  # HF_TOKEN, else the login cache
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
        # upload_folder streams, batches large folders into several commits and resumes when re-run.
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="dataset",
            revision=branch,
            allow_patterns=PUBLISH_PATTERNS,
            commit_message=f"ReasonLite SFT strata ({lake.code_version()})",
        )
    except Exception as err:  # noqa: BLE001 - any Hub/network failure becomes one clean line
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        server = " ".join(str(getattr(err, "server_message", "") or "").split())
        if server:  # the Hub's own explanation ("Invalid username or password", ...) is the useful part
            message = f"{message} ({server[:300]})"
        message = _scrub(message, token)
        raise UserError(f"publish to {repo_id} failed: {type(err).__name__}: {message}") from None
    url = getattr(commit, "commit_url", None) or f"{endpoint}/datasets/{repo_id}/tree/{branch}"
    log(f"publish: uploaded {len(files)} files ({total:,} bytes) to {url}")
    return {**plan, "commit_url": url}


# ------------------------------------------------------------------------------------------------ CLI


def _handle_export(args) -> int:
    if not (math.isfinite(args.max_shard_mb) and args.max_shard_mb >= MIN_SHARD_MB):
        raise UserError(f"--max-shard-mb {args.max_shard_mb:g}: must be at least {MIN_SHARD_MB} (MB per shard)")
    export(Path(args.out) if args.out else None, max_shard_bytes=int(args.max_shard_mb * 1024**2), force=args.force,
           fmt=args.format)
    return 0


def _handle_publish(args) -> int:
    publish(
        args.repo_id,
        folder=Path(args.folder) if args.folder else None,
        private=args.private,
        revision=args.revision,
        dry_run=args.dry_run,
    )
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="the curated SFT strata as a HuggingFace dataset folder (configs short_cot, long_cot)",
        description="Build a HuggingFace dataset folder (Parquet shards, dataset card, lineage) from the "
        "segments of <exports>/sft_short_cot/ and sft_long_cot/.",
    )
    p.add_argument("--out", metavar="DIR",
                   help=f"destination folder (default <exports>/{DATASET_DIRNAME}, or {UPSTREAM_DIRNAME})")
    p.add_argument("--format", choices=FORMATS, default="hf",
                   help="hf: the dataset folder (Parquet, card, lineage); upstream-jsonl: upstream ReasonLite's "
                   "training files, <config>/data_part<k>.jsonl of {\"messages\": [...]} lines")
    p.add_argument("--max-shard-mb", type=float, default=MAX_SHARD_BYTES / 1024**2,
                   help=f"shard size limit (500; at least {MIN_SHARD_MB})")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is a file or a folder that is not an earlier export")
    p.set_defaults(handler=_handle_export)

    p = sub.add_parser(
        "publish",
        help="upload the exported dataset folder to the HuggingFace Hub",
        description="Create the dataset repo if needed and upload the export. The token comes from HF_TOKEN "
        "or the login cache and is never printed.",
    )
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", metavar="R", help="branch to upload to (created if missing; default main)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded where; no network")
    p.add_argument("--folder", metavar="DIR", help=f"export folder (default <exports>/{DATASET_DIRNAME})")
    p.set_defaults(handler=_handle_publish)
