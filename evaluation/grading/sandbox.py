"""Bounded execution: the symbolic work (``parse``) and math-verify calls run in worker processes
forked from a warm "zygote", each item under a budget of the worker's CPU time (so a verdict does
not depend on the machine's load), with a kill switch, a wall-clock safety net against a hung
worker, fan-out over several workers, and an in-process fallback where processes are unavailable."""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import settings
from .common import _REFUSED, _TIMED_OUT

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- bounded execution
# Workers are forked from a "zygote": a fresh interpreter (started with subprocess, so the
# caller's __main__ is never re-imported and daemonic processes may use it too) that imports
# sympy and math-verify once. Each item runs under a CPU-time budget: the worker stops itself
# (SIGPROF), the caller SIGKILLs one whose CPU time runs on inside C code, and a worker that
# timed out is replaced (~20 ms: its caches may hold half-built state). Workers talk to us over a
# Unix socket and prove themselves with a random token.

_WARMUP = [r"(x+1, y^2)", r"\begin{pmatrix}1&x\\3&4\end{pmatrix}", r"x^2+y^2=1", r"1<x\le 3", r"\sin^2 x+f(x)"]


_OPS: dict = {}


def _ops() -> dict:
    """What a worker can be asked to do (imported on first use: the parent needs no sympy)."""
    if not _OPS:
        from .mathverify import _mv_verify, _mv_verify_response
        from .parse import _symbolic_info

        _OPS.update(info=_symbolic_info, verify=_mv_verify, verify_response=_mv_verify_response)
    return _OPS


class _CpuBudget:
    """A per-call budget of worker CPU seconds shared by the call's stages. Waiting for a free
    worker or for one to start costs none of it: load makes a call slower, never shorter."""

    def __init__(self, seconds: float):
        self._left = seconds
        self._lock = threading.Lock()

    def left(self) -> float:
        return self._left

    def spend(self, seconds: float) -> None:
        with self._lock:
            self._left -= seconds


def _item_budget(budget: _CpuBudget | None) -> float:
    return settings.TIMEOUT_S if budget is None else min(settings.TIMEOUT_S, budget.left())


_START_TIMEOUT_S = 300.0  # a cold zygote imports sympy + math-verify once (slow on a loaded machine)
_CHUNK = 128
_POLL_S = 0.05  # how often the caller looks at a busy worker's CPU time
_KILL_GRACE_S = 0.25  # CPU past the budget before the caller kills (the worker stops itself first)
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class _OutOfCpu(BaseException):
    """Raised in a worker by SIGPROF when an item has used its CPU budget. A BaseException, so
    that no library's ``except Exception`` mistakes it for a parse failure."""


_ARMED = False  # SIGPROF raises only while an item runs


def _on_sigprof(signum, frame) -> None:
    if _ARMED:
        raise _OutOfCpu


def _run_item(op: str, args: tuple, budget_s: float):
    """One item under a CPU-time budget, in a worker: its result or ``_TIMED_OUT``."""
    import signal

    global _ARMED
    start = time.process_time()
    try:
        try:
            _ARMED = True
            signal.setitimer(signal.ITIMER_PROF, max(budget_s, 1e-3))
            res = _ops()[op](*args)
        finally:
            _ARMED = False
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _OutOfCpu:
        _ARMED = False
        signal.setitimer(signal.ITIMER_PROF, 0)
        return _TIMED_OUT
    except Exception:  # noqa: BLE001 - one bad item must not kill the batch
        res = None
    # A library that swallowed the signal still overran: the verdict must not depend on that.
    return _TIMED_OUT if time.process_time() - start >= budget_s else res


def _worker_main(conn) -> None:
    import signal

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    signal.signal(signal.SIGPROF, _on_sigprof)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        op, batch, budget_s = msg
        for args in batch:
            res = _run_item(op, args, budget_s)
            conn.send((res, time.process_time()))
            if res == _TIMED_OUT:
                return  # the caller forks a fresh worker for the rest


