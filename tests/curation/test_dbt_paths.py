"""`reasonlite curate` keeps dbt's own files (target/, logs/) beside the marts, not in the checkout,
when the user moves the warehouse with REASONLITE_* alone (no DBT_* variables)."""

from __future__ import annotations

import os

import pytest

from tests.curation import lakes
from tests.reliability.conftest import run_cli
from warehouse import lake
from warehouse.curate import PROJECT_DIR


def _tree_stamp(folder):
    return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.slow
def test_curate_writes_dbt_files_beside_the_marts_not_into_the_checkout(lake_env, benchmarks_dir, monkeypatch):
    for key in ("DBT_TARGET_PATH", "DBT_LOG_PATH"):
        monkeypatch.delenv(key, raising=False)
    lakes.scenario_lake(benchmarks_dir)
    before = {name: _tree_stamp(PROJECT_DIR / name) for name in ("target", "logs")}
    env = {k: v for k, v in os.environ.items() if k not in ("DBT_TARGET_PATH", "DBT_LOG_PATH")}
    done = run_cli("curate", "--quiet", env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert {name: _tree_stamp(PROJECT_DIR / name) for name in ("target", "logs")} == before
    assert (lake.database_path().parent / "dbt_target" / "run_results.json").exists()
    assert (lake.database_path().parent / "dbt_logs" / "dbt.log").exists()
