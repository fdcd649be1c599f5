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
    assert rows == [("omr:0", "2"), ("omr:1", "4")]  # one row per solution: the repeat is merged


def test_ingest_reports_duplicate_prompts(lake_env, tmp_path, capsys):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem": "same", "answer": "1"}] * 3)
    run_cli("ingest", str(path), "--source", "dup")
    assert "2 rows repeat an earlier prompt" in capsys.readouterr().out
    assert count("select count(*) from problems") == 3  # without a teacher-pool preset every row is kept


# OpenMathReasoning's `cot` split, as published: one row per solution, these columns.
OMR_COLUMNS = ("expected_answer", "problem_type", "problem_source", "generation_model", "pass_rate_72b_tir",
               "problem", "generated_solution", "inference_mode", "used_in_kaggle")


def omr_row(problem: str, answer: str, solution: str, **extra) -> dict:
    row = {"expected_answer": answer, "problem_type": "has_answer_extracted", "problem_source": "aops_c4_high_school_math",
           "generation_model": "DeepSeek-R1", "pass_rate_72b_tir": "0.75", "problem": problem,
           "generated_solution": solution, "inference_mode": "cot", "used_in_kaggle": False, **extra}
    assert tuple(row) == OMR_COLUMNS
    return row


def test_ingest_keeps_one_problem_per_distinct_text_of_a_multi_solution_set(lake_env, tmp_path, capsys):
    rows = [
        omr_row("Find $x$ if $2x = 4$.", "2", "<think>halve</think> \\boxed{2}"),                    # row 0
        omr_row("Compute $3 + 4$.", "7", "7", pass_rate_72b_tir="n/a", problem_type="converted_proof"),  # row 1
        omr_row("Find  $x$ if\n$2x = 4$.  ", "2", "second solution"),    # row 2: whitespace differs: row 0
        omr_row("Find $x$ if $\uff12x = 4$.", "2", "third solution", generation_model="QwQ-32B"),  # NFKC: row 0
        omr_row("Compute $3 + 4$.", "8", "a solution whose dataset answer disagrees"),  # row 4: row 1, answer 8
        omr_row("compute $3 + 4$.", "7", "lower case is another text"),                # row 5: its own problem
    ]
    path = write_jsonl(tmp_path / "omr-cot.jsonl", rows)
    # No --source: the preset's name, the one the teacher configs select.
    assert run_cli("ingest", str(path), "--preset", "openmathreasoning") == 0
    out = capsys.readouterr().out
    assert "openmathreasoning: read 6 rows, wrote 3" in out
    assert "merged 3 rows that repeat a problem text (after NFKC and whitespace) into 3 problems" in out
    assert "openmathreasoning:2 = openmathreasoning:0" in out
    assert "1 merged problems had rows with another expected_answer; kept the first row's (e.g. openmathreasoning:1)" in out
    got = db.connect().execute("select problem_id, prompt, expected_answer, difficulty, metadata from problems "
                               "order by problem_id").fetchall()
    assert [(g[0], g[1], g[2], g[3]) for g in got] == [
        ("openmathreasoning:0", "Find $x$ if $2x = 4$.", "2", "0.75"),
        ("openmathreasoning:1", "Compute $3 + 4$.", "7", "n/a"),
        ("openmathreasoning:5", "compute $3 + 4$.", "7", "0.75"),
    ]
    metadata = {g[0]: json.loads(g[4]) for g in got}
    # Per-problem columns stay, per-solution columns go; how many rows each problem stands for.
    assert metadata["openmathreasoning:0"] == {"problem_type": "has_answer_extracted",
                                               "problem_source": "aops_c4_high_school_math", "source_rows": 3}
    assert metadata["openmathreasoning:1"]["source_rows"] == 2
    assert metadata["openmathreasoning:1"]["problem_type"] == "converted_proof"
    assert "source_rows" not in metadata["openmathreasoning:5"]

    from warehouse.ingest import ingest_problems

    again = ingest_problems(str(path), preset="openmathreasoning")  # idempotent, and says the same
    assert (again.rows_read, again.rows_written, again.already_present) == (6, 0, 3)
    assert (again.problems, again.rows_merged, again.answer_conflicts) == (3, 3, 1)
    assert count("select count(*) from problems") == 3

    # The same file without merging: every row is a problem (the old behaviour, on request).
    assert run_cli("ingest", str(path), "--source", "omr-all", "--preset", "openmathreasoning",
                   "--no-merge-duplicates") == 0
    assert count("select count(*) from problems where source = 'omr-all'") == 6
    assert "3 rows repeat an earlier prompt" in capsys.readouterr().out


