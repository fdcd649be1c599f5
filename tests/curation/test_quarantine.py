"""A corrupt Parquet part in the lake: curate names it, moves it aside, and does not publish strata
that silently miss its rows: it refuses (exit 1, previous build kept) unless --allow-quarantined."""

import subprocess
import sys

import pyarrow as pa
import pytest

from warehouse import db, lake, snapshots

pytestmark = pytest.mark.slow


def _curate(*args):
    return subprocess.run([sys.executable, "-m", "warehouse.cli", "curate", "--quiet", "--no-test", *args],
                          capture_output=True, text=True, check=False)


def _corrupt_copy(part):
    corrupt = part.with_name("part-copied-badly.parquet")
    corrupt.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # a truncated copy
    return corrupt


def _published():
    exports = lake.exports_dir()
    names = [*(p.name for p in exports.glob("*") if p.is_file()), *snapshots.strata_files(exports)]
    return {name: (exports / name).read_bytes() for name in sorted(names)}


def test_curate_quarantines_a_corrupt_part_and_refuses_to_shrink_the_strata(lake_env):
    lake.write_part("problems", pa.table({"problem_id": ["toy:0", "toy:1"], "source": ["toy"] * 2,
                                          "prompt": ["1+1?", "2+2?"], "expected_answer": ["2", "4"]}),
                    {"source": "toy"})
    part = lake.write_part("generations", pa.table({
        "run_id": ["r"], "problem_id": ["toy:0"], "sample_idx": [0], "completion": ["<think>1+1</think>\\boxed{2}"],
        "reasoning": ["1+1"], "final": ["\\boxed{2}"], "finish_reason": ["stop"]}), {"run_id": "r", "shard": 0})
    lake.write_part("generations", pa.table({
        "run_id": ["r"], "problem_id": ["toy:1"], "sample_idx": [0], "completion": ["<think>2+2</think>\\boxed{4}"],
        "reasoning": ["2+2"], "final": ["\\boxed{4}"], "finish_reason": ["stop"]}), {"run_id": "r", "shard": 1})
    first = _curate("--vars", "{min_votes: 1}")
    assert first.returncode == 0, first.stdout + first.stderr
    before = _published()
    assert {name.split("/")[0] for name in before} >= {*snapshots.STRATA_DIRS, "curation_vars.json"}
    assert any(name.startswith("sft_short_cot/part-") for name in before)

    corrupt = _corrupt_copy(part)
    refused = _curate("--vars", "{min_votes: 1}")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "quarantined corrupt part" in refused.stderr and "part-copied-badly.parquet" in refused.stderr
    assert "would be missing from the strata" in refused.stderr and "--allow-quarantined" in refused.stderr
    assert not corrupt.exists()
    moved = lake.quarantine_dir() / "generations" / "run_id=r" / "shard=0" / "part-copied-badly.parquet"
    assert moved.exists()
    assert _published() == before  # the previous strata and vars, byte for byte

    # Still refused on the next run: the quarantine holds rows the strata would lack.
    again = _curate("--vars", "{min_votes: 1}")
    assert again.returncode == 2 and "EXCLUDED from this build" in again.stderr

    allowed = _curate("--vars", "{min_votes: 1}", "--allow-quarantined")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "EXCLUDED: 1 quarantined part(s)" in allowed.stdout
    con = db.connect(read_only=True)
    assert con.execute("SELECT problem_id, keep FROM judged_generations ORDER BY 1").fetchall() \
        == [("toy:0", True), ("toy:1", True)]


def test_curate_with_every_problems_part_quarantined_fails_and_keeps_the_previous_build(lake_env):
    part = lake.write_part("problems", pa.table({"problem_id": ["toy:0"], "source": ["toy"], "prompt": ["1+1?"],
                                                 "expected_answer": ["2"]}), {"source": "toy"})
    lake.write_part("generations", pa.table({
        "run_id": ["r"], "problem_id": ["toy:0"], "sample_idx": [0], "completion": ["<think>1+1</think>\\boxed{2}"],
        "reasoning": ["1+1"], "final": ["\\boxed{2}"], "finish_reason": ["stop"]}), {"run_id": "r", "shard": 0})
    first = _curate("--vars", "{min_votes: 1}")
    assert first.returncode == 0, first.stdout + first.stderr
    before = _published()
    database = lake.database_path().read_bytes()

    part.write_bytes(part.read_bytes()[:100])  # the only problems part goes bad
    for args in ((), ("--allow-quarantined",)):
        proc = _curate("--vars", "{min_votes: 1}", *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "every problems part is quarantined" in proc.stderr and "nothing left to curate" in proc.stderr
    assert _published() == before
    assert lake.database_path().read_bytes() == database
