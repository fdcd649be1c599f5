"""Wall time and peak memory of a command run in its own process (tree).

Peak RSS is taken two ways and the larger is reported:

* the kernel's ``ru_maxrss`` over the command and its waited descendants, read by a tiny launcher
  process (``python tests/benchmarks/measure.py --rusage-out F -- cmd ...``). The launcher is
  needed because Linux carries a parent's RSS at fork into the child's ``ru_maxrss``: measured
  straight from a benchmark driver that holds a big lake chunk in memory, every child would
  "peak" at least at the driver's size. The launcher is small when it forks the command.
* the sum of PSS over the command's process tree (launcher excluded), polled every 100 ms with
  psutil, which also counts several processes alive at once (vLLM's engine and workers, the
  grader's forked workers) without counting their shared pages twice.

Bytes read and written come from the launcher's ``/proc/self/io`` before and after the command:
Linux adds a reaped child's I/O counters (its own and those of the descendants it reaped) to its
parent's, so the difference is the whole tree's. ``rchar``/``wchar`` count every byte passed to
read/write calls (page-cache hits included), ``read_bytes``/``write_bytes`` what reached storage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_rss_bytes: int
    stdout: str
    stderr: str
    maxrss_bytes: int = 0  # kernel ru_maxrss of the largest single process
    polled_bytes: int = 0  # largest polled PSS sum over the tree
    io: dict[str, int] | None = None  # rchar, wchar, read_bytes, write_bytes of the tree (Linux)
    cpu_seconds: float | None = None  # user + system CPU time of the tree (waited-for descendants)

    @property
    def peak_rss_gb(self) -> float:
        return self.peak_rss_bytes / 1024**3

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 1024**2


def _memory(p: psutil.Process) -> int:
    """PSS where the kernel gives it (shared pages split between the processes sharing them, so
    forked workers are not counted twice), else RSS."""
    try:
        return p.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return p.memory_info().rss


def _tree_memory(root: psutil.Process) -> int:
    total = 0
    try:
        procs = root.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):  # a child may exit between listing and reading
            total += _memory(p)
    return total


def measure(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None,
            timeout: float | None = None, echo: bool = False) -> Measured:
    """Run ``cmd`` with ``env`` added to this environment; returns its time, peak RSS and output.

    ``echo`` streams the child's stderr to ours (progress) while still capturing it. On timeout the
    whole tree is killed and the return code is -9.
    """
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        usage_path = Path(tmp) / "rusage.json"
        launcher = [sys.executable, str(Path(__file__).resolve()), "--rusage-out", str(usage_path), "--", *cmd]
        started = time.perf_counter()
        proc = subprocess.Popen(launcher, env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        root = psutil.Process(proc.pid)
        peak = [0]
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _tree_memory(root))
                done.wait(0.1)

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
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # the launcher leads its own session: the whole tree goes
            proc.wait()
        seconds = time.perf_counter() - started
        done.set()
        for t in threads:
            t.join(timeout=5)
        maxrss, io, cpu = 0, None, None
        with contextlib.suppress(OSError, ValueError, KeyError):
            usage = json.loads(usage_path.read_text())
            maxrss, io, cpu = int(usage["maxrss_bytes"]), usage.get("io"), usage.get("cpu_seconds")
    returncode = -9 if timed_out else proc.returncode
    return Measured(returncode, seconds, max(peak[0], maxrss), "".join(out_chunks), "".join(err_chunks),
                    maxrss_bytes=maxrss, polled_bytes=peak[0], io=io, cpu_seconds=cpu)


IO_FIELDS = ("rchar", "wchar", "read_bytes", "write_bytes")


def _self_io() -> dict[str, int] | None:
    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:
        return None
    values = dict(line.split(": ", 1) for line in lines if ": " in line)
    return {k: int(values[k]) for k in IO_FIELDS if k in values}


def _launch(argv: list[str]) -> int:
    """The launcher: run the command, then record the children's ru_maxrss."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--rusage-out", required=True)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    before = _self_io()
    rc = subprocess.call(cmd)  # stdout/stderr inherited: the measuring side reads them
    after = _self_io()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB
    io = {k: after[k] - before[k] for k in after} if before and after else None
    Path(args.rusage_out).write_text(json.dumps({"maxrss_bytes": usage.ru_maxrss * scale, "io": io,
                                                 "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3)}))
    return rc


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1:]))
