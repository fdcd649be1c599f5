"""SIGKILL at random points: generation (10 seeded trials), import-generations, curate.
After each kill the lake holds only whole parts and no duplicate rows; the next run finishes the
work and the result equals a run that was never killed."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.generation.conftest import write_problems
from tests.reliability.conftest import (
    cli_env, generation_config, generation_keys, popen_cli, run_cli, visible_parts, wait_until, warehouse_env,
)
from warehouse import lake

pytestmark = pytest.mark.slow

SEED = 20260110
TRIALS = 10


def test_generate_sigkill_at_random_points_resumes_exactly_once(lake_env, iso_env, zygote, tiny_llama_dir,
                                                                tmp_path):
    # 320 units, a part every 2 rows: ~160 parts to kill between. Big enough that ten kills (each after
    # up to 3 more parts, plus polling lag on a loaded machine) cannot let the run finish early.
    n_problems, n = 80, 4
    write_problems("rel", [f"Compute {i} times {i + 1}." for i in range(n_problems)])
    config = generation_config(tmp_path / "run.yaml", tiny_llama_dir, "kill", samples=n)
    argv = ["generate", "--config", str(config), "--no-progress"]
    rng = random.Random(SEED)
    log = tmp_path / "generate.log"
    observed = []
    for trial in range(TRIALS):
        before = len(visible_parts("generations"))
        # A random point: after 0-3 more parts become visible (0 = during start-up), plus jitter.
        more_parts, jitter = rng.randint(0, 3), rng.uniform(0.0, 0.25)
        pid = zygote.run(argv, log, iso_env)
        wait_until(lambda: len(visible_parts("generations")) >= before + more_parts, timeout=120)  # noqa: B023
        time.sleep(jitter)
        os.kill(pid, signal.SIGKILL)
        status = zygote.wait(pid)
        keys = generation_keys("kill")  # every visible part reads whole (pq raises otherwise)
        dupes = [k for k, c in collections.Counter(keys).items() if c > 1]
        assert not dupes, f"trial {trial}: duplicate rows after kill: {dupes[:5]}"
        assert status == -signal.SIGKILL, f"trial {trial}: the run ended (status {status}) before the kill"
        assert lake.read_manifest("kill") is None or lake.read_manifest("kill")["status"] == "running"
        observed.append((more_parts, round(jitter, 2), len(keys)))
    rows_before_resume = len(generation_keys("kill"))
    assert 0 < rows_before_resume < n_problems * n, observed

    pid = zygote.run(argv, log, iso_env)
    assert zygote.wait(pid) == 0, log.read_text()[-2000:]
    keys = generation_keys("kill")
    assert len(keys) == len(set(keys)) == n_problems * n
    assert set(keys) == {(f"rel:{i}", k) for i in range(n_problems) for k in range(n)}
    assert lake.read_manifest("kill")["status"] == "complete"
    assert f"{rows_before_resume} samples already done" in log.read_text()
    leftovers = list(lake.table_dir("generations").rglob(".tmp-*"))
    print(f"\ngenerate kill trials (parts waited, jitter s, rows visible): {observed}; "
          f"rows before resume {rows_before_resume}/{n_problems * n}; temp files left by kills {len(leftovers)}")


def _import_file(path, n_rows: int, n_problems: int) -> None:
    with open(path, "w") as handle:
        for i in range(n_rows):
            handle.write(json.dumps({"problem_id": f"rel:{i % n_problems}", "sample_idx": i // n_problems,
                                     "completion": f"<think>step {i}</think>\\boxed{{{i % 7}}}"}) + "\n")


def _table(con, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


IMPORT_COLUMNS = "problem_id, sample_idx, model, reasoning, final, completion, error, reasoning_level"


def test_import_generations_sigkill_then_rerun_equals_clean_import(lake_env, iso_env, tmp_path):
    n_problems, n_rows = 500, 30_000
    write_problems("rel", [f"p{i}" for i in range(n_problems)])
    source = tmp_path / "samples.jsonl"
    _import_file(source, n_rows, n_problems)
    args = ["import-generations", str(source), "--run-id", "imp", "--model", "m"]
    # A clean import into a second warehouse with the same problems.
    clean_root = tmp_path / "clean"
    clean_env = cli_env(**warehouse_env(clean_root))
    for part in visible_parts("problems"):
        target = clean_root / "lake" / part.relative_to(lake.lake_root())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(part.read_bytes())
    clean = run_cli(*args, env=clean_env)
    assert clean.returncode == 0, clean.stderr

    rng = random.Random(SEED)
    proc = popen_cli(*args, env=cli_env(), log=tmp_path / "import.log")
    target_parts = rng.randint(1, 2)
    wait_until(lambda: len(visible_parts("generations")) >= target_parts, timeout=120)
    time.sleep(rng.uniform(0, 0.2))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the import ended before the kill"
    killed_rows = len(generation_keys("imp"))
    assert 0 < killed_rows < n_rows

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    con = duckdb.connect()
    ours = _table(con, f"SELECT {IMPORT_COLUMNS} FROM read_parquet('{lake.parquet_glob('generations')}')")
    theirs = _table(con, f"SELECT {IMPORT_COLUMNS} FROM read_parquet('{clean_root}/lake/generations/*/*/part-*.parquet')")
    assert len(ours) == n_rows and ours == theirs
    print(f"\nimport kill: {killed_rows}/{n_rows} rows visible at the kill; rerun equals the clean import")


MARTS = ["pseudo_labels", "judged_generations", "sft_examples", "curation_funnel", "threshold_sweep",
         "contamination"]


def _mart_contents(db_path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        out = {}
        for mart in MARTS:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND data_type NOT LIKE 'TIMESTAMP%' AND column_name NOT IN ('graded_in', 'built_at')",
                [mart]).fetchall()]
            out[mart] = _table(con, f"SELECT {', '.join(cols)} FROM main.{mart}")
        return out
    finally:
        con.close()


def _published_files() -> dict[str, bytes]:
    from warehouse import snapshots

    exports = lake.exports_dir()
    files = {lake.database_path().name: lake.database_path(),
             **{p.name: p for p in exports.iterdir() if p.is_file()},
             **{name: exports / name for name in snapshots.strata_files(exports)}}
    return {name: path.read_bytes() for name, path in sorted(files.items())}


def test_curate_sigkill_then_rerun_equals_clean_build(lake_env, iso_env, benchmarks_dir, tmp_path):
    """Killed at seeded points of its build, a curate leaves the previous snapshot published and
    readable (byte for byte), and the next curate equals a clean build."""
    from tests.curation import lakes
    from warehouse import snapshots

    lakes.scenario_lake(benchmarks_dir)
    clean_env = cli_env(**{**iso_env, "REASONLITE_DB": str(tmp_path / "clean" / "reasonlite.duckdb"),
                           "REASONLITE_EXPORTS": str(tmp_path / "clean_exports"),
                           "DBT_TARGET_PATH": str(tmp_path / "clean_target")})
    started = time.monotonic()
    clean = run_cli("curate", "--quiet", "--no-test", env=clean_env)
    clean_s = time.monotonic() - started
    assert clean.returncode == 0, clean.stdout + clean.stderr

    env = cli_env(**iso_env)
    previous = run_cli("curate", "--quiet", "--no-test", "--vars", "{vote_ratio: 0.5}", env=env)
    assert previous.returncode == 0, previous.stdout + previous.stderr
    published = _published_files()
    previous_marts = _mart_contents(lake.database_path())

    rng = random.Random(SEED)
    kills = []
    for trial in range(2):
        # Kill once the build has begun writing its own database file, at a seeded point within a clean build.
        proc = popen_cli("curate", "--quiet", "--no-test", env=env, log=tmp_path / f"curate{trial}.log")
        building = lambda: any(lake.snapshots_dir().glob(f".build-*/{lake.database_path().name}"))  # noqa: E731
        assert wait_until(building, timeout=180)
        delay = rng.uniform(0.1, 0.8) * clean_s * 0.5
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        killed = proc.wait() == -signal.SIGKILL
        assert killed, "curate finished before the kill: " + (tmp_path / f"curate{trial}.log").read_text()[-1000:]
        kills.append(round(delay, 1))
        # Readers still see the previous build, whole.
        assert _published_files() == published
        assert _mart_contents(lake.database_path()) == previous_marts
        snapshots.check_published_exports()

    again = run_cli("curate", "--quiet", "--no-test", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not list(lake.snapshots_dir().glob(".build-*"))  # the killed builds' folders are gone
    assert _mart_contents(lake.database_path()) == _mart_contents(tmp_path / "clean" / "reasonlite.duckdb")
    for name in snapshots.STRATA_DIRS:
        ours, theirs = lake.exports_dir() / name, tmp_path / "clean_exports" / name
        if theirs.exists():
            order = [(c, "ascending") for c in ("problem_id", "run_id", "sample_idx")]

            def rows(folder):
                return pa.concat_tables([pq.read_table(p) for p in snapshots.stratum_segments(folder)])

            assert rows(ours).sort_by(order).equals(rows(theirs).sort_by(order)), name
    print(f"\ncurate kill: clean build {clean_s:.1f} s; killed {kills} s after the build file appeared; "
          f"the previous snapshot stayed published byte for byte; rebuilt; {len(MARTS)} marts and the "
          "exports equal the clean build")
