"""The lake writer: atomic parts, schemas, partition layout, DuckDB views."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse import db, lake
from warehouse.cli import main
from warehouse.errors import UserError


def test_paths_follow_env(lake_env):
    assert lake.lake_root() == (lake_env / "lake").resolve()
    assert lake.database_path() == (lake_env / "reasonlite.duckdb").resolve()
    assert lake.parquet_glob("generations").endswith("generations/*/*/part-*.parquet")


def test_write_part_is_hive_partitioned_and_zstd(lake_env):
    data = pa.table({"run_id": ["r1", "r1"], "problem_id": ["a:0", "a:1"], "sample_idx": [0, 0]})
    path = lake.write_part("generations", data, {"run_id": "r1", "shard": 3})
    assert path.parent == lake.table_dir("generations") / "run_id=r1" / "shard=3"
    assert path.name.startswith("part-") and path.suffix == ".parquet"
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(path).equals(lake.GENERATIONS_SCHEMA)
    rows = db.connect().execute("SELECT run_id, shard, count(*) FROM generations GROUP BY ALL").fetchall()
    assert rows == [("r1", 3, 2)]


def test_parts_sort_in_write_order_so_scans_follow_the_generation_order(lake_env):
    """A glob (every lake scan) lists a partition's parts in the order they were written: the SFT
    export then keeps blocks of problems together (dbt_project/README.md, "Incremental exports")."""
    written = [lake.write_part("generations", pa.table({"problem_id": [f"a:{i}"], "sample_idx": [0]}),
                               {"run_id": "r1", "shard": 0}) for i in range(20)]
    assert list(lake.iter_parts("generations")) == written
    order = db.connect().execute(
        "SELECT problem_id FROM read_parquet(?, filename = true, file_row_number = true) "
        "ORDER BY filename, file_row_number", [lake.parquet_glob("generations")]).fetchall()
    assert [p for (p,) in order] == [f"a:{i}" for i in range(20)]


def test_failed_write_leaves_no_part(lake_env, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(lake.pq, "write_table", broken)
    with pytest.raises(OSError):
        lake.write_part("problems", pa.table({"problem_id": ["s:0"], "source": ["s"]}), {"source": "s"})
    leftovers = list(lake.table_dir("problems").rglob("*"))
    assert not [p for p in leftovers if p.is_file()]


def test_unknown_column_and_bad_partition_rejected(lake_env):
    with pytest.raises(ValueError, match="unknown columns"):
        lake.write_part("problems", pa.table({"problem_id": ["s:0"], "oops": [1]}), {"source": "s"})
    with pytest.raises(UserError, match="'../escape' is not a valid name"):
        lake.partition_dir("problems", {"source": "../escape"})


def test_part_writer_flushes_in_bounded_chunks(lake_env):
    with lake.PartWriter("problems", flush_rows=10) as writer:
        for i in range(25):
            writer.add({"problem_id": f"s:{i}", "source": "s", "prompt": f"p{i}"})
    assert writer.rows_written == 25 and len(writer.parts) == 3
    assert db.connect().execute("SELECT count(DISTINCT problem_id) FROM problems").fetchone()[0] == 25


def test_temp_files_are_invisible_to_readers(lake_env):
    lake.write_part("problems", pa.table({"problem_id": ["s:0"], "source": ["s"]}), {"source": "s"})
    stray = lake.partition_dir("problems", {"source": "s"}) / ".tmp-part-half.parquet"
    stray.write_bytes(b"PAR1 half written")
    assert db.connect().execute("SELECT count(*) FROM problems").fetchone()[0] == 1


def test_empty_lake_has_typed_views(lake_env):
    con = db.connect()
    for table in ("problems", "generations", "runs", "training_runs"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    columns = [r[0] for r in con.execute("DESCRIBE generations").fetchall()]
    assert columns[: len(lake.GENERATIONS_SCHEMA)] == lake.GENERATIONS_SCHEMA.names


def test_run_records_round_trip(lake_env):
    lake.write_manifest("r1", purpose="teacher", model="m", config={"n": 4}, status="running")
    lake.write_manifest("r1", status="complete")
    record = lake.read_manifest("r1")
    assert record["status"] == "complete" and record["purpose"] == "teacher"
    row = db.connect().execute("SELECT purpose, status, config FROM runs").fetchall()
    assert row == [("teacher", "complete", '{"n": 4}')]
    with pytest.raises(ValueError, match="unknown field"):
        lake.write_manifest("r1", colour="red")
    assert not [p for p in lake.table_dir("runs").rglob(".tmp-*")]
    assert os.listdir(lake.table_dir("runs") / "run_id=r1") == ["manifest.json"]


def test_corrupt_part_is_quarantined_and_named(lake_env):
    good = lake.write_part("problems", pa.table({"problem_id": ["s:0"], "source": ["s"]}), {"source": "s"})
    bad = good.with_name("part-corrupt.parquet")
    bad.write_bytes(b"PAR1" + b"\x00" * 64)  # a truncated copy: no valid footer
    moved = lake.quarantine_corrupt_parts("problems")
    assert len(moved) == 1 and moved[0][0].name == "part-corrupt.parquet"
    assert moved[0][0].is_relative_to(lake.quarantine_dir()) and not bad.exists()
    assert good.exists()
    assert db.connect().execute("SELECT count(*) FROM problems").fetchone()[0] == 1


# ------------------------------------------------------------------ names, roots, parts from outside


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reasonlite {command}: error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("name", ["t%20y", "t y", "__HIVE_DEFAULT_PARTITION__", "a?b", "a\nb", "a*", "..", "",
                                  "x" * 129, "é"])
def test_partition_names_outside_the_allow_list_are_refused_before_writing(lake_env, tmp_path, capsys, name):
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"problem": "1+1?", "answer": "2"}\n')
    assert main(["ingest", str(problems), "--source", name]) == 2
    assert f"--source: {name!r} is not a valid name" in one_line_error(capsys, "ingest")
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"problem_id": f"{name}:0", "problem": "1+1?", "completion": "2"}) + "\n")
    if name:  # a source derived from a problem-id prefix (an empty prefix means --problem-source)
        assert main(["import-generations", str(samples), "--run-id", "r", "--model", "m"]) == 2
        err = one_line_error(capsys, "import-generations")
        assert f"row 0: source of problem_id {name + ':0'!r}: {name!r} is not a valid name" in err
    assert main(["import-generations", str(samples), "--run-id", name, "--model", "m"]) == 2
    assert f"--run-id: {name!r} is not a valid name" in one_line_error(capsys, "import-generations")
    assert not lake.lake_root().exists() or not any(lake.lake_root().rglob("*.parquet"))
    assert not any(lake.table_dir("runs").rglob("*")) if lake.table_dir("runs").exists() else True


@pytest.mark.parametrize("folder", ["a[1]", "b*", "c?", "x=y"])
def test_lake_root_with_glob_or_hive_characters_is_refused(tmp_path, monkeypatch, capsys, folder):
    monkeypatch.setenv("REASONLITE_LAKE", str(tmp_path / folder / "lake"))
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"problem": "1+1?", "answer": "2"}\n')
    assert main(["ingest", str(problems), "--source", "s"]) == 2
    assert "(REASONLITE_LAKE) contains" in one_line_error(capsys, "ingest")
    assert not (tmp_path / folder).exists()


def _drifted_generations(path, old: str, new: str | None):
    """A whole generations part written by another tool, with one column dropped or renamed."""
    table = lake.conform("generations", pa.table({"run_id": ["r"], "problem_id": ["s:0"], "sample_idx": [0],
                                                  "completion": ["\\boxed{2}"]}))
    table = table.drop_columns([old]) if new is None else table.rename_columns(
        [new if name == old else name for name in table.column_names])
    pq.write_table(table, path)
    return path


def test_drifted_part_is_refused_by_name_and_quarantined_not_merged(lake_env, capsys):
    good = lake.write_part("generations", pa.table({"run_id": ["r"], "problem_id": ["s:1"], "sample_idx": [0],
                                                    "completion": ["ok"]}), {"run_id": "r", "shard": 0})
    folder = good.parent
    no_idx = _drifted_generations(folder / "part-no-sample-idx.parquet", "sample_idx", None)
    renamed = _drifted_generations(folder / "part-renamed.parquet", "completion", "completions")
    assert main(["status"]) == 2
    err = one_line_error(capsys, "status")
    assert "part-no-sample-idx.parquet" in err or "part-renamed.parquet" in err
    assert "schema differs" in err and "reasonlite curate" in err
    reasons = {path.name: reason for path, reason in lake.quarantine_corrupt_parts("generations")}
    assert "missing column(s) sample_idx" in reasons["part-no-sample-idx.parquet"]
    assert reasons["part-renamed.parquet"].endswith("missing column(s) completion; unknown column(s) completions")
    assert not no_idx.exists() and not renamed.exists() and good.exists()
    assert db.connect().execute("SELECT count(*), count(completion) FROM generations").fetchone() == (1, 1)


def test_corrupt_part_wrong_folder_and_bad_manifests_are_one_line_errors(lake_env, tmp_path, capsys,
                                                                          tiny_llama_dir):
    lake.write_part("problems", pa.table({"problem_id": ["s:0"], "source": ["s"], "prompt": ["1+1?"]}),
                    {"source": "s"})
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"problem_id": "s:0", "completion": "2"}\n')
    config = tmp_path / "run.yaml"
    config.write_text(f"run_id: g\nmodel: {tiny_llama_dir}\nbackend: transformers\nsamples: 1\n")
    commands = {
        "status": ["status"],
        "import-generations": ["import-generations", str(samples), "--run-id", "r", "--model", "m"],
        "generate": ["generate", "--config", str(config), "--no-progress"],
    }
    corrupt = lake.partition_dir("problems", {"source": "s"}) / "part-copied-badly.parquet"
    corrupt.write_bytes(b"PAR1" + b"\0" * 64)
    for name, argv in commands.items():
        assert main(argv) == 2, name
        assert "part-copied-badly.parquet: unreadable Parquet footer" in one_line_error(capsys, name)
    corrupt.unlink()

    wrong_key = lake.table_dir("problems") / "src=s" / "part-x.parquet"
    wrong_key.parent.mkdir()
    pq.write_table(lake.conform("problems", pa.table({"problem_id": ["s:1"], "source": ["s"]})), wrong_key)
    assert main(["status"]) == 2
    assert "folder 'src=s' should be source=<value>" in one_line_error(capsys, "status")
    wrong_key.unlink()

    manifest = lake.manifest_path("r1")
    manifest.parent.mkdir(parents=True)
    for text, expected in (("{not json", "not valid JSON"), ("[1, 2]", "expected one JSON object, got list")):
        manifest.write_text(text)
        for name, argv in commands.items():
            assert main(argv) == 2, name
            err = one_line_error(capsys, name)
            assert f"{manifest}: {expected}" in err, err
    assert not any(lake.table_dir("generations").rglob("*.parquet")) if lake.table_dir("generations").exists() else True


def test_a_checked_part_is_not_read_again_but_a_replaced_one_is(lake_env, monkeypatch):
    part = lake.write_part("problems", pa.table({"problem_id": ["s:0"], "source": ["s"], "prompt": ["p"]}),
                           {"source": "s"})
    lake.check_table("problems")
    reads = []
    with monkeypatch.context() as patch:
        patch.setattr(lake, "part_problem", lambda *args: reads.append(args) or None)
        lake.check_table("problems")
    assert reads == []  # listed in the scratch folder's ledger: only a stat
    part.write_bytes(b"PAR1 not a footer")  # another size and mtime: checked again
    with pytest.raises(UserError, match="part-.*unreadable Parquet footer"):
        lake.check_table("problems")
