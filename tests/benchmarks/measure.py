"""Wall time and peak memory of a command run in its own process (tree).

Peak RSS is taken two ways and the larger is reported: the kernel's ``ru_maxrss`` of the child
(``os.wait4``: the largest single process among the child and its waited descendants) and the sum of
RSS over the whole process tree polled every 50 ms with psutil (catches several live processes).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_rss_bytes: int
    stdout: str
    stderr: str

    @property
    def peak_rss_gb(self) -> float:
        return self.peak_rss_bytes / 1024**3

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 1024**2


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):  # a child may exit between listing and reading
            total += p.memory_info().rss
    return total


def measure(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None,
            timeout: float | None = None, echo: bool = False) -> Measured:
    """Run ``cmd`` with ``env`` added to this environment; returns its time, peak RSS and output.

    ``echo`` streams the child's stderr to ours (progress) while still capturing it.
    """
    full_env = {**os.environ, **(env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ps = psutil.Process(proc.pid)
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(ps))
            done.wait(0.05)

    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def pump(stream, sink: list[str], mirror) -> None:
        for line in stream:
            sink.append(line)
            if mirror is not None:
                mirror.write(line)
                mirror.flush()

    threads = [
        threading.Thread(target=poll, daemon=True),
        threading.Thread(target=pump, args=(proc.stdout, out_chunks, None), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err_chunks, sys.stderr if echo else None), daemon=True),
    ]
    for t in threads:
        t.start()
    timer = None
    if timeout:
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
    # wait4 reaps the child and returns its own rusage (not that of every child we ever had).
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if timer:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    for t in threads:
        t.join(timeout=5)
    maxrss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # Linux reports KiB
    return Measured(proc.returncode, seconds, max(peak[0], maxrss), "".join(out_chunks), "".join(err_chunks))
