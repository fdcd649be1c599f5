"""`reasonlite sql` runs the query in a child process that cannot change any file.

The statement check (tests/warehouse/test_sql_safety.py) is one layer; these tests bypass it and
hand hostile statements straight to the child-side runner, `warehouse.db.sandboxed_query`, over a
small real warehouse (a lake ingested by the CLI, a real marts DuckDB file), and hash every file
under the warehouse before and after."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.processes import alive, children, shell_signals
from tests.warehouse.test_sql_safety import REPO, reasonlite, refused, warehouse  # noqa: F401  (a fixture)
from warehouse import db, lake

needs_landlock = pytest.mark.skipif(
    not db.landlock_abi(), reason="the kernel has no Landlock (Linux >= 5.13, enabled): only RLIMIT_FSIZE stands")


def every_file(root: Path) -> dict[str, str]:
    """Every file under the warehouse (lake, marts, scratch space), by SHA-256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def hostile_statements() -> dict[str, str]:
    part = next(lake.table_dir("problems").rglob("part-*.parquet"))
    marts = lake.database_path()
    return {
        "copy a new part into a partition": f"COPY (SELECT * FROM problems) TO '{part.parent}/part-evil.parquet'",
        "copy over an existing part": f"COPY (SELECT 1 AS x) TO '{part}' (FORMAT parquet, use_tmp_file false)",
        "copy partitioned (new folders)": f"COPY (SELECT * FROM problems) TO '{lake.table_dir('problems')}' "
                                          "(FORMAT parquet, PARTITION_BY (source), OVERWRITE_OR_IGNORE)",
        "attach a new database file": f"ATTACH '{part.parent}/evil.duckdb' AS evil; "
                                      "CREATE TABLE evil.t AS SELECT 1 AS x; SELECT 1",
        "create a table in the lake's folder": f"ATTACH '{lake.table_dir('problems')}/t.duckdb' AS t; "
                                               "CREATE TABLE t.problems AS SELECT * FROM problems; SELECT 1",
        "detach the marts, attach them read-write, insert": (
            f"DETACH warehouse; ATTACH '{marts}' AS warehouse; INSERT INTO warehouse.main.pseudo_labels "
            "VALUES ('evil'); CHECKPOINT warehouse; SELECT count(*) FROM warehouse.main.pseudo_labels"),
        "export the whole database into the lake": f"EXPORT DATABASE '{lake.table_dir('problems')}/dump'",
    }


# Runs each statement (JSON on stdin) straight through the child-side runner, no statement check,
# in a clean process: forked as the CLI does, or spawned as a library caller gets.
HOSTILE_RUNNER = r"""
import json, sys
from warehouse import db
outcomes = {}
for name, statement in json.load(sys.stdin).items():
    try:
        with db.sandboxed_query(statement, fork=sys.argv[1] == "fork") as result:
            outcomes[name] = f"ran: {result.read_all().to_pylist()}"
    except Exception as err:
        outcomes[name] = f"{type(err).__name__}: {err}"
print(json.dumps(outcomes))
"""