def test_problem_text_key_normalization():
    from warehouse.ingest import problem_text_key

    assert problem_text_key(" Find\u00a0x\t if\r\n 2x=4 ") == "Find x if 2x=4"
    assert problem_text_key("\uff21\uff11 \u2460") == "A1 1"  # full-width and circled forms fold (NFKC)
    assert problem_text_key("x^2") != problem_text_key("X^2")  # case is part of the math
    assert problem_text_key("\\frac{1}{2}") != problem_text_key("1/2")


def test_preset_without_source_or_with_a_bad_one(lake_env, tmp_path, capsys):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?", "answer": "2"}])
    assert run_cli("ingest", str(path)) == 2
    assert "--source is required" in one_line(capsys, "ingest")
    assert run_cli("ingest", str(path), "--preset", "benchmark") == 2  # a benchmark has no default name
    assert "--source is required with --preset benchmark" in one_line(capsys, "ingest")
    assert run_cli("ingest", str(path), "--preset", "polaris") == 0
    assert count("select count(*) from problems where source = 'polaris'") == 1


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


def test_a_hub_dataset_is_read_once(lake_env, tmp_path, monkeypatch):
    """Validation and writing come from one pass over the input: a streamed Hub dataset (OMR's cot
    split is ~49 GB) must not be downloaded twice. The real `datasets` stream of a local folder, counted."""
    from warehouse import ingest, sources

    folder = tmp_path / "omr-like"
    (folder / "data").mkdir(parents=True)
    write_jsonl(folder / "data" / "train.jsonl", [omr_row(f"Compute {i % 3} + 1.", str(i % 3 + 1), "s") for i in range(6)])
    passes = []

    def counted(*args, **kwargs):
        passes.append(args[0])
        yield from sources.iter_rows(*args, **kwargs)

    monkeypatch.setattr(ingest, "iter_rows", counted)
    assert run_cli("ingest", str(folder), "--preset", "openmathreasoning") == 0
    assert passes == [str(folder)]
    got = db.connect().execute("select problem_id, metadata from problems order by 1").fetchall()
    assert [(pid, json.loads(meta)["source_rows"]) for pid, meta in got] == [
        ("openmathreasoning:0", 2), ("openmathreasoning:1", 2), ("openmathreasoning:2", 2)]


