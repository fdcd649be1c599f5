"""DuckDB over the lake: views ``problems``, ``generations``, ``runs`` and, when built, the marts.

``connect()`` is the one way to open the lake in SQL. ``readonly_session()`` is the one way to
run SQL a user typed (``reasonlite sql``, ``serve``): DuckDB itself is locked out of every file but
the lake's tables and the read-only marts, and ``run_readonly_sql`` runs one query at a time and
refuses every statement that could write. ``write_result`` streams a result out in batches.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from pathlib import Path
from typing import IO

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse import lake

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty_select(schema: pa.Schema) -> str:
    cols = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {f.name}" for f in schema)
    return f"SELECT {cols} WHERE false"


def lake_view_sql(table: str) -> str:
    """The SELECT a view over one lake table uses (also used by dbt sources via vars)."""
    lake.check_table(table)  # a corrupt or drifted part is named here, not met halfway through a query
    if table in lake.RECORD_FILES:
        schema = lake.SCHEMAS[table]
        if not any(lake.table_dir(table).glob(f"*/{lake.RECORD_FILES[table]}")):
            return _empty_select(schema)
        columns = ", ".join(f"{_sql_str(f.name)}: {_sql_str(_DUCK_TYPES[f.type])}" for f in schema)
        return (
            f"SELECT * FROM read_json({_sql_str(lake.record_glob(table))}, columns = {{{columns}}}, "
            "format = 'auto')"
        )
    if not any(lake.iter_parts(table)):
        extra = ", CAST(NULL AS BIGINT) AS shard" if table == "generations" else ""
        return _empty_select(lake.SCHEMAS[table]).replace(" WHERE false", f"{extra} WHERE false")
    return (
        f"SELECT * FROM read_parquet({_sql_str(lake.parquet_glob(table))}, "
        "hive_partitioning = true, union_by_name = true)"
    )


def create_lake_views(con: duckdb.DuckDBPyConnection, schema: str = "main") -> None:
    for table in lake.PARTITIONS:
        con.execute(f"CREATE OR REPLACE VIEW {schema}.{table} AS {lake_view_sql(table)}")


def connect(read_only: bool = False, marts: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake views, and the dbt database attached if it exists.

    The attached database's schemas go on the search path, so ``select * from pseudo_labels``
    works without a schema prefix.
    """
    con = duckdb.connect(config={"temp_directory": str(lake.scratch_dir())})
    create_lake_views(con)
    db = lake.database_path()
    if marts and db.exists():
        # Always read-only: only `reasonlite curate` writes marts, into a new snapshot (warehouse/snapshots.py).
        con.execute(f"ATTACH {_sql_str(str(db))} AS warehouse (READ_ONLY)")
        schemas = [
            row[0]
            for row in con.execute(
                "SELECT schema_name FROM duckdb_schemas() WHERE database_name = 'warehouse' "
                "AND schema_name NOT IN ('information_schema', 'pg_catalog') ORDER BY schema_name"
            ).fetchall()
        ]
        path = ",".join(["memory.main"] + [f"warehouse.{s}" for s in schemas])
        con.execute(f"SET search_path = {_sql_str(path)}")
    return con


# --------------------------------------------------------------------------------- read-only sessions

# Statement types a read-only user may run: queries and introspection, nothing that writes.
_READ_ONLY_TYPES = {"SELECT", "EXPLAIN", "PRAGMA"}
# PRAGMAs that only read. Others write or run SQL from files: `PRAGMA import_database('dir')`
# executes dir/schema.sql (COPY into the lake), `profiling_output` writes a file anywhere.
_READ_ONLY_PRAGMAS = {
    "show", "show_tables", "show_tables_expanded", "show_databases", "table_info", "storage_info",
    "database_size", "database_list", "metadata_info", "version", "platform", "functions", "collations",
    "extension_versions", "user_agent",
}
RESULT_FORMATS = ("table", "csv", "json", "parquet")
# --out FILE without --format: the format its extension names.
FORMAT_BY_SUFFIX = {".txt": "table", ".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json",
                    ".parquet": "parquet"}
