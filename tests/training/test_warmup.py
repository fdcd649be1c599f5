"""Warmup on short runs: no optimizer step may run at learning rate 0 (the demo trains 3 steps a stage;
transformers' warmup starts at 0, which made the first of them train nothing)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import get_scheduler

from tests.training.sft_data import write_strata
from training.train import _sft_args, shift_warmup
from warehouse import db, lake
from warehouse.cli import main


def _args(tmp_path, steps: int, warmup: float):
    cfg = {"sft": {"learning_rate": 3e-4, "lr_scheduler_type": "cosine_with_min_lr",
                   "lr_scheduler_kwargs": {"min_lr_rate": 0.1}, "warmup_steps": warmup, "max_steps": steps},
           "batching": "padding_free", "data": {}, "config_path": "stage1.yaml"}
    return _sft_args(cfg, tmp_path, cuda=False, liger=False)


def _learning_rates(args, steps: int) -> list[float]:
    """The learning rate each optimizer step uses, with the scheduler the trainer builds from these args."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(steps),
                              num_training_steps=steps, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    shift_warmup(scheduler)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 34, 1000])
def test_no_step_runs_at_learning_rate_zero(tmp_path, steps):
    rates = _learning_rates(_args(tmp_path, steps, 0.03), steps)
    assert min(rates) > 0, rates[:5]


def test_a_warmup_still_ramps_up_and_ends_at_the_schedules_floor(tmp_path):
    args = _args(tmp_path, 1000, 0.03)
    assert args.get_warmup_steps(1000) == 30
    rates = _learning_rates(args, 1000)
    assert rates[0] == pytest.approx(3e-4 / 30)  # the first warmup step is a real one
    assert rates[0] < rates[15] < rates[29] == pytest.approx(3e-4)
    assert rates[-1] == pytest.approx(3e-5, rel=1e-3)  # min_lr_rate 0.1 at the end


@pytest.mark.slow
def test_a_one_step_run_changes_the_weights(lake_env, tiny_qwen3_dir, monkeypatch):
    """End to end through `reasonlite train`: with warmup 0.03 a 1-step run used to train at LR 0."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_strata(lake.exports_dir(), n_short=8, n_long=4)
    assert main(["export"]) == 0
    assert main(["train", "--config", "training/configs/tiny_stage1.yaml", f"--set=model={tiny_qwen3_dir}",
                 "--set=sft.max_steps=1", "--set=sft.per_device_train_batch_size=2", "--run-id", "one"]) == 0
    con = db.connect(read_only=True)
    metrics = json.loads(con.execute("SELECT metrics FROM training_runs WHERE run_id = 'one'").fetchone()[0])
    con.close()
    assert metrics["global_step"] == 1
    assert metrics["init_weights_sha256"] != metrics["final_weights_sha256"]
