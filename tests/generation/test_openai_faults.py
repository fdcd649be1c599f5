"""The openai backend against a local server that fails on purpose (loopback only, bounded counts)."""

from __future__ import annotations

import pytest

from generation.config import config_from_dict
from generation.runner import run_generation, sample_seed
from tests.generation.conftest import write_problems
from tests.generation.fault_server import FaultServer, free_port
from warehouse import db, lake
from warehouse.errors import UserError


def _config(tokenizer_dir, endpoints, **openai):
    settings = {"endpoints": endpoints, "timeout_s": 0.4, "connect_timeout_s": 2, "max_retries": 5,
                "backoff_s": 0.01, "backoff_max_s": 0.05, "concurrency": 4}
    settings.update(openai)
    return config_from_dict({
        "run_id": "oa", "model": "tiny", "tokenizer": str(tokenizer_dir), "backend": "openai", "samples": 1,
        "problems": {"sources": ["q"]}, "sampling": {"max_tokens": 32, "temperature": 0.8},
        "flush_rows": 2, "openai": settings,
    }, "oa.yaml")


def _rows():
    con = db.connect(marts=False)
    rows = con.execute("SELECT * FROM generations ORDER BY problem_id, sample_idx, created_at").fetchall()
    cols = [d[0] for d in con.description]
    return [dict(zip(cols, r, strict=True)) for r in rows]


def test_every_fault_is_retried_until_success(lake_env, tokenizer_dir):
    write_problems("q", ["What is 2+2?"])
    with FaultServer() as server:
        server.plan = ["500", "429", "hang", "close", "malformed"]
        summary = run_generation(_config(tokenizer_dir, [server.url]), progress=False)
        posts = server.posts()
    assert [p["behaviour"] for p in posts] == ["500", "429", "hang", "close", "malformed", "ok"]
    assert summary.samples_written == 1 and summary.errors == 0
    (row,) = _rows()
    assert row["error"] is None and row["completion"] == "<think>2+2</think>The answer is \\boxed{4}."
    assert (row["reasoning"], row["final"]) == ("2+2", "The answer is \\boxed{4}.")
    assert (row["prompt_tokens"], row["completion_tokens"], row["finish_reason"]) == (11, 7, "stop")
    body = posts[-1]["body"]
    assert body["model"] == "tiny" and body["n"] == 1 and body["seed"] == sample_seed(_config(tokenizer_dir, ["http://x"]), "q:0", 0)
    assert body["prompt"] == row["prompt"] and "What is 2+2?" in body["prompt"]
    assert posts[-1]["path"] == "/v1/completions"


def test_a_sample_that_keeps_failing_is_written_with_error_then_refilled(lake_env, tokenizer_dir):
    write_problems("q", ["What is 2+2?", "What is 3+3?"])
    with FaultServer() as server:
        server.always = "500"
        summary = run_generation(_config(tokenizer_dir, [server.url], max_retries=2), progress=False)
        assert len(server.posts()) == 2 * 3  # 1 try + 2 retries per sample, never more
        assert summary.errors == 2 and summary.status == "complete"
        assert all(r["error"] == "http_500 (gave up after 3 attempts)" for r in _rows())
        server.always = None
        again = run_generation(_config(tokenizer_dir, [server.url], max_retries=2), progress=False)
    assert again.samples_written == 2 and again.errors == 0 and again.units_already_done == 0
    rows = _rows()
    assert len(rows) == 4 and sum(r["error"] is None for r in rows) == 2


def test_client_errors_are_not_retried_and_the_run_continues(lake_env, tokenizer_dir):
    write_problems("q", ["TOO LONG " * 3, "What is 3+3?"])
    with FaultServer() as server:
        summary = run_generation(_config(tokenizer_dir, [server.url]), progress=False)
        assert len(server.posts()) == 2
    errors = {r["problem_id"]: r["error"] for r in _rows()}
    assert errors["q:0"].startswith("http_400: ") and "maximum context length" in errors["q:0"]
    assert errors["q:1"] is None and summary.errors == 1


def test_prompt_over_served_context_fails_without_a_request(lake_env, tokenizer_dir):
    write_problems("q", ["word " * 200, "What is 3+3?"])
    with FaultServer(max_model_len=128) as server:
        run_generation(_config(tokenizer_dir, [server.url]), progress=False)
        posts = server.posts()
    assert len(posts) == 1 and posts[0]["body"]["max_tokens"] <= 32
    errors = {r["problem_id"]: r["error"] for r in _rows()}
    assert errors["q:0"].startswith("prompt_too_long:") and errors["q:1"] is None


def test_load_is_spread_and_moves_off_a_failing_endpoint(lake_env, tokenizer_dir):
    write_problems("q", [f"What is {i}+{i}?" for i in range(24)])
    with FaultServer(delay_s=0.05) as a, FaultServer(delay_s=0.05) as b:
        summary = run_generation(_config(tokenizer_dir, [a.url, b.url]), progress=False)
        first_a, first_b = len(a.posts()), len(b.posts())
        assert summary.errors == 0 and first_a + first_b == 24 and min(first_a, first_b) >= 6
        b.always = "500"  # one server breaks: its failed requests go to the other
        config = _config(tokenizer_dir, [a.url, b.url], max_retries=3)
        config.run_id = "oa2"
        summary = run_generation(config, progress=False)
        assert summary.errors == 0 and summary.samples_written == 24
        assert len(a.posts()) - first_a == 24  # every sample ended on the healthy server
        assert len(b.posts()) - first_b <= 24  # tried at most once more each, then avoided


def test_unreachable_endpoints_fail_before_any_work(lake_env, tokenizer_dir, capsys):
    write_problems("q", ["What is 2+2?"])
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(UserError, match=r"openai.endpoints: no endpoint is usable: http://127.0.0.1:\d+/v1: ConnectError"):
        run_generation(_config(tokenizer_dir, [dead]), progress=False)
    assert lake.read_manifest("oa") is None and _rows() == []
    with FaultServer() as server:
        run_generation(_config(tokenizer_dir, [dead, server.url]), progress=False)
    assert "warning: skipping endpoint http://127.0.0.1" in capsys.readouterr().err
    assert len(_rows()) == 1


def test_chat_api_keeps_the_servers_reasoning_split(lake_env, tokenizer_dir):
    write_problems("q", ["What is 2+2?"])
    with FaultServer() as server:
        run_generation(_config(tokenizer_dir, [server.url], api="chat"), progress=False)
        (post,) = server.posts()
    assert post["path"] == "/v1/chat/completions"
    assert post["body"]["messages"][-1]["content"].startswith("What is 2+2?\nPlease reason step by step")
    (row,) = _rows()
    assert (row["reasoning"], row["final"]) == ("2+2 is 4.", "The answer is \\boxed{4}.")
    assert '"role": "user"' in row["prompt"]
