"""The runner with the real transformers backend and a tiny model: resume, shards, errors, units,
SIGKILL mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from generation.config import config_from_dict
from generation.runner import run_generation, run_throughput, shard_of
from tests.generation.conftest import benchmark_prompts, write_problems
from warehouse import db, lake
from warehouse.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(model_dir, **extra):
    data = {
        "run_id": "t1", "model": str(model_dir), "backend": "transformers", "samples": 3,
        "problems": {"sources": ["bench"]}, "sampling": {"max_tokens": 8, "temperature": 0.8},
        "flush_rows": 4, "transformers": {"batch_size": 6, "max_model_len": 1024},
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return config_from_dict(data, "test.yaml")


def _rows(run_id: str, where: str = "true"):
    return db.connect(marts=False).execute(
        f"SELECT problem_id, sample_idx, error FROM generations WHERE run_id = '{run_id}' AND {where} ORDER BY 1, 2"
    ).fetchall()


def test_run_writes_full_rows_and_resumes_without_duplicates(lake_env, tiny_llama_dir, benchmarks_dir):
    prompts, answers = benchmark_prompts(benchmarks_dir, "amc23", limit=5)
    ids = write_problems("bench", prompts, answers)
    config = _config(tiny_llama_dir)
    summary = run_generation(config, progress=False)
    assert (summary.samples_written, summary.errors, summary.status) == (15, 0, "complete")
    assert len(summary.parts) == 4  # a part every 4 rows: 4 + 4 + 4 + 3

    con = db.connect(marts=False)
    rows = con.execute("SELECT * FROM generations ORDER BY problem_id, sample_idx").fetchall()
    cols = [d[0] for d in con.description]
    rows = [dict(zip(cols, r, strict=True)) for r in rows]
    assert {(r["problem_id"], r["sample_idx"]) for r in rows} == {(p, k) for p in ids for k in range(3)}
    for r in rows:
        assert r["model"] == str(tiny_llama_dir) and r["backend"] == "transformers" and r["shard"] == 0
        assert r["prompt"].startswith("<|im_start|>system") and "Please reason step by step" in r["prompt"]
        assert r["finish_reason"] in ("stop", "length") and 1 <= r["completion_tokens"] <= 8
        assert r["prompt_tokens"] > 10 and r["latency_s"] > 0 and r["error"] is None
        # Plain text has no answer marker: cut off by max_tokens, it has no final answer.
        assert r["final"] == (None if r["finish_reason"] == "length" else r["completion"].strip() or None)
        assert r["reasoning"] is None
        assert (r["temperature"], r["max_tokens"]) == (pytest.approx(0.8), 8)
    assert len({r["seed"] for r in rows}) == 15
    assert any(r["finish_reason"] == "length" and r["completion"].strip() for r in rows)

    manifest = lake.read_manifest("t1")
    assert manifest["status"] == "complete" and manifest["finished_at"] and manifest["purpose"] == "teacher"
    assert manifest["n_samples"] == 3 and manifest["backend"] == "transformers"

    again = run_generation(config, progress=False)
    assert (again.samples_written, again.units_already_done) == (0, 15)
    more = run_generation(_config(tiny_llama_dir, samples=4), progress=False)
    assert more.samples_written == 5 and {k for _, k, _ in _rows("t1", "sample_idx = 3")} == {3}
    assert len(_rows("t1")) == 20


def test_prompt_over_context_gets_error_and_run_continues(lake_env, tiny_llama_dir):
    write_problems("bench", ["What is 2+2?", "word " * 400, "What is 3+3?"])
    config = _config(tiny_llama_dir, samples=2, transformers={"max_model_len": 256})
    summary = run_generation(config, progress=False)
    assert summary.samples_written == 6 and summary.errors == 2 and summary.status == "complete"
    errors = _rows("t1", "error IS NOT NULL")
    assert [(p, k) for p, k, _ in errors] == [("bench:1", 0), ("bench:1", 1)]
    assert all(e.startswith("prompt_too_long:") for _, _, e in errors)
    assert len(_rows("t1", "error IS NULL")) == 4


def test_errored_samples_are_retried_and_superseded(lake_env, tiny_llama_dir):
    write_problems("bench", ["What is 2+2?", "What is 3+3?"])
    config = _config(tiny_llama_dir, samples=2)
    # A failed sample from an earlier session (e.g. a server that gave up).
    with lake.PartWriter("generations", defaults={"shard": 0}) as writer:
        writer.add({"run_id": "t1", "problem_id": "bench:0", "sample_idx": 1, "error": "http_503 (gave up)",
                    "created_at": lake.now_utc()})
    summary = run_generation(config, progress=False)
    assert summary.samples_written == 4
    rows = _rows("t1")
    assert len(rows) == 5 and rows.count(("bench:0", 1, None)) == 1
    # What curation does: per (run, problem, sample) the row without error if there is one.
    kept = db.connect(marts=False).execute(
        "SELECT problem_id, sample_idx, error FROM generations QUALIFY row_number() OVER ("
        "PARTITION BY run_id, problem_id, sample_idx ORDER BY (error IS NULL) DESC, created_at DESC) = 1").fetchall()
    assert len(kept) == 4 and all(error is None for _, _, error in kept)


def test_shards_split_the_run_exactly(lake_env, tiny_llama_dir):
    ids = write_problems("bench", [f"What is {i}+{i}?" for i in range(12)])
    config = _config(tiny_llama_dir, samples=2)
    statuses = []
    for i in range(3):
        summary = run_generation(config, shard=(i, 3), progress=False)
        statuses.append(summary.status)
        assert summary.problems == sum(shard_of(p, 3) == i for p in ids)
    assert statuses == ["running", "running", "complete"]
    rows = db.connect(marts=False).execute("SELECT problem_id, sample_idx, shard FROM generations").fetchall()
    assert sorted((p, k) for p, k, _ in rows) == sorted((p, k) for p in ids for k in range(2))
    assert all(shard == shard_of(p, 3) for p, _, shard in rows)


def test_units_for_the_judge_and_resume_guard(lake_env, tiny_llama_dir):
    units = [("j:1", [{"role": "user", "content": "Is 1/2 equal to 0.5? Answer yes or no."}]),
             ("j:2", "Is 3 prime?")]
    config = _config(tiny_llama_dir, run_id="judge-1", purpose="judge", samples=1)
    summary = run_generation(config, units=units, progress=False)
    assert summary.samples_written == 2 and summary.status == "complete"
    prompts = dict(db.connect(marts=False).execute("SELECT problem_id, prompt FROM generations").fetchall())
    assert "Is 1/2 equal to 0.5? Answer yes or no.<|im_end|>" in prompts["j:1"]
    assert "Is 3 prime?\nPlease reason step by step" in prompts["j:2"]
    assert lake.read_manifest("judge-1")["purpose"] == "judge"
    with pytest.raises(UserError, match="sampling.temperature: run judge-1 already has samples made with 0.8"):
        run_generation(_config(tiny_llama_dir, run_id="judge-1", purpose="judge", samples=1,
                               sampling={"temperature": 0.1}), units=units, progress=False)
    with pytest.raises(UserError, match="appears more than once"):
        run_generation(config, units=units + [("j:1", "again")], progress=False)


def test_empty_selection_is_an_error(lake_env, tiny_llama_dir):
    write_problems("bench", ["What is 2+2?"])
    with pytest.raises(UserError, match="the selection is empty"):
        run_generation(_config(tiny_llama_dir, problems={"filter": "1 = 0"}), progress=False)
    with pytest.raises(UserError, match="no problems in the lake for source 'nothing'"):
        run_generation(_config(tiny_llama_dir, problems={"sources": ["bench", "nothing"]}), progress=False)
    with pytest.raises(UserError, match="problems.filter"):
        run_generation(_config(tiny_llama_dir, problems={"filter": "1); DROP TABLE x; --"}), progress=False)


def test_throughput_counts_busy_time_once(lake_env):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # Two overlapping requests (0-10 s and 5-12 s), then a pause, then one of 3 s: busy 15 s.
    rows = [(10.0, 10, 100), (12.0, 7, 50), (103.0, 3, 150)]
    with lake.PartWriter("generations", defaults={"shard": 0}) as writer:
        for i, (end, latency, tokens) in enumerate(rows):
            writer.add({"run_id": "tp", "problem_id": f"p:{i}", "sample_idx": 0, "latency_s": latency,
                        "completion_tokens": tokens, "created_at": t0 + timedelta(seconds=end)})
    stats = run_throughput("tp")
    assert stats["busy_s"] == pytest.approx(15.0)
    assert stats["tokens_per_s"] == pytest.approx(300 / 15)
    assert stats["samples"] == 3


def test_sigkill_mid_run_then_resume_gives_exact_rows(lake_env, tiny_llama_dir, tmp_path):
    n_problems, n = 8, 4
    write_problems("bench", [f"Compute {i} times {i + 1}." for i in range(n_problems)])
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "run_id": "killed", "model": str(tiny_llama_dir), "backend": "transformers", "samples": n,
        "problems": {"sources": ["bench"]}, "sampling": {"max_tokens": 32}, "flush_rows": 4,
        "transformers": {"batch_size": 4, "max_model_len": 1024},
    }))
    cmd = [sys.executable, "-m", "warehouse.cli", "generate", "--config", str(path), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    parts_dir = lake.table_dir("generations")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(parts_dir.glob("run_id=killed/shard=0/part-*.parquet"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stdout.read().decode()[-500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = len(_rows("killed"))
    assert 0 < before < n_problems * n
    assert lake.read_manifest("killed")["status"] == "running"  # a SIGKILL leaves no chance to say more

    done = subprocess.run(cmd, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _rows("killed")
    assert len(rows) == n_problems * n == len({(p, k) for p, k, _ in rows})
    assert all(e is None for _, _, e in rows)
    assert f"{before} samples already done" in done.stdout
    assert lake.read_manifest("killed")["status"] == "complete"
