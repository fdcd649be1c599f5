"""`reasonlite sql` is read-only by construction, streams its results, and writes only where it may.

Every check runs the real CLI in its own process over a small real warehouse: a lake ingested by
`reasonlite ingest` and a marts database (a real DuckDB file) beside it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from warehouse import db, lake

REPO = Path(__file__).resolve().parents[2]
CANARY = "hf_SQLSAFETYcanaryTOKEN0123456789abcdef"


def reasonlite(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse.cli", *args], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)


def refused(result: subprocess.CompletedProcess) -> str:
    """The one-line error of a refused command (exit 2, no traceback)."""
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert len(err.splitlines()) == 1 and err.startswith("reasonlite sql: error: "), err
    return err


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "tmp" not in p.relative_to(root).parts}


@pytest.fixture
def warehouse(lake_env, benchmarks_dir) -> Path:
    result = reasonlite("ingest", str(benchmarks_dir / "amc23.jsonl"), "--source", "amc23")
    assert result.returncode == 0, result.stderr
    marts = duckdb.connect(str(lake.database_path()))
    marts.execute("CREATE TABLE pseudo_labels AS SELECT 'amc23:' || range AS problem_id FROM range(40)")
    marts.close()
    lake.exports_dir().mkdir(parents=True, exist_ok=True)
    (lake.exports_dir() / "curation_vars.json").write_text("{}")
    return lake_env


def test_the_session_is_locked_down_by_duckdb_itself(warehouse, tmp_path, monkeypatch):
    """No statement filter here: SQL goes straight to the session, and DuckDB refuses it."""
    monkeypatch.setenv("HF_TOKEN", CANARY)
    con = db.readonly_session()
    setting = {name: con.execute(f"SELECT current_setting('{name}')").fetchone()[0] for name in (
        "enable_external_access", "lock_configuration", "autoload_known_extensions", "autoinstall_known_extensions",
        "allowed_directories")}
    assert setting["enable_external_access"] is False and setting["lock_configuration"] is True
    assert setting["autoload_known_extensions"] is False and setting["autoinstall_known_extensions"] is False
    # The lake's table folders; DuckDB adds its own spill folder (warehouse scratch space).
    assert sorted(setting["allowed_directories"]) == sorted(
        [f"{lake.table_dir(t)}/" for t in lake.PARTITIONS] + [f"{lake.scratch_dir()}/"])
    assert con.execute("SELECT count(*) FROM problems").fetchone()[0] == 40  # the views and marts still read
    assert con.execute("SELECT count(*) FROM pseudo_labels").fetchone()[0] == 40

    sibling = lake.lake_root() / "problems_x"  # shares the allowed folder's prefix, is not inside it
    sibling.mkdir()
    (sibling / "a.csv").write_text("a\n1\n")
    outside = tmp_path / "copied.parquet"
    attempts = {
        f"COPY (SELECT 1) TO '{outside}'": duckdb.PermissionException,
        "SELECT * FROM read_text('/proc/self/environ')": duckdb.PermissionException,
        "SELECT * FROM read_text('/etc/hostname')": duckdb.PermissionException,
        f"SELECT * FROM read_csv('{sibling / 'a.csv'}')": duckdb.PermissionException,
        "SELECT * FROM read_csv('https://example.invalid/x.csv')": duckdb.PermissionException,
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS other": duckdb.PermissionException,
        "LOAD httpfs": duckdb.Error,
        "INSTALL httpfs": duckdb.Error,
        "CREATE TABLE warehouse.main.injected AS SELECT 1": duckdb.Error,  # the marts are attached read-only
    }
    for name in ("enable_external_access = true", "lock_configuration = false", "allowed_directories = ['/']",
                 "autoload_known_extensions = true", "temp_directory = '/tmp'"):
        attempts[f"SET {name}"] = duckdb.InvalidInputException
        attempts[f"RESET {name.split(' ')[0]}"] = duckdb.InvalidInputException
    for sql, error in attempts.items():
        with pytest.raises(error) as caught:
            con.execute(sql).fetchall()
        assert CANARY not in str(caught.value), sql
    assert not outside.exists() and not (tmp_path / "other.duckdb").exists()
    assert con.execute("SELECT current_setting('enable_external_access')").fetchone()[0] is False


def test_explain_analyze_cannot_write_into_the_lake(warehouse):
    before = fingerprint(warehouse)
    part = lake.table_dir("problems") / "source=amc23" / "part-injected.parquet"
    err = refused(reasonlite("sql", f"EXPLAIN ANALYZE COPY (SELECT * EXCLUDE (source) FROM problems) TO '{part}' "
                                    "(FORMAT parquet)"))
    assert "EXPLAIN ANALYZE" in err
    for sneaky in (f"/* hi */ explain   analyse copy (select 1) to '{part}'", f"EXPLAIN (ANALYZE) COPY (SELECT 1) TO '{part}'",
                   f"EXPLAIN COPY (SELECT 1) TO '{part}'"):
        assert "refused" in refused(reasonlite("sql", sneaky))
    assert fingerprint(warehouse) == before and not part.exists()
    plan = reasonlite("sql", "EXPLAIN SELECT count(*) FROM problems")
    assert plan.returncode == 0 and "physical_plan" in plan.stdout


def test_sql_cannot_read_the_environment_or_download_an_extension(warehouse, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HF_TOKEN": CANARY, "HOME": str(home)}
    for query in ("SELECT * FROM read_text('/proc/self/environ')", "SELECT * FROM read_blob('/proc/self/environ')",
                  "SELECT content FROM read_text('/proc/' || getpid() || '/environ')",
                  "SELECT getenv('HF_TOKEN')", "SELECT * FROM read_csv('https://example.invalid/data.csv')",
                  "SELECT * FROM read_parquet('s3://bucket/x.parquet')"):
        result = reasonlite("sql", query, **env)
        refused(result)
        assert CANARY not in result.stdout + result.stderr, query
    assert not list(home.rglob("*")), "DuckDB wrote into HOME (an extension download?)"


def test_one_statement_at_a_time_and_duckdb_errors_in_one_line(warehouse):
    assert "refused: 2 statements" in refused(reasonlite("sql", "select 1; select 2"))
    assert "refused: 2 statements" in refused(reasonlite("sql", "select 1; drop view problems"))
    assert reasonlite("sql", "select 41 + 1 as answer;", "--format", "csv").stdout == "answer\n42\n"
    assert "nope" in refused(reasonlite("sql", "select * from nope"))
    assert "syntax error" in refused(reasonlite("sql", "selec 1")).lower()
    assert "Conversion Error" in refused(reasonlite("sql", "select 'abc'::int", "--format", "json"))


def test_out_honours_format_or_infers_it_from_the_extension(warehouse, tmp_path):
    query = "select problem_id, [1, 2] as pair from problems order by problem_id limit 3"

    def write(name: str, *extra: str) -> Path:
        out = tmp_path / name
        result = reasonlite("sql", query, "--out", str(out), *extra)
        assert result.returncode == 0, result.stderr
        return out

    table = write("t.txt", "--format", "table").read_text()
    assert "problem_id" in table and "amc23:0" in table and "│" in table  # a table, not Parquet
    assert write("z.txt").read_text() == table
    assert write("z.csv").read_text() == 'problem_id,pair\namc23:0,"[1,2]"\namc23:1,"[1,2]"\namc23:10,"[1,2]"\n'
    assert write("forced.txt", "--format", "csv").read_text().startswith("problem_id,pair\n")
    rows = [json.loads(line) for line in write("z.jsonl").read_text().splitlines()]
    assert rows[0] == {"problem_id": "amc23:0", "pair": [1, 2]} and len(rows) == 3
    assert write("z.json").read_text().splitlines()[0] == '{"problem_id":"amc23:0","pair":[1,2]}'
    assert pq.read_table(write("z.parquet")).column("problem_id").to_pylist() == ["amc23:0", "amc23:1", "amc23:10"]
    assert pq.read_table(write("p.bin", "--format", "parquet")).num_rows == 3
    err = refused(reasonlite("sql", query, "--out", str(tmp_path / "z.xyz")))
    assert "'.xyz'" in err and "--format" in err and not (tmp_path / "z.xyz").exists()
    assert "needs --out" in refused(reasonlite("sql", query, "--format", "parquet"))


def test_out_never_writes_into_the_warehouse_nor_over_a_file(warehouse, tmp_path):
    part = next(lake.table_dir("problems").rglob("part-*.parquet"))
    lake.write_manifest("r1", purpose="teacher", model="m", status="complete")
    link = tmp_path / "innocent.parquet"
    link.symlink_to(part)
    before = fingerprint(warehouse)
    targets = {
        part: "inside the lake",  # a part replaced by the query's rows
        part.with_name("part-new.parquet"): "inside the lake",  # rows added to a partition
        lake.manifest_path("r1").with_suffix(".json"): "inside the lake",
        lake.database_path(): "marts database",
        lake.database_path().with_name(lake.database_path().name + ".wal"): "marts database",
        lake.exports_dir() / "curation_vars.json": "inside the exports folder",
        lake.exports_dir() / "sft_short_cot" / "part-new.parquet": "inside the exports folder",  # a stratum segment
        link: "inside the lake",  # a symlink is followed
        lake.snapshots_dir() / "b1" / "reasonlite.duckdb": "inside the marts snapshots",
    }
    for target, reason in targets.items():
        for extra in ((), ("--force",)):
            err = refused(reasonlite("sql", "select 1 as x", "--out", str(target), "--format", "parquet", *extra))
            assert reason in err, (target, err)
    assert fingerprint(warehouse) == before

    mine = tmp_path / "result.csv"
    mine.write_text("precious\n")
    assert "add --force" in refused(reasonlite("sql", "select 1 as x", "--out", str(mine)))
    assert mine.read_text() == "precious\n"
    assert "is a folder" in refused(reasonlite("sql", "select 1 as x", "--out", str(tmp_path), "--format", "csv",
                                               "--force"))
    assert reasonlite("sql", "select 1 as x", "--out", str(mine), "--force").returncode == 0
    assert mine.read_text() == "x\n1\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    failed = reasonlite("sql", "select 'abc'::int as x", "--out", str(mine), "--force")  # fails mid-query
    refused(failed)
    assert mine.read_text() == "x\n1\n" and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def _peak_rss_mb(*args: str) -> tuple[float, int, bytes]:
    """Run `reasonlite ARGS` under a parent that counts its output lines and reports its peak RSS: the
    larger of the formatting process and its query process (RUSAGE_CHILDREN keeps the largest)."""
    probe = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)\n"
        "lines, last = 0, b''\n"
        "for chunk in iter(lambda: proc.stdout.read(1 << 20), b''):\n"
        "    lines += chunk.count(b'\\n'); last = (last + chunk)[-64:]\n"
        "assert proc.wait() == 0\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, lines, last)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "warehouse.cli", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    rss_kb, lines, last = result.stdout.split(" ", 2)
    return int(rss_kb) / 1024, int(lines), last


@pytest.mark.slow
@pytest.mark.parametrize("fmt, last_line", [("json", '{"range":19999999}'), ("csv", "19999999")])
def test_a_20_million_row_result_streams_in_bounded_memory(lake_env, fmt, last_line):
    peak_mb, lines, last = _peak_rss_mb("sql", "select range from range(20000000)", "--format", fmt)
    print(f"\nsql --format {fmt}, 20M rows: peak RSS {peak_mb:.0f} MB")
    assert lines == 20_000_000 + (fmt == "csv")  # csv has a header line
    assert last_line in last
    assert peak_mb < 600  # fully materialized, the same result took 5.8 GB
