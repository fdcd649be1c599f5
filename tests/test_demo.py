"""`make demo`, shortened: the whole recipe on the CPU with the real SmolLM2-135M-Instruct."""

import os
import subprocess
import sys

import pytest

from warehouse import db, lake


@pytest.mark.slow
@pytest.mark.demo
@pytest.mark.timeout(3600)  # two demo runs; 20 min was too little on a machine shared with another job
def test_quick_demo_runs_every_stage_and_resumes(lake_env):
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.run([sys.executable, "-m", "warehouse.demo", "--quick"], env=env, capture_output=True,
                          text=True, timeout=3000, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for line in ("ReasonLite demo: summary", "curation funnel", "pseudo-labels:", "demo-base", "demo-student",
                 "report: "):
        assert line in proc.stdout
    con = db.connect(read_only=True)
    samples = con.execute("SELECT count(*) FROM generations WHERE run_id = 'demo-teacher-smollm2'").fetchone()[0]
    # quick size: rounds of 8 problems x 8 samples, more rounds (at most 4) while too few are kept
    assert samples in (64, 128, 192, 256)
    assert con.execute("SELECT count(*) FROM sft_examples").fetchone()[0] >= 2
    stages = {r[0] for r in con.execute("SELECT stage FROM training_runs WHERE status = 'complete'").fetchall()}
    assert {"demo_stage1", "demo_stage2"} <= stages
    # base and student on the held-out split (eval_scores has a row per scoring rule of each run)
    scored = con.execute("SELECT count(DISTINCT run_id) FROM eval_scores WHERE run_id LIKE 'eval-demo-%'").fetchone()[0]
    assert scored == 2
    reports = list(lake.reports_dir().glob("*/report.md"))
    assert reports
    con.close()
    # The demo ends with the paired comparison of base and student, printed with its interval.
    tail = proc.stdout[proc.stdout.rindex("$ reasonlite compare demo-base demo-student"):]
    assert "95 % CI" in tail and "demo_heldout" in tail and "avg@2" in tail

    # Running it again reuses the model and the lake: no new teacher samples, no duplicates.
    again = subprocess.run([sys.executable, "-m", "warehouse.demo", "--quick"], env=env, capture_output=True,
                           text=True, timeout=3000, check=False)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    con = db.connect(read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT (problem_id, sample_idx)) FROM generations "
                       "WHERE run_id = 'demo-teacher-smollm2'").fetchone() == (samples, samples)
    assert "already trained on this exact export" in again.stdout


def test_demo_sizes_draw_one_family_into_disjoint_splits(tmp_path):
    """The full demo trains and evaluates on the same problem family (bare arithmetic), never on the
    same problem; its sources and teacher run are its own, so a lake that ran --quick keeps working."""
    import json

    from generation.word_problems import write_splits
    from warehouse.demo import FULL, QUICK

    paths = write_splits(tmp_path, FULL.train, FULL.heldout, seed=2026, levels=FULL.levels)
    splits = {name: [json.loads(line) for line in path.read_text().splitlines()] for name, path in paths.items()}
    assert [len(splits["train"]), len(splits["heldout"])] == [FULL.train, FULL.heldout]
    assert {row["difficulty"] for rows in splits.values() for row in rows} == {"1"}
    assert not {row["problem"] for row in splits["train"]} & {row["problem"] for row in splits["heldout"]}
    assert len({FULL.train_source, FULL.heldout_source, QUICK.train_source, QUICK.heldout_source}) == 4
    assert FULL.teacher_run != QUICK.teacher_run


def test_training_steps_are_epochs_over_the_kept_examples_capped():
    from warehouse.demo import FULL, QUICK, _train_steps

    config = "training/configs/demo_stage1.yaml"  # batch 8
    assert _train_steps(FULL, 20, config) == FULL.train_epochs * 3
    assert _train_steps(FULL, 10_000, config) == FULL.max_train_steps
    assert _train_steps(FULL, 0, config) == 1
    assert _train_steps(QUICK, 20, config) == QUICK.max_train_steps


def test_a_killed_demo_takes_its_running_step_with_it(tmp_path):
    """`make demo` killed (even by SIGKILL) must not leave a `reasonlite generate` sampling on: each
    step runs with the demo's death signal. Here the step is a sleeping child of a real demo process."""
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from warehouse.demo import _die_with_parent\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], preexec_fn=_die_with_parent)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n")])
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as stat:  # a zombie waiting for init to reap it is gone too
            if stat.read().split(") ")[-1].startswith("Z"):
                return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the step outlived the killed demo")


def test_a_failed_step_is_reported_by_its_own_error_line(lake_env, tmp_path, capsys):
    """The demo used to report whatever log line came last ("[shutdown] Executor: waiting for worker
    exit"); it reports the command's one-line error."""
    from warehouse.demo import _reasonlite
    from warehouse.errors import UserError

    missing = tmp_path / "nope.jsonl"
    with pytest.raises(UserError) as failed:
        _reasonlite("ingest", str(missing), "--source", "x")
    message = str(failed.value)
    assert message.startswith("step `reasonlite ingest` failed (exit 2): reasonlite ingest: error:"), message
    assert "nope.jsonl" in message