BATCH_ROWS = 10_000  # rows per Arrow batch while a result streams out


class ReadOnlyViolation(ValueError):
    pass


def readonly_session() -> duckdb.DuckDBPyConnection:
    """The lake views and the marts in a DuckDB session that cannot read other files, write outside
    the lake's table folders, reach the network or load extensions (`reasonlite sql`, `serve`).

    The limits are DuckDB's own, set once the views and the read-only marts are in place, then
    locked: with ``enable_external_access`` off DuckDB opens only ``allowed_directories`` (the
    table folders the views read; not ``/proc``, not the environment) and the attached marts;
    nothing is installed or autoloaded (no ``https://`` reader); ``lock_configuration`` refuses
    the SET/RESET that would undo any of it. DuckDB could still write inside those table folders
    (COPY) and re-attach the marts file read-write after a DETACH, so callers run SQL through
    :func:`run_readonly_sql`, which refuses every statement but a query.
    """
    con = connect(read_only=True)
    folders = ", ".join(_sql_str(f"{lake.table_dir(table)}{os.sep}") for table in lake.PARTITIONS)
    for statement in (
        f"SET allowed_directories = [{folders}]",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET allow_community_extensions = false",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)
    return con


def _parse(sql: str) -> list:
    try:
        return duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise ValueError(f"SQL does not parse: {str(err).splitlines()[0]}") from None


def _check_explain(query: str) -> None:
    """Plain ``EXPLAIN <query>`` only: ``EXPLAIN ANALYZE`` runs its statement (a COPY would write)."""
    starts = [position for position, kind in duckdb.tokenize(query) if kind != duckdb.token_type.comment]
    rest = query[starts[1]:] if len(starts) > 1 else ""
    if re.match(r"analy[sz]e\b", rest, re.IGNORECASE):
        raise ReadOnlyViolation("refused: EXPLAIN ANALYZE runs the statement; use plain EXPLAIN")
    try:
        inner = duckdb.extract_statements(rest)
    except duckdb.Error:
        inner = []
    if len(inner) != 1 or inner[0].type.name != "SELECT":
        raise ReadOnlyViolation("refused: EXPLAIN takes one plain query (no options) in `reasonlite sql`")


def check_read_only(sql: str) -> str:
    """Parse ``sql``: one query, plain EXPLAIN or read-only PRAGMA, else ReadOnlyViolation. Returns it."""
    statements = _parse(sql)
    if not statements:
        raise ValueError("no SQL statement given")
    if len(statements) > 1:
        raise ReadOnlyViolation(
            f"refused: {len(statements)} statements; `reasonlite sql` runs one statement at a time"
        )
    statement = statements[0]
    kind = statement.type.name
    if kind not in _READ_ONLY_TYPES:
        raise ReadOnlyViolation(f"refused: {kind} statement; `reasonlite sql` is read-only (queries only)")
    if kind == "EXPLAIN":
        _check_explain(statement.query)
    if kind == "PRAGMA":
        if "=" in statement.query:
            raise ReadOnlyViolation("refused: PRAGMA that sets a value; `reasonlite sql` is read-only")
        name = re.match(r"\s*pragma\s+(\w+)", statement.query, re.IGNORECASE)
        if not name or name.group(1).lower() not in _READ_ONLY_PRAGMAS:
            raise ReadOnlyViolation(
                f"refused: PRAGMA {name.group(1) if name else ''}; `reasonlite sql` allows only the "
                f"read-only pragmas ({', '.join(sorted(_READ_ONLY_PRAGMAS))})"
            )
    return statement.query


def run_readonly_sql(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyRelation:
    """One read-only statement on ``con`` (default: a new :func:`readonly_session`), as a lazy relation."""
    query = check_read_only(sql)
    return (con or readonly_session()).sql(query)


def result_format(fmt: str | None, out: Path | None) -> str:
    """``--format`` when given, else what ``--out``'s extension names, else a table."""
    if fmt:
        if fmt not in RESULT_FORMATS:
            raise ValueError(f"--format {fmt!r}: expected one of {', '.join(RESULT_FORMATS)}")
        return fmt
    if out is None:
        return "table"
    try:
        return FORMAT_BY_SUFFIX[out.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"--out {out}: cannot tell the format from {out.suffix or 'no extension'!r}; "
            f"use --format {'|'.join(RESULT_FORMATS)} or one of {', '.join(FORMAT_BY_SUFFIX)}"
        ) from None


def check_result_path(out: Path, force: bool) -> Path:
    """Where ``sql --out`` may write: never inside the lake, the marts or the exports folder, and
    never over an existing file unless ``force``. Returns the resolved path (symlinks followed)."""
    target = Path(out).expanduser().resolve()
    database = lake.database_path()
    for name, folder in (("lake", lake.lake_root()), ("exports folder", lake.exports_dir()),
                         ("marts snapshots", lake.snapshots_dir())):
        if target.is_relative_to(folder):
            raise ValueError(f"--out {out}: inside the {name} ({folder}); write query results elsewhere")
    if target.parent == database.parent and target.name.startswith(database.name):
        raise ValueError(f"--out {out}: that is the marts database ({database}) or one of its files")
    if target.is_dir():
        raise ValueError(f"--out {out}: is a folder; give a file name")
    if (target.exists() or Path(out).is_symlink()) and not force:
        raise ValueError(f"--out {out}: already exists; add --force to replace it")
    return target


def _csv_cell(position: int, kind: duckdb.typing.DuckDBPyType) -> str:
    """SQL for one CSV field: text (lists and structs as JSON), quoted only where it must be."""
    nested = kind.id in ("list", "struct", "map", "array", "union")
    text = f"CAST({'to_json(' if nested else '('}#{position}) AS VARCHAR)"
    return (f"coalesce(CASE WHEN regexp_matches({text}, '[\",\\r\\n]') "
            f"THEN '\"' || replace({text}, '\"', '\"\"') || '\"' ELSE {text} END, '')")


def _as_lines(relation: duckdb.DuckDBPyRelation, fmt: str) -> duckdb.DuckDBPyRelation:
    """The result as one text line per row, rendered by DuckDB itself (vectorized: a Python loop
    over 20M rows took minutes): a JSON object, or a CSV record."""
    if fmt == "json":
        return relation.set_alias("result_row").project("to_json(result_row)::VARCHAR AS line")
    fields = ", ',', ".join(_csv_cell(i, kind) for i, kind in enumerate(relation.types, start=1))
    return relation.project(f"concat({fields}) AS line")


def write_result(relation: duckdb.DuckDBPyRelation, fmt: str, stream: IO, max_rows: int = 100) -> int:
    """Write a query result to ``stream`` (binary for parquet, text otherwise) batch by batch, so
    memory stays bounded whatever the row count. Returns the rows written (shown, for a table)."""
    if fmt == "table":
        head = relation.limit(max_rows + 1).to_arrow_table()
        shown = head.slice(0, max_rows)
        with contextlib.redirect_stdout(stream):
            duckdb.connect().from_arrow(shown).show(max_rows=max_rows, max_width=200)
        if head.num_rows > max_rows:
            print(f"(first {max_rows} rows shown; --max-rows N for more, --format csv|json for all)", file=stream)
        return shown.num_rows
    reader = (relation if fmt == "parquet" else _as_lines(relation, fmt)).to_arrow_reader(BATCH_ROWS)
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(stream, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows
    if fmt == "csv":
        csv.writer(stream, lineterminator="\n").writerow(relation.columns)
    for batch in reader:
        if batch.num_rows:
            stream.write("\n".join(batch.column(0).to_pylist()) + "\n")
            rows += batch.num_rows
    return rows
