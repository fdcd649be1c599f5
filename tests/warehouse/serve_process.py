"""`reasonlite serve` as a real process on a free local port, for the serve and browser tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from warehouse import lake

REASONLITE = [str(Path(sys.executable).parent / "reasonlite")]
START_TIMEOUT_S = 120  # the problem index is built before the server answers; a loaded 2-core box is slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_env(root: Path) -> dict[str, str]:
    return {**os.environ, **lake.env_for_root(root)}


@contextlib.contextmanager
def serving(root: Path, port: int | None = None) -> Iterator[str]:
    """Start `reasonlite serve` over the warehouse at root; yields its base URL; stops it after."""
    port = port or free_port()
    proc = subprocess.Popen([*REASONLITE, "serve", "--port", str(port)], env=cli_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"reasonlite serve exited {proc.returncode}: {proc.stderr.read()}")
            try:
                if httpx.get(base + "/runs", timeout=30).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "reasonlite serve did not answer in time"
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
