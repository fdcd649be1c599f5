"""Concurrency: two shard workers of one run at the same time; curate while a generation writes."""

from __future__ import annotations

import collections
import os
import signal

import duckdb
import pytest

from generation.runner import shard_of
from tests.generation.conftest import write_problems
from tests.reliability.conftest import (
    cli_env, generation_config, generation_keys, popen_cli, visible_parts, wait_until,
)
from warehouse import lake

pytestmark = pytest.mark.slow


def test_two_shard_workers_at_once_split_the_run_exactly(lake_env, iso_env, zygote, tiny_llama_dir, tmp_path):
    n_problems, n = 24, 3
    ids = write_problems("rel", [f"Add {i} and {2 * i}." for i in range(n_problems)])
    config = generation_config(tmp_path / "run.yaml", tiny_llama_dir, "two", samples=n)
    pids = {i: zygote.run(["generate", "--config", str(config), "--shard", f"{i}/2", "--no-progress"],
                          tmp_path / f"shard{i}.log", iso_env) for i in range(2)}
    statuses = {i: zygote.wait(pid) for i, pid in pids.items()}
    assert statuses == {0: 0, 1: 0}, [(tmp_path / f"shard{i}.log").read_text()[-1500:] for i in range(2)]
    keys = generation_keys("two")
    assert len(keys) == len(set(keys)) == n_problems * n
    assert set(keys) == {(p, k) for p in ids for k in range(n)}
    by_shard = collections.Counter(p.parent.name for p in visible_parts("generations", "run_id=two/*"))
    assert set(by_shard) == {"shard=0", "shard=1"}
    con = duckdb.connect()
    rows = con.execute(f"SELECT problem_id, shard FROM read_parquet('{lake.parquet_glob('generations')}', "
                       "hive_partitioning = true)").fetchall()
    assert all(int(shard) == shard_of(p, 2) for p, shard in rows)  # each worker wrote only its own share
    assert lake.read_manifest("two")["status"] == "complete"  # whichever finished last saw every row
    print(f"\ntwo shard workers at once: {len(keys)} rows, parts per shard {dict(by_shard)}")


def test_curate_while_a_generation_writes_reads_only_whole_parts(lake_env, iso_env, zygote, tiny_llama_dir,
                                                                 tmp_path):
    write_problems("rel", [f"Multiply {i} by 3." for i in range(150)])
    config = generation_config(tmp_path / "run.yaml", tiny_llama_dir, "busy", samples=8, max_tokens=8)
    pid = zygote.run(["generate", "--config", str(config), "--no-progress"], tmp_path / "gen.log", iso_env)
    try:
        assert wait_until(lambda: len(visible_parts("generations")) >= 3, timeout=120)
        curate = popen_cli("curate", "--quiet", "--no-test", env=cli_env(**iso_env), log=tmp_path / "curate.log")
        parts_at_start = len(visible_parts("generations"))
        code = curate.wait(timeout=300)
        parts_at_end = len(visible_parts("generations"))
        still_writing = zygote_alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        zygote.wait(pid)
    output = (tmp_path / "curate.log").read_text()
    assert code == 0, output[-3000:]
    assert "quarantined" not in output  # a part being written is never mistaken for a corrupt one
    assert still_writing and parts_at_end > parts_at_start, "the generation did not overlap the build"
    con = duckdb.connect(str(lake.database_path()), read_only=True)
    seen = con.execute("SELECT sum(n_rows) FROM main.curation_funnel WHERE run_id = 'busy' AND stage = 'lake_rows'"
                       ).fetchone()[0]
    # Each part holds exactly flush_rows = 2 rows: a build that saw half a part would see an odd count.
    assert seen and seen % 2 == 0 and parts_at_start * 2 <= seen <= parts_at_end * 2, (seen, parts_at_start)
    print(f"\ncurate during generation: parts {parts_at_start} -> {parts_at_end} while it ran; "
          f"it curated {seen} rows (whole parts only)")


def zygote_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a finished child not yet reaped is a zombie
        return handle.read().split(")")[-1].split()[0] != "Z"


