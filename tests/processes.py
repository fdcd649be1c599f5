"""Processes in tests: is a pid alive, what did it start, and how a child starts as a shell starts it (Linux /proc)."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie is dead for our purposes."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """The direct children of ``pid``'s main thread."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def descendants(pid: int) -> set[int]:
    """Every process ``pid`` started, and theirs, from any of their threads."""
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in map(int, (task / "children").read_text().split()):
                    if child not in found:
                        found.add(child)
                        todo.append(child)
    return found


def shell_signals() -> None:
    """Popen's preexec_fn: the child starts with Ctrl-C and SIGTERM as a shell gives them (unblocked,
    default). A process inherits ignored or blocked signals, and something in a long pytest session
    leaves the test process so (the fresh-clone suite hung in the sandbox's Ctrl-C tests; alone they
    passed): Python then raises no KeyboardInterrupt, and the CLI takes SIGTERM only where it is the
    default."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
