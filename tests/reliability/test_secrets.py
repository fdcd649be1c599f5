"""The HF token never lands in logs, manifests, the lake, exports, reports or error messages.

A canary token is in the environment of every command (and used as the OpenAI key of a server
that echoes it back in its errors); afterwards every byte under the test's warehouse, dbt's
folders and every captured stdout/stderr is searched for it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest

from tests.generation.conftest import write_problems
from tests.reliability.conftest import cli_env, generation_config, run_cli
from tests.training.sft_data import write_strata
from warehouse import lake

pytestmark = pytest.mark.slow

CANARY = "hf_RELIABILITYcanaryTOKEN0123456789abcd"


class _EchoingServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that lists a model, then answers every POST with 401 and the
    Authorization header it got (a misconfigured proxy does this)."""

    def log_message(self, *args):
        pass

    def _send(self, status: int, data: dict):
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(401, {"error": f"bad key: {self.headers.get('Authorization')}"})


def test_the_token_never_appears_anywhere(lake_env, iso_env, zygote, tiny_llama_dir, tmp_path):
    env = cli_env(**iso_env, HF_TOKEN=CANARY, HUGGING_FACE_HUB_TOKEN=CANARY, HF_HOME=str(tmp_path / "hf_home"))
    outputs = []

    def run(*args, **extra):
        result = run_cli(*args, env={**env, **extra})
        outputs.append((args[0], result.returncode, result.stdout + result.stderr))
        return result

    write_problems("rel", ["What is 2+2?", "What is 3+3?"])
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"problem_id": f"rel:{i}", "completion": "\\boxed{4}"}) + "\n"
                               for i in range(2)))
    assert run("import-generations", str(samples), "--run-id", "imp", "--model", "m").returncode == 0
    config = generation_config(tmp_path / "gen.yaml", tiny_llama_dir, "tok", samples=1)
    pid = zygote.run(["generate", "--config", str(config), "--no-progress"], tmp_path / "gen.log",
                     {**iso_env, "HF_TOKEN": CANARY})
    assert zygote.wait(pid) == 0

    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        openai = tmp_path / "openai.yaml"
        openai.write_text(json.dumps({
            "run_id": "echo", "model": "tiny", "backend": "openai", "samples": 1, "problems": {"sources": ["rel"]},
            "sampling": {"max_tokens": 8}, "openai": {"endpoints": [f"http://127.0.0.1:{server.server_address[1]}/v1"],
                                                      "api": "chat", "api_key_env": "HF_TOKEN", "max_retries": 0}}))
        assert run("generate", "--config", str(openai), "--no-progress").returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    errors = [r for r in _lake_errors() if r]
    assert errors and all(e.startswith("http_401") for e in errors), errors  # the failure is recorded,
    assert all("***" in e for e in errors)  # with the echoed key masked

    write_strata(lake.exports_dir(), n_short=4, n_long=3)
    assert run("export").returncode == 0
    assert run("publish", "--repo-id", "amd-test/x", "--dry-run").returncode == 0
    assert run("publish", "--repo-id", "amd-test/x", HF_HUB_OFFLINE="1").returncode == 2
    run("report")  # no eval runs: may refuse; its output is searched all the same
    run("status")
    # `sql` runs in a session DuckDB keeps away from /proc and the environment.
    for query in ("SELECT * FROM read_text('/proc/self/environ')", "SELECT * FROM read_blob('/proc/self/environ')",
                  "SELECT getenv('HF_TOKEN')"):
        assert run("sql", query).returncode == 2, query

    leaks = [f"{name} (exit {code}) output" for name, code, text in outputs if CANARY in text]
    leaks += [f"generate log {tmp_path / 'gen.log'}" for _ in [0] if CANARY in (tmp_path / "gen.log").read_text()]
    searched = 0
    for path in tmp_path.rglob("*"):  # the warehouse (lake, db, exports, reports), dbt's folders, logs
        if not path.is_file() or path.is_symlink() or path.name == "openai.yaml":  # the config names the var only
            continue
        searched += 1
        data = path.read_bytes()
        if path.suffix == ".parquet":  # compressed pages hide bytes: search the decoded values too
            data += repr(pq.read_table(path).to_pylist()).encode()
        if CANARY.encode() in data:
            leaks.append(str(path))
    assert not leaks, f"token found in: {leaks}"
    print(f"\ntoken canary: {len(outputs)} commands, {searched} files searched, no leak")


def _lake_errors() -> list[str | None]:
    import duckdb

    return [e for (e,) in duckdb.connect().execute(
        f"SELECT error FROM read_parquet('{lake.parquet_glob('generations')}', hive_partitioning = true) "
        "WHERE run_id = 'echo'").fetchall()]
