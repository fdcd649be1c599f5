"""Real vLLM (CPU build) with a tiny model: one engine for several checks, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

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
