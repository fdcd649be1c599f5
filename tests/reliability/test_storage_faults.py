"""Storage faults enforced by the kernel: a full filesystem (a 1 MiB tmpfs, where mounting is
allowed) and a file-size limit (RLIMIT_FSIZE, anywhere). The write fails mid-file; the command
says so in one line, and no part (whole or half) becomes visible.

A corrupt part already in the lake: tests/curation/test_quarantine.py and
tests/warehouse/test_lake.py::test_corrupt_part_is_quarantined_and_named (footer unreadable), and
here a part whose footer reads but whose data pages are garbage."""

from __future__ import annotations

import json
import resource
import secrets
import signal
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.reliability.conftest import REPO, cli_env, run_cli, visible_parts, warehouse_env
from warehouse import lake


def _problems_file(path, n: int = 3000) -> None:
    # Random hex does not compress: ~3 MB of Parquet, far over the limits below.
    with open(path, "w") as handle:
        for _ in range(n):
            handle.write(json.dumps({"problem": secrets.token_hex(500), "answer": "1"}) + "\n")


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.fixture
def tiny_fs(tmp_path):
    mount = tmp_path / "tinyfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:80]}); the RLIMIT test still runs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _assert_clean_failure(result, command: str, lake_dir) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reasonlite {command}: error: "), result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    parts = list(lake_dir.rglob("*.parquet"))
    readable = [p for p in parts if p.name.startswith("part-")]
    for part in readable:
        pq.read_metadata(part)  # anything visible is whole
    assert not [p for p in parts if p.name.startswith(".tmp-")], "a temp file was left behind"
    return lines[0]


def test_disk_full_during_ingest_fails_cleanly_and_leaves_no_part(tiny_fs, tmp_path):
    source = tmp_path / "big.jsonl"
    _problems_file(source)
    env = cli_env(**{**warehouse_env(tmp_path / "w"), "REASONLITE_LAKE": str(tiny_fs / "lake")})
    result = run_cli("ingest", str(source), "--source", "big", env=env)
    line = _assert_clean_failure(result, "ingest", tiny_fs / "lake")
    assert "No space left on device" in line and "source=big/part-" in line  # says where
    assert not list((tiny_fs / "lake").rglob("part-*.parquet"))
    print(f"\ndisk full (1 MiB tmpfs): {line}")


def test_file_size_limit_during_import_fails_cleanly_and_rerun_completes(lake_env, tmp_path):
    from tests.generation.conftest import write_problems

    write_problems("big", [f"p{i}" for i in range(50)])
    source = tmp_path / "samples.jsonl"
    with open(source, "w") as handle:
        for i in range(3000):
            handle.write(json.dumps({"problem_id": f"big:{i % 50}", "sample_idx": i // 50,
                                     "completion": secrets.token_hex(500)}) + "\n")
    args = [sys.executable, "-m", "warehouse.cli", "import-generations", str(source), "--run-id", "r", "--model", "m"]
    result = subprocess.run(args, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300,
                            preexec_fn=_limit_file_size(512 * 1024))
    line = _assert_clean_failure(result, "import-generations", lake.lake_root())
    assert "File too large" in line and "run_id=r/shard=0/part-" in line, line
    assert visible_parts("generations") == []
    # Space back: the same command finishes, exactly once.
    again = run_cli("import-generations", str(source), "--run-id", "r", "--model", "m")
    assert again.returncode == 0, again.stderr
    rows = pa.concat_tables(pq.read_table(p, columns=["problem_id", "sample_idx"])
                            for p in visible_parts("generations"))
    assert rows.num_rows == 3000 == len(set(zip(*(c.to_pylist() for c in rows.columns), strict=True)))
    print(f"\nRLIMIT_FSIZE 512 KiB: {line}")


def test_part_with_garbage_pages_but_a_good_footer_is_named_by_curate(lake_env, iso_env, tmp_path):
    from tests.curation import lakes

    lakes.write_problems([{"problem_id": "toy:0", "source": "toy", "prompt": "1+1?", "expected_answer": "2"}])
    rows = [lakes.sample("r", "toy:0", k, "medium", "1+1?", answer="2") for k in range(200)]
    lakes.write_generations(rows)
    (part,) = visible_parts("generations")
    data = bytearray(part.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(4, len(data) - footer - 64, 7):  # flip bytes across the data pages, keep the footer
        data[i] ^= 0x5A
    part.write_bytes(bytes(data))
    pq.read_metadata(part)  # the footer still reads: only a real read finds the damage
    result = run_cli("curate", "--quiet", "--no-test", env=cli_env(**iso_env))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert part.name in output, output[-3000:]
    assert "Traceback" not in output
    print(f"\ngarbage pages: curate exit {result.returncode}; names {part.name}")
