"""`reasonlite ingest`, `import-generations`, `sql`, `status` as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from warehouse import db, lake
from warehouse.cli import main


def run_cli(*args: str) -> int:
    return main(list(args))


def count(sql: str) -> int:
    return db.connect().execute(sql).fetchone()[0]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ingest_benchmark_is_idempotent(lake_env, benchmarks_dir, capsys):
    assert run_cli("ingest", str(benchmarks_dir / "aime24.jsonl"), "--source", "aime24") == 0
    assert run_cli("sql", "select count(*) as n from problems") == 0
    assert "30" in capsys.readouterr().out
    assert run_cli("ingest", str(benchmarks_dir / "aime24.jsonl"), "--source", "aime24") == 0
    assert count("select count(*) from problems") == 30
    assert count("select count(distinct problem_id) from problems") == 30
    first = db.connect().execute("select prompt, expected_answer, metadata from problems "
                                 "where problem_id = 'aime24:0'").fetchone()
    source_row = json.loads((benchmarks_dir / "aime24.jsonl").read_text().splitlines()[0])
    assert first[0] == source_row["problem"] and first[1] == str(source_row["answer"])
    assert json.loads(first[2])["id"] == source_row["id"]


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_ingest_other_formats_with_presets(lake_env, tmp_path, suffix):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pa.table({"problem": ["1+1?", "2+2?", "1+1?"], "expected_answer": [2, 4, 2]})
    path = tmp_path / f"omr.{suffix}"
    if suffix == "csv":
        pcsv.write_csv(table, path)
    elif suffix == "parquet":
        pq.write_table(table, path)
    else:
        path.write_text(json.dumps(table.to_pylist()))
    assert run_cli("ingest", str(path), "--source", "omr", "--preset", "openmathreasoning") == 0
    rows = db.connect().execute("select problem_id, expected_answer from problems order by 1").fetchall()
    assert rows == [("omr:0", "2"), ("omr:1", "4"), ("omr:2", "2")]


def test_ingest_reports_duplicate_prompts(lake_env, tmp_path, capsys):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem": "same", "answer": "1"}] * 3)
    run_cli("ingest", str(path), "--source", "dup")
    assert "2 rows repeat an earlier prompt" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "file is empty"),
        (b'{"problem": "a", "answer": 1}\n{"problem": "b"\n', ":2: invalid JSON"),
        (b'{"problem": "a"}\n\xff\xfe\n', ":2: invalid UTF-8"),
        (b'{"problem": "a"}\n{"problem": {"x": 1}}\n', "row 1: column 'problem' must be text"),
        (b'{"problem": "a"}\n{"problem": ""}\n', "row 1: column 'problem' is empty"),
        (b'{"question_text": "a"}\n', "cannot find the problem column"),
        (b'[1, 2]\n', ":1: expected a JSON object"),
    ],
)
def test_ingest_bad_input_writes_nothing(lake_env, tmp_path, capsys, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    assert run_cli("ingest", str(path), "--source", "bad") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert count("select count(*) from problems") == 0


def test_ingest_missing_file_and_misspelled_column(lake_env, benchmarks_dir, capsys):
    assert run_cli("ingest", "no/such.jsonl", "--source", "x") == 2
    assert "no/such.jsonl: no such file" in capsys.readouterr().err
    assert run_cli("ingest", str(benchmarks_dir / "aime24.jsonl"), "--source", "x", "--answer-col", "anwser") == 2
    assert "no column 'anwser'" in capsys.readouterr().err


def test_import_generations_splits_channels_and_is_idempotent(lake_env, tmp_path):
    rows = [
        {"problem_id": "toy:0", "problem": "What is 1/2 + 0?", "expected_answer": "1/2",
         "completion": "<think>half</think>The answer is \\boxed{\\frac{1}{2}}", "finish_reason": "stop",
         "completion_tokens": 12},
        {"problem_id": "toy:0", "problem": "What is 1/2 + 0?", "expected_answer": "1/2",
         "completion": "<|channel|>analysis<|message|>think hard<|end|><|start|>assistant<|channel|>final"
                       "<|message|>\\boxed{0.5}<|return|>", "finish_reason": "stop"},
        {"problem_id": "toy:1", "problem": "2+2?", "expected_answer": "4", "completion": "4",
         "sample_idx": 7, "finish_reason": "length"},
    ]
    path = write_jsonl(tmp_path / "gens.jsonl", rows)
    args = ("import-generations", str(path), "--run-id", "imp1", "--model", "teacher-x", "--reasoning-level", "medium")
    assert run_cli(*args) == 0
    con = db.connect()
    got = con.execute("select problem_id, sample_idx, reasoning, final, reasoning_level from generations "
                      "order by problem_id, sample_idx").fetchall()
    assert got == [
        ("toy:0", 0, "half", "The answer is \\boxed{\\frac{1}{2}}", "medium"),
        ("toy:0", 1, "think hard", "\\boxed{0.5}", "medium"),
        ("toy:1", 7, None, None, "medium"),  # plain text cut off by length: no final answer
    ]
    assert con.execute("select count(*) from problems").fetchone()[0] == 2
    assert con.execute("select purpose, status, model from runs").fetchall() == [("teacher", "complete", "teacher-x")]
    assert run_cli(*args) == 0
    assert count("select count(*) from generations") == 3
    assert count("select count(*) from problems") == 2


def test_import_generations_unknown_problem_is_refused(lake_env, tmp_path, capsys):
    path = write_jsonl(tmp_path / "g.jsonl", [{"problem_id": "nope:3", "completion": "x"}])
    assert run_cli("import-generations", str(path), "--run-id", "r", "--model", "m") == 2
    assert "not in the lake" in capsys.readouterr().err
    assert count("select count(*) from generations") == 0 and count("select count(*) from runs") == 0


def test_sql_refuses_writes_and_exports_formats(lake_env, benchmarks_dir, tmp_path, capsys):
    run_cli("ingest", str(benchmarks_dir / "amc23.jsonl"), "--source", "amc23")
    for statement in ["copy problems to '/tmp/x.csv'", "create table t as select 1", "drop view problems",
                      "attach 'x.db' as x", "install httpfs", "select 1; delete from problems", "set threads=1"]:
        assert run_cli("sql", statement) == 2, statement
        assert "refused" in capsys.readouterr().err
    out = tmp_path / "p.parquet"
    assert run_cli("sql", "select problem_id from problems", "--format", "parquet", "--out", str(out)) == 0
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 40
    capsys.readouterr()
    assert run_cli("sql", "select problem_id from problems order by 1 limit 2", "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == ["problem_id", "amc23:0", "amc23:1"]
    assert run_cli("status") == 0
    assert "problems" in capsys.readouterr().out


@pytest.mark.slow
def test_kill_during_import_then_resume_is_exactly_once(lake_env, tmp_path):
    n = 120_000
    with open(tmp_path / "big.jsonl", "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"problem_id": f"big:{i % 3000}", "problem": f"p{i % 3000}",
                                     "completion": f"step {i} \\boxed{{{i % 7}}}"}) + "\n")
    cmd = [sys.executable, "-m", "warehouse.cli", "import-generations", str(tmp_path / "big.jsonl"),
           "--run-id", "big", "--model", "m"]
    proc = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list(lake.iter_parts("generations")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    parts = list(lake.iter_parts("generations"))
    assert parts, "the import wrote no part before the kill"
    written = count("select count(*) from generations")  # every visible part reads whole
    assert 0 < written < n
    assert subprocess.run(cmd, env=os.environ.copy(), capture_output=True).returncode == 0
    assert count("select count(*) from generations") == n
    assert count("select count(*) from (select distinct problem_id, sample_idx from generations)") == n


def test_ingest_through_datasets_load_dataset(lake_env, tmp_path, benchmarks_dir):
    """A dataset folder goes through the same `datasets.load_dataset` path as a hub id."""
    folder = tmp_path / "polaris-like"
    (folder / "data").mkdir(parents=True)
    rows = [{"problem": f"Compute {i}+{i}.", "answer": str(2 * i), "difficulty": "1/8"} for i in range(5)]
    write_jsonl(folder / "data" / "train.jsonl", rows)
    assert run_cli("ingest", str(folder), "--source", "polaris", "--preset", "polaris") == 0
    got = db.connect().execute("select problem_id, expected_answer, difficulty from problems order by 1").fetchall()
    assert got[0] == ("polaris:0", "0", "1/8") and len(got) == 5


def test_ingest_unknown_hub_id_fails_cleanly(lake_env, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run_cli("ingest", "no-such-org/no-such-dataset", "--source", "x") == 2
    err = capsys.readouterr().err
    assert "cannot load dataset" in err and "Traceback" not in err
