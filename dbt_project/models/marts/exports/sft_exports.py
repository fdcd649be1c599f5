"""Write the SFT strata as folders of Parquet segments: <exports>/sft_short_cot/ and sft_long_cot/.

Each folder holds ``part-<build_id>-<n>.parquet`` segments (zstd, each under ~450 MB: DuckDB's
FILE_SIZE_BYTES) and ``_index.arrow``, the segment index: for every exported row its key
(problem_id, run_id, sample_idx), a row digest and the segment holding it. Segment columns:
``messages`` first, then the training contract, then the extras (warehouse/hub.py's
``_output_schema`` order, so `reasonlite export` can hard-link segments as shards). The lake
lineage (_source_file, _source_row) stays out: those are local paths.

Why segments: at real volume the strata hold ~44 GB of texts, and a new teacher run touches a few
percent of the problems. So a build compares the rows it wants (key + digest, computed without
reading any long text) with the previous published build's index (``REASONLITE_PREVIOUS_EXPORTS``,
set by `reasonlite curate` unless ``--full-refresh``):

- a previous segment none of whose rows changed or left is carried by hard link (copy across
  filesystems);
- a segment with rows that changed or left is rewritten from the old segment file itself, minus
  those rows (no lake read);
- added and changed rows are fetched from the lake, filtered by the literal list of the lake files
  holding them (DuckDB then opens only those files), and written, together with the rewritten
  remainders, as new segments.

Compaction: when at least two carried segments are under a quarter of the segment size, they join
that rewrite (merged into full segments). Rows are streamed out in no particular order: sorting the
texts by key ran out of DuckDB's 6 GB at scale 0.1 (~60K rows of ~20 KB per stratum) and would not
scale; an unchanged lake carries every segment as it is, the export's fingerprint does not depend
on row order, and training orders the rows by key itself. A stratum with no rows is one empty
segment with the full schema. The digest covers every value a row's export depends on: its light
columns, its text's identity in the (immutable) lake, the problem prompt's hash and the export's
format (the sft_examples view definition and the column list): a change there rewrites every row.

The table this model builds has one row per stratum: what was carried, rewritten and fetched, and
the bytes this process read while writing (``/proc/self/io`` rchar; dbt's other threads count too).
"""

import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

STRATA = {"short": "sft_short_cot", "long": "sft_long_cot"}
INDEX_FILE = "_index.arrow"
KEY = ("problem_id", "run_id", "sample_idx")
CONTRACT = ["messages", "problem_id", "source", "run_id", "sample_idx", "teacher_model", "reasoning_level",
            "stratum", "label", "label_source", "prompt_tokens", "completion_tokens"]
LINEAGE = ("_source_file", "_source_row")
# Light values whose change changes the exported row (the texts are covered by their lake identity).
DIGEST_COLUMNS = ("source", "teacher_model", "reasoning_level", "stratum", "label", "label_source",
                  "prompt_tokens", "completion_tokens", "answer", "answer_key", "_source_file", "_source_row")
# What `messages` is made of: the lake row (immutable), the problem prompt and the export's format.
TEXT_IDENTITY = ("_source_file", "_source_row")
SEGMENT_BYTES = 450 * 1024**2
# DuckDB numbers the files of one COPY with {i}; they are renamed part-<build_id>-<n> afterwards.
FILENAME_PATTERN = "seg-{i}"
# Above this share of the previous rows in segments to rewrite, the stratum is written afresh from
# the lake: at scale 0.1 (realistic texts) rewriting 81 of 94 segments from themselves took 112.7 s,
# writing both strata from the lake 65.7 s.
REWRITE_SHARE_FOR_FULL_WRITE = 0.5
# Beyond this many lake files an IN list stops paying: the fetch scans the lake (rows still filtered).
MAX_LISTED_FILES = 20000


def _literal(text):
    return "'" + str(text).replace("'", "''") + "'"


def _key_sql(prefix=""):
    return ", ".join(f"{prefix}{k}" for k in KEY)


