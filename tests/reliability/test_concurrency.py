"""Concurrency: two shard workers of one run at the same time; curate while a generation writes;
two writers of one partition at once (ingest, import-generations, the same generate shard)."""

from __future__ import annotations

import collections
import json
import os
import signal

import duckdb
import pyarrow.parquet as pq
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




# ------------------------------------------------------------------ one writer per partition


def _at_once(args_a: list[str], args_b: list[str], env: dict, tmp_path) -> list[str]:
    """Start two real `reasonlite` processes together; return their outputs once both exit 0."""
    procs = [popen_cli(*args, env=cli_env(**env), log=tmp_path / f"writer{i}.log")
             for i, args in enumerate((args_a, args_b))]
    codes = [proc.wait(timeout=300) for proc in procs]
    outputs = [(tmp_path / f"writer{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], outputs
    return outputs


def test_two_ingests_of_one_file_at_once_write_each_row_once(lake_env, iso_env, tmp_path):
    n = 30_000
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"problem": f"Compute {i} + {i}.", "answer": str(2 * i)}) + "\n"
                            for i in range(n)))
    args = ["ingest", str(path), "--source", "same"]
    outputs = _at_once(args, args, iso_env, tmp_path)
    # Before the lock both read "nothing present" and wrote everything: 60,000 rows for 30,000 ids.
    ids = [i for part in visible_parts("problems") for i in pq.read_table(part, columns=["problem_id"])
           .column(0).to_pylist()]
    assert len(ids) == len(set(ids)) == n
    assert any("waiting for problems source=same, being written by pid" in out for out in outputs), outputs
    assert sorted(out.count(f"wrote {n},") for out in outputs) == [0, 1]
    print(f"\ntwo ingests at once: {len(ids)} rows for {n} ids; the second waited, then wrote 0")


def test_two_imports_of_one_file_at_once_write_each_row_once(lake_env, iso_env, tmp_path):
    n = 30_000
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({"problem_id": f"imp:{i % 3000}", "problem": f"p{i % 3000}",
                                        "completion": f"\\boxed{{{i % 7}}}"}) + "\n" for i in range(n)))
    args = ["import-generations", str(path), "--run-id", "same", "--model", "m"]
    outputs = _at_once(args, args, iso_env, tmp_path)
    keys = generation_keys("same")
    assert len(keys) == len(set(keys)) == n
    problems = [i for part in visible_parts("problems") for i in pq.read_table(part, columns=["problem_id"])
                .column(0).to_pylist()]
    assert len(problems) == len(set(problems)) == 3000
    assert any("waiting for generations run_id=same shard=0" in out for out in outputs), outputs
    print(f"\ntwo imports at once: {len(keys)} rows, {len(problems)} problems, each once")


def test_the_same_generate_shard_twice_refuses_the_second_and_the_lock_dies_with_its_holder(
        lake_env, iso_env, zygote, tiny_llama_dir, tmp_path):
    n_problems, n = 40, 4
    ids = write_problems("rel", [f"Add {i} and {i + 1}." for i in range(n_problems)])
    config = generation_config(tmp_path / "run.yaml", tiny_llama_dir, "dup", samples=n)
    argv = ["generate", "--config", str(config), "--shard", "0/1", "--no-progress"]
    first = zygote.run(argv, tmp_path / "first.log", iso_env)
    try:
        assert wait_until(lambda: len(visible_parts("generations")) >= 1, timeout=120), \
            (tmp_path / "first.log").read_text()[-2000:]
        # A requeued job while the first still runs: before, it sampled every missing unit again.
        second = zygote.run(argv, tmp_path / "second.log", iso_env)
        assert zygote.wait(second) == 2 and zygote_alive(first)
        refused = (tmp_path / "second.log").read_text().strip()
        assert refused.splitlines()[-1].startswith("reasonlite generate: error: generations run_id=dup shard=0 is "
                                                   f"being written by pid {first} on "), refused
    finally:
        os.kill(first, signal.SIGKILL)  # the kernel drops the flock with its holder
        zygote.wait(first)
    third = zygote.run(argv, tmp_path / "third.log", iso_env)
    assert zygote.wait(third) == 0, (tmp_path / "third.log").read_text()[-2000:]
    keys = generation_keys("dup")
    assert len(keys) == len(set(keys)) == n_problems * n
    assert set(keys) == {(p, k) for p in ids for k in range(n)}
    print(f"\nsame shard twice: the second exited 2 naming pid {first}; after SIGKILL of the first the third "
          f"resumed; {len(keys)} rows, each once")
