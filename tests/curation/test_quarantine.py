"""A corrupt Parquet part in the lake: curate names it, moves it aside and builds from the rest."""

import subprocess
import sys

import pyarrow as pa

from warehouse import db, lake


def test_curate_quarantines_a_corrupt_part(lake_env):
    lake.write_part("problems", pa.table({"problem_id": ["toy:0"], "source": ["toy"], "prompt": ["1+1?"],
                                          "expected_answer": ["2"]}), {"source": "toy"})
    part = lake.write_part("generations", pa.table({
        "run_id": ["r"], "problem_id": ["toy:0"], "sample_idx": [0], "completion": ["<think>1+1</think>\\boxed{2}"],
        "reasoning": ["1+1"], "final": ["\\boxed{2}"], "finish_reason": ["stop"]}), {"run_id": "r", "shard": 0})
    corrupt = part.with_name("part-copied-badly.parquet")
    corrupt.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # a truncated copy
    proc = subprocess.run([sys.executable, "-m", "warehouse.cli", "curate", "--quiet", "--no-test"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "quarantined corrupt part" in proc.stderr and "part-copied-badly.parquet" in proc.stderr
    assert not corrupt.exists()
    assert (lake.quarantine_dir() / "generations" / "run_id=r" / "shard=0" / "part-copied-badly.parquet").exists()
    con = db.connect(read_only=True)
    assert con.execute("SELECT keep FROM judged_generations").fetchall() == [(True,)]