def _bytes_read():
    """Bytes this process read through read()/pread() so far (page cache hits included)."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
    except (OSError, StopIteration, ValueError):
        return None


def _segment_bytes():
    text = os.environ.get("REASONLITE_EXPORT_SEGMENT_BYTES", "")
    if not text:
        return SEGMENT_BYTES
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"REASONLITE_EXPORT_SEGMENT_BYTES={text!r}: must be a positive integer (bytes)")
    return int(text)


def _link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or no hard links
        shutil.copyfile(source, target)


def _previous_segments(previous_root, folder_name):
    """{segment name: path} of the previous build's stratum whose size is the one its build
    recorded (anything else is not trusted: its rows are fetched again), and its index path."""
    if not previous_root:
        return {}, None
    folder = Path(previous_root) / folder_name
    index = folder / INDEX_FILE
    try:
        record = json.loads((Path(previous_root) / "curation_build.json").read_text())
    except (OSError, ValueError):
        return {}, None
    recorded = record.get("strata") or {} if isinstance(record, dict) else {}
    usable = {}
    for name, entry in recorded.items():
        stratum, _, segment = str(name).partition("/")
        path = folder / segment
        if stratum == folder_name and segment.startswith("part-") and isinstance(entry, dict):
            try:
                if path.stat().st_size == entry.get("bytes"):
                    usable[segment] = path
            except OSError:
                pass
    return usable, (index if index.exists() and usable else None)


def _export_stratum(cursor, examples, problems, stratum, folder, build_id, previous_root, export_format, columns):
    import pyarrow as pa
    import pyarrow.feather as feather

    segment_bytes = _segment_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    select_list = ", ".join(f'"{c}"' for c in columns)
    digest_fields = ", ".join(f"{c} := e.{c}" for c in DIGEST_COLUMNS if c in columns or c in LINEAGE)
    text_fields = ", ".join(f"{c} := e.{c}" for c in TEXT_IDENTITY)
    # Key + digests of every row the stratum needs: light columns only, no long text is read.
    # row_digest: the whole row; text_digest: only what its messages are made of, so a row whose
    # label changed but not its text is rewritten from its old segment, not fetched from the lake.
    cursor.execute(
        f"CREATE OR REPLACE TEMP TABLE wanted AS SELECT {_key_sql('e.')}, e._source_file, "
        f"md5(to_json(struct_pack({digest_fields}, prompt_md5 := md5(p.prompt), "
        f"export_format := {_literal(export_format)}))) AS row_digest, "
        f"md5(to_json(struct_pack({text_fields}, prompt_md5 := md5(p.prompt), "
        f"export_format := {_literal(export_format)}))) AS text_digest "
        f"FROM {examples} AS e LEFT JOIN {problems} AS p USING (problem_id) "
        f"WHERE e.stratum = {_literal(stratum)}"
    )
    usable, index_path = _previous_segments(previous_root, folder.name)
    previous = (feather.read_table(index_path) if index_path
                else pa.table({"problem_id": pa.array([], pa.string()), "run_id": pa.array([], pa.string()),
                               "sample_idx": pa.array([], pa.int32()), "row_digest": pa.array([], pa.string()),
                               "segment": pa.array([], pa.string())}))
    if "text_digest" not in previous.column_names:  # an index of an earlier version: texts unknown
        previous = previous.append_column("text_digest", pa.nulls(previous.num_rows, pa.string()))
    previous = previous.select([*KEY, "row_digest", "text_digest", "segment"])
    cursor.register("previous_index_arrow", previous)
    cursor.execute("CREATE OR REPLACE TEMP TABLE previous_index AS SELECT * FROM previous_index_arrow "
                   "WHERE segment IN (SELECT unnest(?::VARCHAR[]))", [sorted(usable)])
    cursor.unregister("previous_index_arrow")
    # Rows whose previous copy is still right, and per previous segment how many of its rows those are.
    cursor.execute(f"CREATE OR REPLACE TEMP TABLE kept AS SELECT {_key_sql('w.')}, w.row_digest, p.segment "
                   f"FROM wanted AS w JOIN previous_index AS p USING ({_key_sql()}) "
                   "WHERE p.row_digest = w.row_digest")
    # Rows whose values changed but not their text (a label that changed with the vote): the old
    # segment holds their messages, so their lake files are not read (one such row would otherwise
    # cost its whole lake file, and a few scattered ones nearly the whole lake).
    cursor.execute(f"CREATE OR REPLACE TEMP TABLE relabeled AS SELECT {_key_sql('w.')}, p.segment "
                   f"FROM wanted AS w JOIN previous_index AS p USING ({_key_sql()}) "
                   "WHERE p.row_digest <> w.row_digest AND p.text_digest = w.text_digest")
    segments = cursor.execute(
        "SELECT p.segment, count(*) AS n_rows, count(k.segment) AS n_kept, count(r.segment) AS n_relabeled "
        f"FROM previous_index AS p LEFT JOIN kept AS k USING ({_key_sql()}) "
        f"LEFT JOIN relabeled AS r USING ({_key_sql()}) GROUP BY p.segment ORDER BY p.segment"
    ).fetchall()
    carried = [name for name, n, n_kept, _ in segments if n_kept == n and n > 0]
    # Read again: segments with rows to keep as they are or to keep with new values.
    rewrite = [name for name, n, n_kept, n_relabeled in segments if n_kept < n and n_kept + n_relabeled > 0]
    small = [name for name in carried if usable[name].stat().st_size < segment_bytes // 4]
    if len(small) >= 2:  # compaction: small segments merge into full ones
        carried = [name for name in carried if name not in small]
        rewrite += small
    relabeled_rows = cursor.execute("SELECT count(*) FROM relabeled").fetchone()[0] if rewrite else 0
    cursor.execute(f"CREATE OR REPLACE TEMP TABLE to_fetch AS SELECT {_key_sql('w.')}, w._source_file "
                   f"FROM wanted AS w ANTI JOIN kept AS k USING ({_key_sql()}) "
                   + (f"ANTI JOIN relabeled AS r USING ({_key_sql()})" if relabeled_rows else ""))
    (fetch_rows,), = cursor.execute("SELECT count(*) FROM to_fetch").fetchall()
    full = index_path is None
    previous_rows = sum(n for _, n, _, _ in segments)
    rewrite_rows = sum(n for name, n, _, _ in segments if name in rewrite)
    if not full and previous_rows and rewrite_rows > REWRITE_SHARE_FOR_FULL_WRITE * previous_rows:
        # Most segments would be rewritten from themselves: writing the stratum afresh is cheaper.
        full, carried, rewrite, relabeled_rows = True, [], [], 0
        fetch_rows = cursor.execute("SELECT count(*) FROM wanted").fetchone()[0]
    lake_files = None
    parts = []
    if rewrite:
        paths = ", ".join(_literal(usable[name]) for name in rewrite)
        keep = "(SELECT * FROM kept WHERE segment IN (" + ", ".join(_literal(n) for n in rewrite) + "))"
        parts.append(f"SELECT {select_list} FROM read_parquet([{paths}]) AS s "
                     f"SEMI JOIN {keep} AS k USING ({_key_sql()})")
        if relabeled_rows:
            # Old messages, new values: the light columns come from sft_examples without its texts.
            light = ", ".join(f'l."{c}"' for c in columns if c != "messages")
            parts.append(
                f"SELECT s.messages, {light} FROM read_parquet([{paths}]) AS s "
                f"JOIN (SELECT * EXCLUDE (messages) FROM {examples} AS e SEMI JOIN relabeled AS r "
                f"USING ({_key_sql()}) WHERE e.stratum = {_literal(stratum)}) AS l USING ({_key_sql()})"
            )
    if full:
        parts.append(f"SELECT {select_list} FROM {examples} WHERE stratum = {_literal(stratum)}")
    elif fetch_rows:
        files = [f for (f,) in cursor.execute("SELECT DISTINCT _source_file FROM to_fetch ORDER BY 1").fetchall()]
        lake_files = len(files)
        # The literal list on the view's _source_file (the lake row view's own column in sft_examples)
        # lets DuckDB skip every other lake file; a join or subquery would only give it a min/max range.
        where = (f" AND _source_file IN ({', '.join(_literal(f) for f in files)})"
                 if len(files) <= MAX_LISTED_FILES else "")
        parts.append(f"SELECT {select_list} FROM {examples} AS e SEMI JOIN to_fetch AS t USING ({_key_sql()}) "
                     f"WHERE e.stratum = {_literal(stratum)}{where}")
    written = []
    read_before = _bytes_read()
    if parts or not carried:
        body = " UNION ALL ".join(parts) if parts else f"SELECT {select_list} FROM {examples} WHERE false"
        # DuckDB writes a column as required (not null) when its plan proves no NULL, which differs
        # between a full write, a fetch and a rewrite; a NULL row it cannot rule out at plan time
        # (never produced: random() >= 0) makes every segment's schema the same, all nullable.
        body += " UNION ALL SELECT " + ", ".join("NULL" for _ in columns) + " WHERE random() < 0"
        tmp = folder / f".tmp-{uuid.uuid4().hex}"
        try:
            cursor.execute(
                # Streamed, not ordered: an ORDER BY sorts every text (out of memory at real volume).
                f"COPY ({body}) TO {_literal(tmp)} "
                f"(FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES {segment_bytes}, "
                f"ROW_GROUP_SIZE_BYTES {max(1, min(64 * 1024**2, segment_bytes // 8))}, FILENAME_PATTERN "
                + _literal(FILENAME_PATTERN) + ")"
            )
            produced = sorted(tmp.glob("seg-*.parquet"), key=lambda p: int(p.stem.split("-")[1]))
            for n, path in enumerate(produced):
                name = f"part-{build_id}-{n:05d}.parquet"
                os.replace(path, folder / name)
                written.append(name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    read_after = _bytes_read()
    for name in carried:
        _link_or_copy(usable[name], folder / name)
    # The new index: carried rows as they were, written rows read back (keys only) from their segment.
    new_rows = "SELECT NULL::VARCHAR AS problem_id, NULL::VARCHAR AS run_id, NULL::INTEGER AS sample_idx, " \
               "NULL::VARCHAR AS segment WHERE false"
    if written:
        paths = ", ".join(_literal(folder / name) for name in written)
        new_rows = (f"SELECT {_key_sql()}, parse_filename(filename) AS segment "
                    f"FROM read_parquet([{paths}], filename = true)")
    carried_list = ", ".join(_literal(n) for n in carried) or "NULL"
    index = cursor.sql(
        f"SELECT {_key_sql()}, row_digest, text_digest, segment FROM previous_index "
        f"WHERE segment IN ({carried_list}) "
        f"UNION ALL SELECT {_key_sql('n.')}, w.row_digest, w.text_digest, n.segment FROM ({new_rows}) AS n "
        f"LEFT JOIN wanted AS w USING ({_key_sql()}) ORDER BY segment, {_key_sql()}"
    ).to_arrow_table()
    _check_index(cursor, index, stratum)
    tmp_index = folder / f".tmp-{uuid.uuid4().hex}-{INDEX_FILE}"
    feather.write_feather(index, tmp_index, compression="zstd")
    os.replace(tmp_index, folder / INDEX_FILE)
    final = [*sorted(carried), *written]
    return {
        "stratum": stratum, "path": folder.name, "segments": len(final), "rows": index.num_rows,
        "bytes": sum((folder / name).stat().st_size for name in final),
        "carried_segments": len(carried), "rewritten_segments": len(rewrite), "written_segments": len(written),
        "rows_carried": sum(n for name, n, _, _ in segments if name in carried), "rows_fetched": int(fetch_rows),
        "rows_relabeled": int(relabeled_rows),
        "lake_files": lake_files, "full_write": full,
        "bytes_read": (read_after - read_before) if read_before is not None and read_after is not None else None,
        "written_at": datetime.now(UTC),
    }


def _check_index(cursor, index, stratum):
    """Every wanted row exported exactly once, and nothing else: a mismatch is a bug, never data."""
    cursor.register("new_index_arrow", index)
    try:
        missing = cursor.execute(f"SELECT {_key_sql()} FROM wanted ANTI JOIN new_index_arrow "
                                 f"USING ({_key_sql()}) LIMIT 1").fetchall()
        extra = cursor.execute(f"SELECT {_key_sql()} FROM new_index_arrow WHERE row_digest IS NULL LIMIT 1").fetchall()
        doubled = cursor.execute(f"SELECT {_key_sql()} FROM new_index_arrow GROUP BY ALL HAVING count(*) > 1 "
                                 "LIMIT 1").fetchall()
    finally:
        cursor.unregister("new_index_arrow")
    for what, rows in (("not exported", missing), ("exported but not in sft_examples", extra),
                       ("exported twice", doubled)):
        if rows:
            p, r, s = rows[0]
            raise RuntimeError(f"sft_exports: stratum {stratum}: row problem_id={p!r}, run_id={r!r}, "
                               f"sample_idx={s} {what}")


def model(dbt, session):
    dbt.config(materialized="table")
    import pyarrow as pa

    from warehouse import lake

    examples = dbt.ref("sft_examples")
    examples_sql = f"({examples.sql_query()})"
    problems_sql = f"({dbt.ref('stg_lake__problems').sql_query()})"
    columns_all = examples.columns
    columns = CONTRACT + [c for c in columns_all if c not in CONTRACT and c not in LINEAGE]
    build_id = os.environ.get("REASONLITE_BUILD_ID") or f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    previous_root = os.environ.get("REASONLITE_PREVIOUS_EXPORTS") or None
    root = lake.exports_dir()
    root.mkdir(parents=True, exist_ok=True)
    cursor = session.cursor()  # its own connection: no pending result of dbt's in the way
    rows = []
    try:
        view = cursor.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'sft_examples' "
                              "AND schema_name = ? ORDER BY database_name LIMIT 1", [dbt.this.schema]).fetchall()
        export_format = hashlib.md5(
            ((view[0][0] if view else "") + "|" + ",".join(columns)).encode()
        ).hexdigest()
        for stratum, name in STRATA.items():
            folder = root / name
            if folder.exists():  # a rerun of this model in the same build starts over
                shutil.rmtree(folder)
            rows.append(_export_stratum(cursor, examples_sql, problems_sql, stratum, folder, build_id,
                                        previous_root, export_format, columns))
    finally:
        cursor.close()
    schema = pa.schema([("stratum", pa.string()), ("path", pa.string()), ("segments", pa.int64()),
                        ("rows", pa.int64()), ("bytes", pa.int64()), ("carried_segments", pa.int64()),
                        ("rewritten_segments", pa.int64()), ("written_segments", pa.int64()),
                        ("rows_carried", pa.int64()), ("rows_fetched", pa.int64()), ("rows_relabeled", pa.int64()),
                        ("lake_files", pa.int64()),
                        ("full_write", pa.bool_()), ("bytes_read", pa.int64()),
                        ("written_at", pa.timestamp("us", tz="UTC"))])
    return pa.Table.from_pylist(rows, schema=schema)
