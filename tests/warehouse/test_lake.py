"""The lake writer: atomic parts, schemas, partition layout, DuckDB views."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse import db, lake
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