@needs_landlock
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_hostile_statements_change_no_file(warehouse, start):  # noqa: F811
    with db.sandboxed_query("SELECT count(*) FROM problems") as result:  # records the checked parts (scratch)
        assert result.read_all().column(0).to_pylist() == [40]
    before = every_file(warehouse)
    statements = hostile_statements()
    run = subprocess.run([sys.executable, "-c", HOSTILE_RUNNER, start], input=json.dumps(statements), cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    outcomes = json.loads(run.stdout)
    for name in statements:
        assert outcomes[name].startswith("UserError: DuckDB: ") and "\n" not in outcomes[name], (name, outcomes[name])
    assert every_file(warehouse) == before
    # The warehouse still reads, and the marts hold what they held.
    with db.sandboxed_query("SELECT count(*) FROM pseudo_labels WHERE problem_id = 'evil'") as result:
        assert result.read_all().column(0).to_pylist() == [0]


LOCKDOWN_PROBE = r"""
import errno, json, os, sys
from warehouse import db
existing, new = sys.argv[1], sys.argv[2]
held = open(existing, "ab")  # a descriptor opened before the lockdown
landlock = db._forbid_filesystem_changes()
outcome = {"landlock": landlock}
def attempt(name, action):
    try:
        action()
        outcome[name] = "done"
    except OSError as err:
        outcome[name] = errno.errorcode[err.errno]
def grow_held():
    held.write(b"more")
    held.flush()
attempt("grow a file opened before", grow_held)
attempt("create", lambda: open(new, "w"))
attempt("open for writing", lambda: open(existing, "r+"))
attempt("remove", lambda: os.remove(existing))
attempt("rename", lambda: os.rename(existing, new))
attempt("mkdir", lambda: os.mkdir(new + ".d"))
attempt("read", lambda: open(existing, "rb").read())
print(json.dumps(outcome))
"""


def test_the_lockdown_refuses_every_file_change_and_keeps_reads(tmp_path):
    existing = tmp_path / "existing.txt"
    existing.write_bytes(b"precious")
    result = subprocess.run([sys.executable, "-c", LOCKDOWN_PROBE, str(existing), str(tmp_path / "new.txt")],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    # RLIMIT_FSIZE = 0 with SIGXFSZ ignored: growing any file fails, even through an old descriptor.
    assert outcome["grow a file opened before"] == "EFBIG"
    assert outcome["read"] == "done"
    if outcome["landlock"]:
        for action in ("create", "open for writing", "remove", "rename", "mkdir"):
            assert outcome[action] == "EACCES", (action, outcome)
    assert existing.read_bytes() == b"precious" and sorted(p.name for p in tmp_path.iterdir()) == ["existing.txt"]


def test_a_query_that_fails_halfway_is_one_line_and_replaces_no_file(warehouse, tmp_path):  # noqa: F811
    # Hundreds of thousands of rows stream out before the error: it still reaches the caller, in one line.
    halfway = ("select case when range < 1500000 then range else error('boom at ' || range) end as x "
               "from range(2000000)")
    out = tmp_path / "results" / "result.csv"
    out.parent.mkdir()
    out.write_text("precious\n")
    err = refused(reasonlite("sql", halfway, "--out", str(out), "--force"))
    assert err == "reasonlite sql: error: DuckDB: Invalid Input Error: boom at 1500000"
    assert out.read_text() == "precious\n" and [p.name for p in out.parent.iterdir()] == ["result.csv"]
    streamed = reasonlite("sql", halfway, "--format", "csv")
    assert "boom at 1500000" in refused(streamed)
    assert streamed.stdout.count("\n") > 10_000  # the error came after rows had streamed out


def test_the_query_process_never_spills_and_says_so(warehouse):  # noqa: F811
    shown = reasonlite("sql", "select current_setting('temp_directory') as t", "--format", "csv")
    assert shown.returncode == 0 and shown.stdout == "t\n\n", shown  # no temp directory at all
    big = ("select range % 2000000 as k, string_agg(range::varchar) from range(4000000) group by k "
           "order by k")
    err = refused(reasonlite("sql", big, "--format", "csv", "--memory-limit", "40MB"))
    assert "Out of Memory Error" in err and "does not spill" in err and "--memory-limit" in err
    assert "--memory-limit 'lots'" in refused(reasonlite("sql", "select 1", "--memory-limit", "lots"))
    assert not list(lake.scratch_dir().rglob("*.tmp")) and not list(lake.scratch_dir().rglob("duckdb_temp*"))


def test_a_table_reads_only_the_rows_it_shows(warehouse):  # noqa: F811
    started = time.monotonic()
    result = reasonlite("sql", "select range from range(1000000000000)", "--max-rows", "3")
    assert result.returncode == 0, result.stderr
    assert "first 3 rows shown" in result.stdout and time.monotonic() - started < 120


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM", "SIGKILL"])
def test_the_query_process_ends_with_its_parent(warehouse, how):  # noqa: F811
    parent = subprocess.Popen([sys.executable, "-m", "warehouse.cli", "sql", "select sum(range) from range(10000000000000)"],
                              cwd=REPO, env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=shell_signals)
    try:
        deadline = time.monotonic() + 60
        while not children(parent.pid):
            assert time.monotonic() < deadline and parent.poll() is None, "no query process started"
            time.sleep(0.05)
        (child,) = children(parent.pid)
        # Forked, not a fresh interpreter (~0.4 s more per query): it runs the parent's command line.
        assert Path(f"/proc/{child}/cmdline").read_bytes() == Path(f"/proc/{parent.pid}/cmdline").read_bytes()
        time.sleep(0.5)  # the query is running
        sent = {"Ctrl-C": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}[how]
        parent.send_signal(sent)
        code = parent.wait(timeout=30)
        assert code == {"Ctrl-C": 130, "SIGTERM": 128 + signal.SIGTERM, "SIGKILL": -signal.SIGKILL}[how]
        deadline = time.monotonic() + 10
        while alive(child):
            assert time.monotonic() < deadline, f"the query process {child} outlived its parent ({how})"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()


CTRL_C_TO_ANOTHER_THREAD = """
import signal, sys, threading, time
threading.Thread(target=time.sleep, args=(120,), daemon=True).start()  # SIGINT can reach this one only
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # not the main thread, waiting on the child
from warehouse import db
print("started", flush=True)
try:
    with db.sandboxed_query("select sum(range) from range(10000000000000)") as result:
        result.read_all()
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_stops_the_wait_for_the_child_even_when_another_thread_takes_the_signal(warehouse):  # noqa: F811
    """The kernel gives a process's SIGINT to any thread not blocking it: the read that waits for the
    child's rows is then not interrupted, and before the pipe was polled the caller waited for good."""
    parent = subprocess.Popen([sys.executable, "-c", CTRL_C_TO_ANOTHER_THREAD], cwd=REPO, env=os.environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=shell_signals)
    try:
        assert parent.stdout.readline() == "started\n"
        deadline = time.monotonic() + 60
        while not children(parent.pid):
            assert time.monotonic() < deadline and parent.poll() is None, "no query process started"
            time.sleep(0.05)
        time.sleep(1.0)  # the query is running, the caller waits for its first rows
        parent.send_signal(signal.SIGINT)
        assert parent.wait(timeout=30) == 130, parent.stderr.read()
    finally:
        parent.kill()
        parent.wait()


def test_a_library_caller_with_a_live_duckdb_gets_its_result(warehouse):  # noqa: F811
    duckdb.sql("SELECT 1").fetchall()  # DuckDB's default connection and its thread pool stay alive here
    with db.readonly_query("SELECT count(*) AS n FROM problems") as result:
        assert result.read_all().to_pylist() == [{"n": 40}]
    assert db.run_readonly_sql("SELECT count(*) FROM pseudo_labels").fetchall() == [(40,)]
