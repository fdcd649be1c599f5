"""Curation does not depend on the machine's load or on an earlier build's budget (issue #22).

One lake, two warehouses (DuckDB file + exports). Warehouse A is curated first with a CPU-burning
process on every core and a grader budget of 1 ms, so the grader times out on the symbolic answers:
their keys fall back to text, votes split, pairs stay undecided (and say so). Then A is curated
again, quiet, at the default budget. Warehouse B is curated once, quiet. After A's second build
the two agree on pseudo_labels, judged_generations, sft_examples, the funnel and the exported
Parquet files; and a full refresh of A equals them too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from evaluation import grading
from tests.curation import lakes
from tests.curation.test_curation import curate_cli
from warehouse import lake, snapshots

pytestmark = pytest.mark.slow

# Mart -> ORDER BY; what must not depend on the build's load or budget.
MARTS = {
    "pseudo_labels": "problem_id",
    "judged_generations": "run_id, problem_id, sample_idx",
    "sft_examples": "run_id, problem_id, sample_idx",
    "curation_funnel": "run_id, stratum, stage_order",
}

# Problems whose answers only sympy / math-verify can relate (each costs the grader 1-200 ms of
# CPU): (label, teacher answers).
PROBLEMS = {
    # surface forms that share a key only after symbolic canonicalization: the vote needs them
    "square": (None, [r"(x+1)^2"] * 3 + [r"x^2+2x+1"] * 2),
    "poly": (None, [r"\frac{x^2-1}{x-1}"] * 2 + ["x+1"] * 2 + ["1+x"]),
    # label and answers equal only by math-verify
    "trig": (r"\sec^2(y)", [r"\tan^2(y)+1"] * 4),
    "double": (r"1-2\sin^2 x", [r"\cos(2x)"] * 3 + [r"\cos^2 x - \sin^2 x"]),
    "limit": ("1", [r"\lim_{x\to 0}\frac{\sin x}{x}"] * 3 + ["1"]),
    # cheap ones, decided without any worker
    "half": ("1/2", ["0.5", r"\frac{1}{2}", "2/4", "0.5"]),
    "wrong": ("5", ["7"] * 5),
}


def _write_lake() -> None:
    lakes.write_problems([
        {"problem_id": f"train:{name}", "source": "train", "prompt": f"Problem {name}?", "expected_answer": label,
         "difficulty": None, "metadata": None}
        for name, (label, _) in PROBLEMS.items()
    ])
    run = "teacher-medium"
    lakes.write_run(run, "medium")
    lakes.write_generations([
        lakes.sample(run, f"train:{name}", i, "medium", f"Problem {name}?", answer=answer)
        for name, (_, answers) in PROBLEMS.items() for i, answer in enumerate(answers)
    ])


def _use(monkeypatch, root: Path, warehouse: str) -> None:
    """The shared lake, with the DuckDB file, exports and dbt's files of one warehouse."""
    env = lake.env_for_root(root / warehouse)
    env["REASONLITE_LAKE"] = str(root / "lake")
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _curate(*args: str) -> str:
    grading._clear_caches()  # each build grades for itself, as a fresh `reasonlite curate` would
    code, out, err = curate_cli(*args)
    assert code == 0, out + err
    return out


_query = lakes.query_marts


def _state() -> dict:
    marts = {name: _query(f"SELECT * EXCLUDE (_source_file) FROM {name} ORDER BY {order}")
             if name == "judged_generations" else _query(f"SELECT * FROM {name} ORDER BY {order}")
             for name, order in MARTS.items()}
    # Each stratum's rows over all its segments, by key: an incremental build lays segments out
    # differently from a full one (carried + new), the rows must be the same.
    exports = {name: sorted((r for p in snapshots.stratum_segments(lake.exports_dir() / name)
                             for r in pq.read_table(p).to_pylist()),
                            key=lambda r: (r["problem_id"], r["run_id"], r["sample_idx"]))
               for name in snapshots.STRATA_DIRS}
    assert any(exports.values()), "the build exported nothing"
    return {"marts": marts, "exports": exports}


def _burn_every_core() -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]


def test_loaded_short_budget_build_then_quiet_build_equals_quiet_build(tmp_path, monkeypatch):
    _use(monkeypatch, tmp_path, "a")
    _write_lake()

    # A, first build: every core busy, 1 ms of CPU per grader item.
    burners = _burn_every_core()
    try:
        time.sleep(0.3)
        monkeypatch.setattr(grading, "TIMEOUT_S", 0.001)
        _curate()
    finally:
        for p in burners:
            p.kill()
        for p in burners:
            p.wait()
    loaded = _state()
    undecided = _query("SELECT undecided_reason, count(*) FROM grader_undecided_pairs GROUP BY ALL")
    assert dict(undecided).get("timeout", 0) >= 2, undecided
    funnel_undecided = _query("SELECT sum(n_rows) FROM curation_funnel WHERE stage = 'grader_undecided'")[0][0]
    assert funnel_undecided >= 4
    assert _query("SELECT count(*) FROM int_answer_dictionary WHERE key_is_fallback")[0][0] >= 3

    # A, second build: quiet, default budget. Time-outs are graded again, nothing else is.
    monkeypatch.setattr(grading, "TIMEOUT_S", 1.0)
    _curate()
    assert _query("SELECT count(*) FROM int_answer_equivalence WHERE outcome = 'timeout'") == [(0,)]
    assert _query("SELECT count(*) FROM grader_undecided_pairs") == [(0,)]
    incremental = _state()

    # B: one quiet build of the same lake.
    _use(monkeypatch, tmp_path, "b")
    _curate()
    quiet = _state()
    assert loaded != quiet  # the short budget did change the first build (else this proves nothing)
    assert incremental == quiet

    # A full refresh equals the incremental build.
    _use(monkeypatch, tmp_path, "a")
    _curate("--full-refresh")
    assert _state() == quiet
    labels = dict(_query("SELECT problem_id, label_source FROM pseudo_labels"))
    assert labels["train:square"] == labels["train:poly"] == "vote"  # the symbolic keys met in the vote
