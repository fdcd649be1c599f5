"""DuckDB over the lake: views ``problems``, ``generations``, ``runs`` and, when built, the marts.

``connect()`` is the one way to open the lake in SQL. With ``read_only=True`` the dbt database is
attached read-only and ``run_readonly_sql`` refuses every statement that is not a query, so
``reasonlite sql`` can never change the lake or the marts.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

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


# Statement types a read-only user may run: queries and introspection, nothing that writes.
_READ_ONLY_TYPES = {"SELECT", "EXPLAIN", "PRAGMA"}
# PRAGMAs that only read. Others write or run SQL from files: `PRAGMA import_database('dir')`
# executes dir/schema.sql (COPY into the lake), `profiling_output` writes a file anywhere.
_READ_ONLY_PRAGMAS = {
    "show", "show_tables", "show_tables_expanded", "show_databases", "table_info", "storage_info",
    "database_size", "database_list", "metadata_info", "version", "platform", "functions", "collations",
    "extension_versions", "user_agent",
}


class ReadOnlyViolation(ValueError):
    pass


def check_read_only(sql: str) -> list:
    """Parse ``sql`` and refuse anything but queries; returns the parsed statements."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise ValueError(f"SQL does not parse: {str(err).splitlines()[0]}") from None
    if not statements:
        raise ValueError("no SQL statement given")
    for statement in statements:
        kind = statement.type.name
        if kind not in _READ_ONLY_TYPES:
            raise ReadOnlyViolation(
                f"refused: {kind} statement; `reasonlite sql` is read-only (queries only)"
            )
        if kind == "PRAGMA" and "=" in statement.query:
            raise ReadOnlyViolation("refused: PRAGMA that sets a value; `reasonlite sql` is read-only")
        if kind == "PRAGMA":
            name = re.match(r"\s*pragma\s+(\w+)", statement.query, re.IGNORECASE)
            if not name or name.group(1).lower() not in _READ_ONLY_PRAGMAS:
                raise ReadOnlyViolation(
                    f"refused: PRAGMA {name.group(1) if name else ''}; `reasonlite sql` allows only the "
                    f"read-only pragmas ({', '.join(sorted(_READ_ONLY_PRAGMAS))})"
                )
    return statements


def run_readonly_sql(sql: str) -> duckdb.DuckDBPyRelation | None:
    statements = check_read_only(sql)
    con = connect(read_only=True)
    # A query may still name a file function that writes nothing; COPY/EXPORT/ATTACH were refused above.
    result = None
    for statement in statements:
        result = con.sql(statement.query)
    return result
