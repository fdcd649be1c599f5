"""A verdict must not depend on the machine's load (issue #22): the grader's budget is CPU time of
its worker, so the same pairs graded with a CPU-burning process on every core (several, in fact)
get the same outcomes, undecided reasons included, as on a quiet machine.

With a wall-clock budget this fails: the pairs below cost 0.2-0.6 s of CPU each, and with three
burners per core a worker gets at most a third of a core, so they take more than the 1 s budget
of wall time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from evaluation import grading as G
from evaluation.grading import sandbox

# Symbolic pairs that cost math-verify or sympy a few tenths of a second of CPU (measured cold,
# in a fresh worker), cheap ones, and one that runs past any budget (a tower inside prose).
PAIRS = [
    (r"\int_0^1 x^2\,dx", r"\frac{1}{3}"),
    (r"\sum_{k=1}^{n} k^2", r"\frac{n(n+1)(2n+1)}{6}"),
    (r"\sum_{k=1}^{n} k", r"\frac{n(n+1)}{2}"),
    (r"\sin(x+y)", r"\sin x\cos y+\cos x\sin y"),
    (r"\frac{1}{2}", "0.5"), ("3", "4"), ("12:00", "1:00"), (r"9^{9^{9^{9}}}", "1"),
    ("We get $9^{9^{9^{9}}}$ in the end, believe me, this is long prose here.", "$3^{4}$ and some words, prose only"),
]
BURNERS_PER_CORE = 2


def _fresh_outcomes(single: bool) -> list[str]:
    """Outcomes from fresh workers (forked from the warm zygote) and empty caches, so that both
    runs do the same work."""
    G.canonical_key("x^3 + 7")  # the pool exists
    pool = sandbox._POOL
    with pool.lock:
        idle, pool.idle = pool.idle, []
    for w in idle:
        w.close()
    G._clear_caches()
    if single:
        return [G.grade(g, p).outcome for g, p in PAIRS]
    return [r.outcome for r in G.grade_many(PAIRS)]


def _burn_every_core() -> list[subprocess.Popen]:
    n = BURNERS_PER_CORE * (os.cpu_count() or 1)
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("single", [False, True], ids=["grade_many", "grade"])
def test_verdicts_are_the_same_on_a_loaded_machine(single, monkeypatch):
    monkeypatch.setattr(G, "TIMEOUT_S", 1.0)  # the default budget
    quiet = _fresh_outcomes(single)
    assert quiet[:5] == ["equal"] * 5 and quiet[-4:] == ["not_equal", "unparseable", "refused", "timeout"], quiet
    burners = _burn_every_core()
    try:
        time.sleep(0.5)  # let the scheduler spread them
        start = time.monotonic()
        loaded = _fresh_outcomes(single)
        loaded_s = time.monotonic() - start
    finally:
        for p in burners:
            p.kill()
        for p in burners:
            p.wait()
    assert loaded == quiet, [(pair, a, b) for pair, a, b in zip(PAIRS, quiet, loaded, strict=True) if a != b]
    print(f"\n{len(burners)} burners: same {len(PAIRS)} outcomes, graded in {loaded_s:.1f} s of wall time")