def test_ingest_unknown_hub_id_fails_cleanly(lake_env, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run_cli("ingest", "no-such-org/no-such-dataset", "--source", "x") == 2
    err = capsys.readouterr().err
    assert "cannot load dataset" in err and "Traceback" not in err


# ------------------------------------------------------------------ content identity, validation first


def one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reasonlite {command}: error: ") and len(err.splitlines()) == 1, err
    return err


def test_a_different_or_edited_file_under_the_same_source_is_refused(lake_env, benchmarks_dir, tmp_path, capsys):
    aime = benchmarks_dir / "aime24.jsonl"
    assert run_cli("ingest", str(aime), "--source", "bench") == 0
    # Before: AMC's first 30 rows were "already in the lake" and only its last 10 were written.
    assert run_cli("ingest", str(benchmarks_dir / "amc23.jsonl"), "--source", "bench") == 2
    err = one_line(capsys, "ingest")
    assert "30 of 30 rows differ" in err and "row 0: prompt differs" in err and "another --source" in err
    assert count("select count(*) from problems") == 30
    assert count("select count(*) from problems where prompt_sha256 = sha256(prompt)") == 30  # stored hash

    rows = [json.loads(line) for line in aime.read_text().splitlines()]
    rows[3]["answer"] = "999"
    rows.append({"problem": "A new problem at the end.", "answer": "1"})
    edited = write_jsonl(tmp_path / "aime24-edited.jsonl", rows)
    assert run_cli("ingest", str(edited), "--source", "bench") == 2
    err = one_line(capsys, "ingest")
    assert "1 of 30 rows differ" in err and "row 3: expected_answer" in err and "'999' in the file" in err
    assert count("select count(*) from problems") == 30  # the new last row waits until the file agrees

    rows[3]["answer"] = json.loads(aime.read_text().splitlines()[3])["answer"]
    write_jsonl(edited, rows)  # appending rows to the same file is fine
    assert run_cli("ingest", str(edited), "--source", "bench") == 0
    assert "wrote 1, already in the lake 30" in capsys.readouterr().out
    assert run_cli("ingest", str(aime), "--source", "bench") == 0
    assert "holds 1 more problems of this source than the file has rows" in capsys.readouterr().out


def test_import_refuses_a_problem_id_whose_text_differs_from_the_lake(lake_env, benchmarks_dir, tmp_path, capsys):
    assert run_cli("ingest", str(benchmarks_dir / "aime24.jsonl"), "--source", "aime24") == 0
    path = write_jsonl(tmp_path / "g.jsonl", [{"problem_id": "aime24:0", "problem": "Another text.",
                                               "completion": "x"}])
    assert run_cli("import-generations", str(path), "--run-id", "r", "--model", "m") == 2
    assert "problem_id 'aime24:0' is in the lake with another problem text" in one_line(capsys, "import-generations")
    assert count("select count(*) from generations") == 0 and count("select count(*) from runs") == 0


def test_bad_values_are_found_before_anything_is_written(lake_env, tmp_path, capsys):
    n = 25_002  # more than one part of 20,000 rows: before, 20,000 rows were written before the error
    with open(tmp_path / "problems.jsonl", "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"problem": "\ud800" if i == 25_001 else f"p{i}", "answer": "1"}) + "\n")
    assert run_cli("ingest", str(tmp_path / "problems.jsonl"), "--source", "s") == 2
    assert "row 25001: column 'problem' is not valid Unicode text" in one_line(capsys, "ingest")
    with open(tmp_path / "extra.jsonl", "w") as handle:  # the same in a column that goes to metadata
        handle.write(json.dumps({"problem": "p", "note": "a\udfffb"}) + "\n")
    assert run_cli("ingest", str(tmp_path / "extra.jsonl"), "--source", "s") == 2
    assert "row 0: column 'metadata' is not valid Unicode text" in one_line(capsys, "ingest")

    with open(tmp_path / "gens.jsonl", "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"problem_id": f"s:{i}", "problem": f"p{i}", "completion": "x",
                                     "completion_tokens": 2**31 if i == 25_001 else 7}) + "\n")
    assert run_cli("import-generations", str(tmp_path / "gens.jsonl"), "--run-id", "r", "--model", "m") == 2
    err = one_line(capsys, "import-generations")
    assert "row 25001: column 'completion_tokens': 2147483648 does not fit int32" in err
    write_jsonl(tmp_path / "idx.jsonl", [{"problem_id": "s:0", "problem": "p", "sample_idx": 2**63}])
    assert run_cli("import-generations", str(tmp_path / "idx.jsonl"), "--run-id", "r", "--model", "m") == 2
    assert f"row 0: column 'sample_idx': {2**63} does not fit int32" in one_line(capsys, "import-generations")
    assert not lake.lake_root().exists() or not any(lake.lake_root().rglob("*.parquet"))
    assert count("select count(*) from runs") == 0  # no `running` manifest for a run that wrote nothing


def test_import_refuses_unknown_columns_and_another_model_for_the_same_run(lake_env, tmp_path, capsys):
    path = write_jsonl(tmp_path / "g.jsonl", [{"problem_id": "t:0", "problem": "1+1?", "completions": "2"}])
    assert run_cli("import-generations", str(path), "--run-id", "r", "--model", "m") == 2
    err = one_line(capsys, "import-generations")
    assert "row 0: unknown column 'completions' (did you mean 'completion'?)" in err and "sample_idx" in err
    assert count("select count(*) from generations") == 0

    write_jsonl(path, [{"problem_id": "t:0", "problem": "1+1?", "completion": "2"}])
    assert run_cli("import-generations", str(path), "--run-id", "r", "--model", "m", "--reasoning-level", "high") == 0
    manifest = lake.read_manifest("r")
    write_jsonl(path, [{"problem_id": "t:0", "sample_idx": 1, "problem": "1+1?", "completion": "2"}])
    assert run_cli("import-generations", str(path), "--run-id", "r", "--model", "other") == 2
    assert "run r already has samples with model 'm', this import says 'other'" in one_line(capsys,
                                                                                             "import-generations")
    assert lake.read_manifest("r") == manifest  # not rewritten
    assert run_cli("import-generations", str(path), "--run-id", "r", "--model", "m") == 0  # the run's level stays
    assert lake.read_manifest("r")["reasoning_level"] == "high"
    assert db.connect().execute("select sample_idx, reasoning_level from generations order by 1").fetchall() == [
        (0, "high"), (1, "high")]
