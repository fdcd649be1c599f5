"""Helpers of the reliability suite: real `reasonlite` processes in an isolated warehouse.

Every subprocess gets ``OMP_NUM_THREADS=1``: on a loaded 2-core machine torch's default thread
pool made the tiny model 30x slower (0.34 vs 10 samples/s, measured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from warehouse import lake

REPO = Path(__file__).resolve().parents[2]
QUIET = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
         "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def warehouse_env(root: Path) -> dict[str, str]:
    """The REASONLITE_* paths (plus dbt's own files) of a warehouse rooted at ``root``."""
    return lake.env_for_root(root)


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **QUIET}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`reasonlite ARGS` as a separate process (what a shell or a scheduler runs)."""
    return subprocess.run([sys.executable, "-m", "warehouse.cli", *args], cwd=REPO, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def popen_cli(*args: str, env: dict | None = None, log: Path) -> subprocess.Popen:
    handle = open(log, "ab")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen([sys.executable, "-m", "warehouse.cli", *args], cwd=REPO, env=env or cli_env(),
                            stdout=handle, stderr=subprocess.STDOUT)


def generation_config(path: Path, model_dir: Path, run_id: str, samples: int, flush_rows: int = 2,
                      max_tokens: int = 4, **extra) -> Path:
    data = {
        "run_id": run_id, "model": str(model_dir), "backend": "transformers", "samples": samples,
        "problems": {"sources": ["rel"]}, "sampling": {"max_tokens": max_tokens, "temperature": 0.8},
        "flush_rows": flush_rows, "transformers": {"batch_size": 4, "max_model_len": 1024},
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data))
    return path


def visible_parts(table: str = "generations", pattern: str | None = None) -> list[Path]:
    """Parts a reader would see (``pattern``: the partition folders, default all of them)."""
    pattern = pattern or "/".join("*" for _ in lake.PARTITIONS[table])
    root = lake.table_dir(table)
    return sorted(root.glob(f"{pattern}/part-*.parquet")) if root.exists() else []


def generation_keys(run_id: str) -> list[tuple[str, int]]:
    """(problem_id, sample_idx) of every visible row of a run, read part by part (each must read whole)."""
    keys = []
    for part in visible_parts("generations", f"run_id={run_id}/*"):
        table = pq.read_table(part, columns=["problem_id", "sample_idx"])
        keys += list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
    return keys


class Zygote:
    """Client of tests/reliability/zygote.py: fork real CLI runs without paying the imports again."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.zygote"], cwd=REPO,
                                     env=cli_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert json.loads(self.proc.stdout.readline()).get("ready"), "zygote did not start"

    def _ask(self, message: dict) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def run(self, argv: list[str], log: Path, env: dict[str, str]) -> int:
        return self._ask({"run": argv, "log": str(log), "env": env})["pid"]

    def wait(self, pid: int) -> int:
        return self._ask({"wait": pid})["status"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def zygote():
    z = Zygote()
    yield z
    z.close()


@pytest.fixture
def iso_env(lake_env, monkeypatch) -> dict[str, str]:
    """lake_env's paths (plus dbt's own target/log dirs) as a dict for child processes."""
    env = warehouse_env(lake_env)
    for key in ("DBT_TARGET_PATH", "DBT_LOG_PATH"):
        monkeypatch.setenv(key, env[key])
    return env


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