def _cpu_seconds(pid: int) -> float | None:
    """user + system CPU time of a process, from /proc (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def _zygote_main() -> None:
    import signal
    import socket
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    from .mathverify import _mv_verify
    from .parse import _symbolic_info

    for s in _WARMUP:  # import the symbolic stack and warm ANTLR's caches before forking
        _symbolic_info(s)
    _mv_verify(["$x^2+y^2=1$"], ["$(1, 2)$"])
    for line in sys.stdin:
        address, token = line.split()
        if os.fork() == 0:
            try:
                os.close(0)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(bytes.fromhex(address))
                conn = Connection(sock.detach())
                conn.send_bytes(token.encode())
                conn.send((os.getpid(), time.process_time()))
                _worker_main(conn)
            finally:
                os._exit(0)


class _Zygote:
    def __init__(self):
        import subprocess

        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, *[p for p in sys.path if p]]))
        code = f"import importlib; importlib.import_module({__name__!r})._zygote_main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        self.lock = threading.Lock()

    def spawn(self, address: bytes, token: str) -> None:
        with self.lock:
            self.proc.stdin.write(f"{address.hex()} {token}\n".encode())
            self.proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()


class _Worker:
    def __init__(self, zygote: _Zygote):
        import secrets
        import socket
        from multiprocessing.connection import Connection

        address = b"\0reasonlite-grader-" + secrets.token_hex(8).encode()  # Linux abstract socket
        token = secrets.token_hex(16)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
            srv.bind(address)
            srv.listen(1)
            srv.settimeout(0.2)
            zygote.spawn(address, token)
            start = time.monotonic()
            while True:
                try:
                    sock, _ = srv.accept()
                    break
                except TimeoutError:
                    if zygote.proc.poll() is not None or time.monotonic() - start > _START_TIMEOUT_S:
                        raise RuntimeError("grader worker did not start") from None
        sock.settimeout(None)
        self.conn = Connection(sock.detach())
        if not self.conn.poll(_START_TIMEOUT_S) or self.conn.recv_bytes() != token.encode():
            self.conn.close()
            raise RuntimeError("grader worker failed its handshake")
        self.pid, self.cpu_s = self.conn.recv()  # cpu_s: its CPU time when it last reported

    def close(self, kill: bool = False) -> None:
        import signal

        try:
            if kill:
                os.kill(self.pid, signal.SIGKILL)
            else:
                self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.conn.close()


class _Pool:
    """Up to ``size`` warm worker processes, lent to one caller at a time."""

    def __init__(self, size: int):
        if __name__ == "__main__" or not sys.platform.startswith("linux"):
            raise RuntimeError("worker processes need Linux and an importable grader module")
        self.zygote = _Zygote()
        self.size = size
        self.sem = threading.BoundedSemaphore(size)
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.pid = os.getpid()
        self.cpu_seconds = 0.0  # worker CPU spent on items, for worker_cpu_seconds()

    def run(self, op: str, items: list[tuple], budget: _CpuBudget | None) -> list:
        results: list = []
        with self.sem:
            with self.lock:
                w = self.idle.pop() if self.idle else None
            try:
                while len(results) < len(items):
                    if _item_budget(budget) <= 0:
                        results += [_TIMED_OUT] * (len(items) - len(results))
                        break
                    if w is None:
                        w = _Worker(self.zygote)
                    # Under a per-call budget, one item at a time: each is sent what is left.
                    chunk = items[len(results): len(results) + (1 if budget is not None else _CHUNK)]
                    w.conn.send((op, chunk, _item_budget(budget)))
                    for _ in chunk:
                        res = self._wait(w, budget)
                        results.append(res)
                        if res == _TIMED_OUT:
                            w.close(kill=True)  # it stops itself after a timeout; be sure
                            w = None
                            break
            finally:
                if w is not None:
                    with self.lock:
                        self.idle.append(w)
        return results

    def _wait(self, w: _Worker, budget: _CpuBudget | None):
        """The worker's next result; ``_TIMED_OUT`` if its CPU time for the item runs past the
        budget (stuck in C code, where the worker's own signal cannot stop it), it dies, or it
        hangs for settings.WALL_SAFETY_S."""
        limit = _item_budget(budget) + _KILL_GRACE_S
        started = time.monotonic()
        while not w.conn.poll(_POLL_S):
            cpu = _cpu_seconds(w.pid)
            if cpu is None or cpu - w.cpu_s > limit or time.monotonic() - started > settings.WALL_SAFETY_S:
                if cpu is not None:
                    self._spent(budget, cpu - w.cpu_s)
                return _TIMED_OUT
        try:
            res, cpu = w.conn.recv()
        except (EOFError, OSError):
            return _TIMED_OUT  # it died on this item (out of memory, ...): a resource ran out
        self._spent(budget, cpu - w.cpu_s)
        w.cpu_s = cpu
        return res

    def _spent(self, budget: _CpuBudget | None, seconds: float) -> None:
        if budget is not None:
            budget.spend(seconds)
        with self.lock:
            self.cpu_seconds += seconds

    def worker_pids(self) -> list[int]:
        with self.lock:
            return [w.pid for w in self.idle]

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for w in idle:
            w.close()
        self.zygote.close()


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()
_INLINE_REASON: str | None = None


def _get_pool() -> _Pool | None:
    global _POOL
    if settings.ISOLATION == "inline" or _INLINE_REASON:
        return None
    if multiprocessing.current_process().daemon:
        return None  # a pool worker already is the unit of parallelism: no processes of our own
    with _POOL_LOCK:
        if _POOL is not None and _POOL.pid == os.getpid() and _POOL.zygote.proc.poll() is not None:
            _POOL.close()  # the zygote died (OOM killer?): start afresh
            _POOL = None
        if _POOL is None or _POOL.pid != os.getpid():  # never reuse a parent's workers after fork
            _POOL = _Pool(settings.MAX_WORKERS)
        return _POOL


def _run_bounded(op: str, args: list[tuple], budget: _CpuBudget | None = None) -> list:
    """``_OPS[op](*a)`` for each ``a``, each within settings.TIMEOUT_S of CPU (and the call's budget)."""
    global _INLINE_REASON
    if not args:
        return []
    try:
        pool = _get_pool()
        if pool is not None:
            n = min(pool.size, len(args) // (settings.PARALLEL_MIN // 2) or 1)
            if n <= 1:
                return pool.run(op, args, budget)
            chunks = [args[i::n] for i in range(n)]  # interleaved: equal work per worker
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix="grader") as ex:
                parts = list(ex.map(lambda c: pool.run(op, c, budget), chunks))
            out = [None] * len(args)
            for i, part in enumerate(parts):
                out[i::n] = part
            return out
    except (OSError, RuntimeError, ValueError) as e:
        _INLINE_REASON = repr(e)
        log.warning("grader: worker processes unavailable (%s); running inline", e)
    from . import parse

    out = []
    for a in args:
        limit = _item_budget(budget)
        if limit <= 0:
            out.append(_TIMED_OUT)
        elif (op == "verify" and any(parse._risky(x) for side in a for x in side)
              or op == "verify_response" and any(parse._risky(x) for x in a)):
            out.append(_REFUSED)  # inline there is no kill switch: skip what could hang sympy
        else:
            start = time.thread_time()  # this thread's CPU: other threads' work is not ours
            try:
                res = _ops()[op](*a)
            except Exception:  # noqa: BLE001
                res = None
            used = time.thread_time() - start
            if budget is not None:
                budget.spend(used)
            out.append(_TIMED_OUT if used >= limit else res)
    return out


def worker_cpu_seconds() -> float:
    """CPU seconds the current worker processes have spent on items (tests and benchmarks:
    the budget is CPU, so this is what a bound is checked against)."""
    pool = _POOL
    return pool.cpu_seconds if pool is not None and pool.pid == os.getpid() else 0.0


def shutdown() -> None:
    """Stop the zygote and worker processes (they restart on demand)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None and pool.pid == os.getpid():
        pool.close()


atexit.register(shutdown)
