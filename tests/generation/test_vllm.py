"""Real vLLM (CPU build) with a tiny model: one engine for several checks, in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer

from tests.processes import alive, descendants, shell_signals
from warehouse import lake

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_vllm_offline_engine(lake_env, tiny_vllm_dir, tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.generation.vllm_scenarios", str(tiny_vllm_dir), str(out)],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())

    # 4 problems x 3 samples; the over-long prompt gets error rows, the rest run.
    assert result["a"]["written"] == 12 and result["a"]["errors"] == 3 and result["a"]["status"] == "complete"
    assert result["a"]["run_tokens_per_s"] > 0
    rows = [r for r in result["rows"] if r["run_id"] == "a"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_vllm_dir)
    for r in rows:
        if r["problem_id"] == "v:1":
            assert r["error"].startswith("prompt_too_long:") and r["completion"] is None
            continue
        assert r["error"] is None and r["finish_reason"] in ("stop", "length")
        assert 1 <= r["completion_tokens"] <= 12
        assert r["prompt_tokens"] == len(tokenizer(r["prompt"], add_special_tokens=False)["input_ids"])
    seeds = {(r["problem_id"], r["sample_idx"]): r["seed"] for r in rows}
    assert seeds[("v:0", 2)] == seeds[("v:0", 0)] + 2

    # Resume with sample 0 present: only samples 1-2 made, and identical to run a's (same seeds).
    assert result["b"] == {"written": 6 + 3, "already": 3}  # 3 good samples copied; v:1 fails again
    a = {(r["problem_id"], r["sample_idx"]): r["completion"] for r in rows}
    b = {(r["problem_id"], r["sample_idx"]): r["completion"] for r in result["rows"] if r["run_id"] == "b"}
    for key in [("v:0", 1), ("v:0", 2), ("v:2", 1), ("v:3", 2)]:
        assert b[key] == a[key] and a[key]
    assert len({a[("v:0", k)] for k in range(3)}) == 3  # different seeds, different samples
    manifest = result["manifest_a"]
    assert manifest["status"] == "complete" and json.loads(manifest["config"])["prompt_format"] == "chat"


def test_cpu_engine_defaults_fill_only_what_the_config_leaves_open(monkeypatch):
    from generation.backends import vllm_backend

    monkeypatch.setattr(vllm_backend, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(vllm_backend, "cpu_threads", lambda: [0, 1])
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    open_kwargs = {"dtype": "auto", "enable_chunked_prefill": True}
    vllm_backend._cpu_engine_defaults(open_kwargs)
    assert open_kwargs == {"dtype": "float32", "enable_chunked_prefill": False, "enforce_eager": True}
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "0,1"

    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "1")
    chosen = {"dtype": "bfloat16", "enforce_eager": False}
    vllm_backend._cpu_engine_defaults(chosen)
    assert chosen == {"dtype": "bfloat16", "enforce_eager": False, "enable_chunked_prefill": False}
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "1"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_terminated_generate_leaves_no_vllm_process_behind(lake_env, tiny_vllm_dir, tmp_path):
    """SIGTERM (a job scheduler, `kill`, the demo dying: its steps get SIGTERM) used to end `reasonlite
    generate` at once and leave vLLM's EngineCore and worker processes running, orphaned, with their
    memory (one held 7.8 GB). The CLI turns SIGTERM into an interrupt, so the engine is shut down."""
    from tests.generation.conftest import write_problems

    write_problems("t", [f"Write the numbers from 1 to {n}." for n in range(40)])
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump({
        "run_id": "terminated", "model": str(tiny_vllm_dir), "backend": "vllm", "samples": 64,
        "problems": {"sources": ["t"]}, "sampling": {"max_tokens": 200, "temperature": 1.0, "seed": 3},
        "flush_rows": 8, "vllm": {"max_model_len": 256, "batch_problems": 2},
    }))
    proc = subprocess.Popen([sys.executable, "-m", "warehouse.cli", "generate", "--config", str(config),
                             "--no-progress"], cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=shell_signals)
    engine: set[int] = set()
    try:
        runs = lake.table_dir("generations") / "run_id=terminated"
        deadline = time.monotonic() + 300
        while not any(runs.rglob("part-*.parquet")):  # the engine is up and sampling
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no sample written in 300 s"
            time.sleep(0.5)
        engine |= descendants(proc.pid)
        assert engine, "vLLM started no process: nothing to check"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        err = proc.stderr.read()
        assert code == 128 + signal.SIGTERM, err[-3000:]
        assert "reasonlite: terminated" in err
        deadline = time.monotonic() + 30
        while left := [pid for pid in engine if alive(pid)]:
            assert time.monotonic() < deadline, f"vLLM processes {left} outlived `reasonlite generate`"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
        for pid in filter(alive, engine):  # what a failed check left running
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
