"""The openai backend against a local server that misbehaves in every way a real one does.

tests/generation/test_openai_faults.py covers 500, 429 (Retry-After: 0), hang, a connection
dropped before any byte, a cut JSON body. Added here: a connection closed in the middle of the body
(Content-Length promised, half sent), an empty choice list, Retry-After that must be waited out,
bounded attempts per fault kind, and a rerun that asks the server only for the failed samples.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from generation.config import config_from_dict
from generation.runner import run_generation
from tests.generation.conftest import write_problems
from warehouse import db
import contextlib

FAULTS = ["500", "429", "hang", "midbody", "malformed", "empty"]


class Server:
    """OpenAI-compatible chat endpoint on loopback. A POST's behaviour: the next item of ``plan``,
    else the fault named in the prompt (``FAIL-<kind>``) while ``broken``, else a normal answer."""

    def __init__(self, retry_after: str = "0.3", hang_s: float = 1.0):
        self.plan: list[str] = []
        self.broken = True
        self.log: list[tuple[float, str, str]] = []  # (time, problem text, behaviour)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body: bytes, headers=None, declared: int | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(declared if declared is not None else len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "tiny", "object": "model"}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                text = body["messages"][-1]["content"]
                with outer.lock:
                    behaviour = outer.plan.pop(0) if outer.plan else "ok"
                    if behaviour == "ok" and outer.broken and "FAIL-" in text:
                        behaviour = text.split("FAIL-", 1)[1].split()[0]
                    outer.log.append((time.monotonic(), text.split(":", 1)[0], behaviour))  # "Problem <i>"
                if behaviour == "500":
                    self._send(500, b'{"error": "internal"}')
                elif behaviour == "429":
                    self._send(429, b'{"error": "rate limited"}', {"Retry-After": retry_after})
                elif behaviour == "hang":
                    time.sleep(hang_s)
                    with contextlib.suppress(OSError):
                        self._send(200, b"{}")
                elif behaviour == "midbody":
                    whole = json.dumps(_answer()).encode()
                    self._send(200, whole[: len(whole) // 2], declared=len(whole))
                    self.close_connection = True
                elif behaviour == "malformed":
                    self._send(200, b'{"choices": [{"message": {"content": "x"}}')
                elif behaviour == "empty":
                    self._send(200, json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode())
                else:
                    self._send(200, json.dumps(_answer()).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _answer() -> dict:
    return {"id": "x", "object": "chat.completion", "model": "tiny",
            "usage": {"prompt_tokens": 5, "completion_tokens": 3},
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "So \\boxed{4}.", "reasoning_content": "2+2"}}]}


def _config(url: str, run_id: str = "flaky", **openai):
    settings = {"endpoints": [url], "api": "chat", "timeout_s": 0.4, "connect_timeout_s": 2, "max_retries": 2,
                "backoff_s": 0.01, "backoff_max_s": 0.5, "concurrency": 4}
    settings.update(openai)
    return config_from_dict({
        "run_id": run_id, "model": "tiny", "backend": "openai", "samples": 2, "problems": {"sources": ["flaky"]},
        "sampling": {"max_tokens": 16}, "flush_rows": 3, "openai": settings,
    }, "flaky.yaml")


def _rows(run_id: str):
    return db.connect(marts=False).execute(
        "SELECT problem_id, sample_idx, error, completion FROM generations WHERE run_id = ? "
        "ORDER BY problem_id, sample_idx, created_at", [run_id]).fetchall()


def test_each_fault_once_is_retried_and_retry_after_is_waited_out(lake_env):
    write_problems("flaky", ["What is 2+2?"])
    with Server() as server:
        server.plan = list(FAULTS)
        config = _config(server.url, max_retries=len(FAULTS), concurrency=1)
        config.samples = 1
        summary = run_generation(config, progress=False)
    assert [b for _, _, b in server.log] == FAULTS + ["ok"]  # one attempt per fault, then success
    assert summary.errors == 0 and summary.status == "complete"
    ((_, _, error, completion),) = _rows("flaky")
    assert error is None and completion == "So \\boxed{4}."
    times = [t for t, _, _ in server.log]
    after_429 = times[FAULTS.index("429") + 1] - times[FAULTS.index("429")]
    assert after_429 >= 0.3, f"Retry-After: 0.3 not honoured ({after_429:.3f} s)"
    print(f"\nfaults {FAULTS} each retried once; wait after 429 (Retry-After 0.3): {after_429:.2f} s")


def test_persistent_faults_are_bounded_recorded_and_a_rerun_fills_only_them(lake_env):
    prompts = [f"Problem {i}: FAIL-{kind} please." for i, kind in enumerate(FAULTS)]
    prompts += [f"Problem {len(FAULTS) + i}: a healthy one." for i in range(4)]
    write_problems("flaky", prompts)
    with Server(hang_s=0.6) as server:
        started = time.monotonic()
        summary = run_generation(_config(server.url), progress=False)
        first_s = time.monotonic() - started
        first = list(server.log)
        # Every failing sample: exactly 1 try + 2 retries, never more; healthy ones: one request each.
        per_prompt: dict[str, int] = {}
        for _, text, _ in first:
            per_prompt[text] = per_prompt.get(text, 0) + 1
        for i, kind in enumerate(FAULTS):
            assert per_prompt[f"Problem {i}"] == 2 * 3, (kind, per_prompt[f"Problem {i}"])
        assert all(per_prompt[f"Problem {i}"] == 2 for i in range(len(FAULTS), len(prompts)))
        assert summary.status == "complete" and summary.errors == 2 * len(FAULTS)
        errors = {(p, k): e for p, k, e, _ in _rows("flaky")}
        expected = {"500": "http_500", "429": "http_429", "hang": "timeout", "midbody": "connection_error",
                    "malformed": "malformed_response", "empty": "malformed_response"}
        for i, kind in enumerate(FAULTS):
            for k in range(2):
                assert errors[(f"flaky:{i}", k)].startswith(expected[kind]), errors[(f"flaky:{i}", k)]
                assert errors[(f"flaky:{i}", k)].endswith("(gave up after 3 attempts)")
        assert sum(e is None for e in errors.values()) == 8

        server.broken = False  # the servers recover; the rerun asks only for what failed
        again = run_generation(_config(server.url), progress=False)
        second = server.log[len(first):]
    assert sorted(t for _, t, _ in second) == sorted([f"Problem {i}" for i in range(len(FAULTS))] * 2)
    assert again.samples_written == 2 * len(FAULTS) and again.errors == 0
    assert again.units_already_done == 8 and again.status == "complete"
    rows = _rows("flaky")
    good = {(p, k) for p, k, e, _ in rows if e is None}
    assert good == {(f"flaky:{i}", k) for i in range(len(prompts)) for k in range(2)}
    assert len(rows) == 20 + 2 * len(FAULTS)  # append-only: the errored rows stay, superseded
    print(f"\n{len(FAULTS)} persistent faults x 2 samples: {len(first)} requests, first run {first_s:.1f} s; "
          f"rerun sent {len(second)} requests, only for the 12 failed samples")
