"""`reasonlite publish`: everything up to the network call, offline; the token never shows."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.training.sft_data import write_strata
from warehouse import hub, lake

CANARY = "hf_CANARYtokenDoNotLeak1234567890"


@pytest.fixture
def exported(lake_env):
    write_strata(lake.exports_dir(), n_short=6, n_long=4)
    hub.export(max_shard_bytes=8 * 1024, log=lambda *_: None)
    return lake.exports_dir() / "hf_dataset"


def run_cli(args, lake_env, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("REASONLITE_")})
    env["HF_HOME"] = str(lake_env / "hf_home")  # no login cache from this machine
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "warehouse.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_dry_run_lists_what_would_go_where_without_network(exported, lake_env):
    result = run_cli(
        ["publish", "--repo-id", "amd-test/reasonlite-sft", "--private", "--revision", "v1", "--dry-run"],
        lake_env, HF_TOKEN=CANARY, HF_HUB_OFFLINE="1",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "private dataset repo amd-test/reasonlite-sft" in out
    files = hub._publish_files(exported)
    assert {p.relative_to(exported).as_posix() for p in files} >= {"README.md", "lineage.json"}
    for path in files:
        rel = path.relative_to(exported).as_posix()
        assert f"https://huggingface.co/datasets/amd-test/reasonlite-sft/blob/v1/{rel}" in out
    assert f"would upload {len(files)} files" in out
    assert "token from HF_TOKEN" in out
    assert CANARY not in out + result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("mode", ["offline", "closed-port"])
def test_publish_fails_cleanly_offline_and_never_shows_the_token(exported, lake_env, mode):
    env = {"HF_TOKEN": CANARY}
    if mode == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    result = run_cli(["publish", "--repo-id", "amd-test/reasonlite-sft"], lake_env, **env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert lines[0].startswith("reasonlite publish: error: publish to amd-test/reasonlite-sft failed:")
    assert CANARY not in result.stderr
    # At huggingface_hub's debug verbosity (request logs, retries) the token still never shows.
    debug = run_cli(["publish", "--repo-id", "amd-test/reasonlite-sft"], lake_env, HF_DEBUG="1", **env)
    assert debug.returncode == 2
    assert CANARY not in debug.stdout + debug.stderr


class _ReflectingHub(BaseHTTPRequestHandler):
    """A broken server that echoes the Authorization header into its error: the CLI must scrub it."""

    seen: list[str] = []

    def _reply(self):
        auth = self.headers.get("authorization", "")
        self.seen.append(f"{self.command} {self.path}")
        body = json.dumps({"error": f"Invalid credentials in header {auth}"}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _reply

    def log_message(self, *args):
        pass


def test_error_from_the_hub_is_scrubbed_of_the_token(exported, lake_env):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ReflectingHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_cli(
            ["publish", "--repo-id", "amd-test/reasonlite-sft"], lake_env,
            HF_TOKEN=CANARY, HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
        )
    finally:
        server.shutdown()
    assert result.returncode == 2
    assert any("/api/repos/create" in s for s in _ReflectingHub.seen)  # it did reach the (fake) Hub
    assert "failed" in result.stderr and "***" in result.stderr
    assert CANARY not in result.stdout + result.stderr


def test_publish_without_token_or_export_or_with_bad_repo_id(lake_env):
    result = run_cli(["publish", "--repo-id", "amd-test/x"], lake_env)
    assert result.returncode == 2 and "run `reasonlite export` first" in result.stderr
    write_strata(lake.exports_dir(), n_short=3, n_long=2)
    hub.export(log=lambda *_: None)
    result = run_cli(["publish", "--repo-id", "amd-test/x"], lake_env)
    assert result.returncode == 2 and "no Hugging Face token" in result.stderr
    result = run_cli(["publish", "--repo-id", "no-org-name", "--dry-run"], lake_env)
    assert result.returncode == 2 and "expected ORG/NAME" in result.stderr
    result = run_cli(["publish", "--repo-id", "org/bad name!", "--dry-run"], lake_env)
    assert result.returncode == 2 and "--repo-id" in result.stderr and "Traceback" not in result.stderr
