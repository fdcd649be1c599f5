"""DuckDB over the lake: views ``problems``, ``generations``, ``runs`` and, when built, the marts.

``connect()`` is the one way to open the lake in SQL. ``readonly_session()`` is the read-only
session (``serve``, ``report``: fixed queries): DuckDB itself is locked out of every file but the
lake's tables and the read-only marts. SQL a user typed (``reasonlite sql``) goes through
``readonly_query``: one query, checked (``check_read_only``), run in a child process that cannot
write a byte to any file (``sandboxed_query``), its result streamed back as Arrow batches, which
``write_result`` formats batch by batch.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import duckdb
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from warehouse import lake
from warehouse.errors import UserError

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


def connect(read_only: bool = False, marts: bool = True, spill: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake views, and the dbt database attached if it exists.

    The attached database's schemas go on the search path, so ``select * from pseudo_labels``
    works without a schema prefix. ``spill=False``: no temp directory, so a query that outgrows
    memory fails with DuckDB's out-of-memory error instead of writing to disk.
    """
    con = duckdb.connect(config={"temp_directory": str(lake.scratch_dir()) if spill else ""})
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


def readonly_session(spill: bool = True, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """The lake views and the marts in a DuckDB session that cannot read other files, write outside
    the lake's table folders, reach the network or load extensions (``serve``, ``report``, and the
    child process that runs a ``reasonlite sql`` query).

    The limits are DuckDB's own, set once the views and the read-only marts are in place, then
    locked: with ``enable_external_access`` off DuckDB opens only ``allowed_directories`` (the
    table folders the views read; not ``/proc``, not the environment) and the attached marts;
    nothing is installed or autoloaded (no ``https://`` reader); ``lock_configuration`` refuses
    the SET/RESET that would undo any of it. DuckDB could still write inside those table folders
    (COPY) and re-attach the marts file read-write after a DETACH, so SQL a user typed goes
    through :func:`readonly_query`: a statement check, then a child process that cannot write.
    ``memory_limit`` (DuckDB's syntax, e.g. ``'2GB'``) replaces DuckDB's default of 80% of RAM.
    """
    con = connect(read_only=True, spill=spill)
    folders = ", ".join(_sql_str(f"{lake.table_dir(table)}{os.sep}") for table in lake.PARTITIONS)
    if memory_limit is not None:
        try:
            con.execute(f"SET memory_limit = {_sql_str(memory_limit)}")
        except duckdb.Error as err:
            raise UserError(f"--memory-limit {memory_limit!r}: {str(err).splitlines()[0]}") from None
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
    # Its own connection, closed at once: DuckDB's module-level default connection would keep a
    # thread pool alive, and the sandbox forks this process only while it has a single thread.
    with duckdb.connect() as con:
        try:
            return con.extract_statements(sql)
        except duckdb.Error as err:
            raise ValueError(f"SQL does not parse: {str(err).splitlines()[0]}") from None


def _check_explain(query: str) -> None:
    """Plain ``EXPLAIN <query>`` only: ``EXPLAIN ANALYZE`` runs its statement (a COPY would write)."""
    starts = [position for position, kind in duckdb.tokenize(query) if kind != duckdb.token_type.comment]
    rest = query[starts[1]:] if len(starts) > 1 else ""
    if re.match(r"analy[sz]e\b", rest, re.IGNORECASE):
        raise ReadOnlyViolation("refused: EXPLAIN ANALYZE runs the statement; use plain EXPLAIN")
    try:
        inner = _parse(rest)
    except ValueError:
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


# ------------------------------------------------------------------------------ the query sandbox
#
# `reasonlite sql` runs the user's statement in a child process that cannot change any file,
# whatever DuckDB is talked into (COPY, ATTACH, DETACH + ATTACH of the marts read-write, CREATE):
#   - Landlock (Linux >= 5.13, unprivileged): no file may be opened for writing, created,
#     truncated, removed, renamed or linked, and no TCP connection made;
#   - RLIMIT_FSIZE = 0 with SIGXFSZ ignored: a write that would grow a file fails with EFBIG,
#     including through a descriptor opened before Landlock applied;
#   - no DuckDB temp directory: a query that outgrows memory fails with DuckDB's out-of-memory
#     error instead of spilling.
# The child opens the session (views, the read-only marts) before it locks itself down, runs the
# one query and writes the result to a pipe as an Arrow IPC stream; the parent formats it.

_LANDLOCK_CREATE_RULESET, _LANDLOCK_RESTRICT_SELF = 444, 446  # the same on every architecture
_LANDLOCK_CREATE_RULESET_VERSION = 1
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
# Landlock filesystem rights (linux/landlock.h) that change the filesystem, by the ABI that added
# them. Reading and executing stay allowed: DuckDB reads the lake, its own limits fence that in.
_LANDLOCK_WRITE_RIGHTS = {
    1: sum(1 << bit for bit in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12)),  # write_file, remove_*, make_*
    2: 1 << 13,  # refer (link or rename across folders)
    3: 1 << 14,  # truncate
}
_LANDLOCK_NET_TCP = (1 << 0) | (1 << 1)  # bind_tcp, connect_tcp (ABI 4)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> int:
    return _libc().prctl(option, *(ctypes.c_ulong(arg) for arg in (value, 0, 0, 0)))


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none (not Linux, too old, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                              ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(version, 0)


def _forbid_filesystem_changes() -> bool:
    """Lock this process out of changing any file, for good: call it while the process has one
    thread (Landlock binds the calling thread and the threads it starts later, not others).
    Returns whether Landlock applied (else only RLIMIT_FSIZE stands, which does not stop
    creating, truncating or removing files)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    abi = landlock_abi()
    if not abi:
        return False
    libc = _libc()
    fs_rights = sum(rights for version, rights in _LANDLOCK_WRITE_RIGHTS.items() if version <= abi)
    fields = [fs_rights] + ([_LANDLOCK_NET_TCP] if abi >= 4 else [])
    attr = (ctypes.c_uint64 * len(fields))(*fields)  # struct landlock_ruleset_attr, as long as this ABI knows
    ruleset = libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        # No rules: every handled right is denied everywhere. no_new_privs is Landlock's condition.
        if _prctl(_PR_SET_NO_NEW_PRIVS, 1) != 0 or \
                libc.syscall(_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return True


def _query_child(query: str, row_limit: int | None, memory_limit: str | None, data_fd: int, status_fd: int) -> None:
    """The child: open the session, lock down, run ``query``, stream Arrow batches into
    ``data_fd``, close it, then write one JSON status into ``status_fd``."""
    if sys.platform.startswith("linux"):
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with a killed parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the child
    status: dict = {"ok": True}
    try:
        for table in lake.PARTITIONS:
            lake.check_table(table)  # records what it checked (a file write): done before the lockdown
        # Landlock binds the threads that exist when it applies and those started later, so it goes
        # before DuckDB starts its pool: a COPY runs in a worker thread.
        _forbid_filesystem_changes()
        con = readonly_session(spill=False, memory_limit=memory_limit)
        relation = con.sql(query)
        if relation is None:
            raise ValueError("the statement returned no result")
        if row_limit is not None:
            relation = relation.limit(row_limit)
        reader = relation.to_arrow_reader(BATCH_ROWS)
        with open(data_fd, "wb", closefd=False) as sink, pa.ipc.new_stream(sink, reader.schema) as writer:
            for batch in _duckdb_batches(reader):
                writer.write_batch(batch)
    except BaseException as err:  # noqa: BLE001  (every failure goes back to the parent as a status)
        kind = ("duckdb" if isinstance(err, duckdb.Error | _DuckDBStreamError) else
                "user" if isinstance(err, UserError | ValueError | OSError) else "bug")
        text = str(err).strip()
        if isinstance(err, duckdb.OutOfMemoryException):  # DuckDB's own advice (SET ...) is locked out here
            text = (f"{text.splitlines()[0]}; `reasonlite sql` does not spill to disk: filter or aggregate "
                    "more, or raise --memory-limit")
        status = {"ok": False, "kind": kind, "message": text.splitlines()[0] if text else type(err).__name__,
                  "traceback": traceback.format_exc()}
    finally:
        os.close(data_fd)  # first: the parent reads the status only after the stream's end
        with contextlib.suppress(BrokenPipeError), open(status_fd, "w") as sink:  # a parent that left
            json.dump(status, sink)


class _DuckDBStreamError(Exception):
    pass


def _duckdb_batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """DuckDB's batches; an error DuckDB meets halfway (pyarrow passes it on as a bare OSError with
    DuckDB's text) is told apart from an error writing to the pipe."""
    batches = iter(reader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except OSError as err:
            raise _DuckDBStreamError(str(err)) from None
        yield batch


def _spawned_query_child() -> None:
    """Entry point of a spawned (not forked) child: its job arrives as JSON on stdin."""
    job = json.load(sys.stdin)
    _query_child(job["query"], job["row_limit"], job["memory_limit"], job["data_fd"], job["status_fd"])


class QueryProcessDied(RuntimeError):
    pass


class _InterruptiblePipe(io.RawIOBase):
    """The read end of the child's pipe, waited on in slices of ``POLL_SECONDS``: between two, this
    thread runs Python again, so a Ctrl-C is acted on even when the read that waits for the child
    is not interrupted by it (the signal went to another of the process's threads, or a C++ layer
    of pyarrow retried the interrupted read), as a CI run once saw: the CLI waited on for good."""

    POLL_SECONDS = 0.2

    def __init__(self, fd: int):
        super().__init__()
        self.fd = fd
        # poll, not select: a long-lived caller (a notebook) may hold file descriptors above select's 1024.
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._poller.poll(self.POLL_SECONDS * 1000):
            pass
        return os.readv(self.fd, [buffer])


class _ForkedChild:
    """The little of ``subprocess.Popen`` that :func:`sandboxed_query` uses, for a forked pid."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        if deadline is None and self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: never fork
        return 1 << 30


# The native threads importing pyarrow starts (jemalloc's, OpenBLAS's), which prepare for a fork
# themselves (pthread_atfork). A process with more threads than this started something else.
_THREADS_AT_IMPORT = _thread_count()


def _start_child(query: str, row_limit: int | None, memory_limit: str | None, data_fd: int, status_fd: int,
                 parent_fds: tuple[int, ...], fork: bool):
    """Fork this process (a few ms) or spawn a fresh interpreter (~0.4 s of imports): see
    :func:`sandboxed_query`."""
    if fork and _thread_count() <= _THREADS_AT_IMPORT:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # the child must not write the parent's buffered output a second time
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            try:
                for fd in parent_fds:
                    os.close(fd)  # so that a reader that stops reading gives the child EPIPE
                _query_child(query, row_limit, memory_limit, data_fd, status_fd)
            finally:
                os._exit(0)
        return _ForkedChild(pid)
    package_root = str(Path(__file__).resolve().parents[1])  # this checkout's `warehouse`, not another
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-c", "from warehouse.db import _spawned_query_child; _spawned_query_child()"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(data_fd, status_fd), env=env, text=True)
    with child.stdin:
        json.dump({"query": query, "row_limit": row_limit, "memory_limit": memory_limit, "data_fd": data_fd,
                   "status_fd": status_fd}, child.stdin)
    return child


@contextlib.contextmanager
def sandboxed_query(query: str, row_limit: int | None = None, memory_limit: str | None = None,
                    fork: bool = False) -> Iterator[pa.RecordBatchReader]:
    """Run ``query`` as is (no statement check: see :func:`readonly_query`) in a child process
    that cannot change any file, and yield its result as a stream of Arrow batches. An error in
    the child is raised by the stream (at its start, or after its last batch) or, for a stream
    left unread, when the block ends: DuckDB's as a ``warehouse.errors.UserError`` in one line
    ("DuckDB: ..."), as ``reasonlite sql`` always gave.

    The child is a fresh interpreter unless ``fork``: forking is for a caller that holds no DuckDB
    connection and runs no threads of its own (the CLI), since a child forked while another thread
    holds a lock can deadlock on it. Even then it forks only while the process has no more threads
    than it had when this module was imported (``cli.main`` called inside a test or a notebook)."""
    data_in, data_out = os.pipe()
    status_in, status_out = os.pipe()
    try:
        child = _start_child(query, row_limit, memory_limit, data_out, status_out, (data_in, status_in), fork)
    finally:
        os.close(data_out)
        os.close(status_out)

    def outcome() -> None:
        """Wait for the child's end; raise its error."""
        with open(status_in, "rb", closefd=False) as source:
            text = source.read()
        child.wait()
        if not text:
            code = child.returncode
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            raise UserError(f"the query process died: {how}{' (out of memory?)' if code == -signal.SIGKILL else ''}")
        status = json.loads(text)
        if status["ok"]:
            return
        if status["kind"] == "duckdb":
            raise UserError(f"DuckDB: {status['message']}")
        if status["kind"] == "user":
            raise UserError(status["message"])
        raise QueryProcessDied(f"the query process failed:\n{status['traceback']}")

    ended = False  # whether the child's status has been read
    child_error: list[BaseException] = []  # what the child's status raised, when a reader wraps it

    def batches(stream: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        nonlocal ended
        yield from stream
        ended = True
        try:
            outcome()  # a query that failed halfway fails the stream at its end, before a caller commits
        except BaseException as err:
            child_error.append(err)
            raise

    try:
        with io.BufferedReader(_InterruptiblePipe(data_in)) as source:
            try:
                stream = pa.ipc.open_stream(source)
            except (pa.ArrowInvalid, OSError):  # no stream at all: the child failed before its first batch
                ended = True
                outcome()
                raise
            reader = pa.RecordBatchReader.from_batches(stream.schema, batches(stream))
            yield reader
            for _ in reader:  # drain what the caller left unread, so that the child can finish
                pass
    except BaseException as err:
        if child_error and err is not child_error[0]:
            raise child_error[0] from None  # DuckDB, rendering the stream, wraps it in its own error
        if not ended:
            try:
                child.wait(timeout=0.5)  # a child killed mid-stream (out of memory) is ending now
            except subprocess.TimeoutExpired:  # the failure is ours (Ctrl-C, a closed stdout): stop it
                child.kill()
                child.wait()
            else:
                ended = True
                outcome()  # the child's end explains a torn stream better than the stream does
        raise
    finally:
        os.close(data_in)
        os.close(status_in)


@contextlib.contextmanager
def readonly_query(sql: str, row_limit: int | None = None, memory_limit: str | None = None,
                   fork: bool = False) -> Iterator[pa.RecordBatchReader]:
    """The one way to run SQL a user typed: :func:`check_read_only`, then :func:`sandboxed_query`."""
    with sandboxed_query(check_read_only(sql), row_limit=row_limit, memory_limit=memory_limit, fork=fork) as reader:
        yield reader


def run_readonly_sql(sql: str) -> duckdb.DuckDBPyRelation:
    """:func:`readonly_query`'s whole result, in memory, as a relation: for small results in
    Python (a notebook, a test). ``reasonlite sql`` streams instead."""
    with readonly_query(sql) as reader:
        table = reader.read_all()
    return duckdb.connect().from_arrow(table)

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


def write_result(reader: pa.RecordBatchReader, fmt: str, stream: IO, max_rows: int = 100) -> int:
    """Write a query result to ``stream`` (binary for parquet, text otherwise) batch by batch, so
    memory stays bounded whatever the row count. A table reads only ``max_rows`` + 1 rows (ask
    :func:`readonly_query` for no more). Returns the rows written (shown, for a table)."""
    renderer = duckdb.connect()  # in memory, over the batches only: formats, never reads a file
    if fmt == "table":
        head = pa.Table.from_batches(list(_first_rows(reader, max_rows + 1)), schema=reader.schema)
        shown = head.slice(0, max_rows)
        with contextlib.redirect_stdout(stream):
            renderer.from_arrow(shown).show(max_rows=max_rows, max_width=200)
        if head.num_rows > max_rows:
            print(f"(first {max_rows} rows shown; --max-rows N for more, --format csv|json for all)", file=stream)
        return shown.num_rows
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(stream, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows
    if fmt == "csv":
        csv.writer(stream, lineterminator="\n").writerow(reader.schema.names)
    # One streaming query over the whole stream (a query per batch was 2x slower for narrow rows).
    for batch in _as_lines(renderer.from_arrow(reader), fmt).to_arrow_reader(BATCH_ROWS):
        if batch.num_rows:
            stream.write("\n".join(batch.column(0).to_pylist()) + "\n")
            rows += batch.num_rows
    return rows


def _first_rows(reader: pa.RecordBatchReader, limit: int) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        if limit <= 0:
            return
        yield batch.slice(0, limit)
        limit -= batch.num_rows
