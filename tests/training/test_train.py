"""Two-stage SFT on CPU with the tiny configs: real TRL training of a tiny Qwen3 built by the fixtures."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from tests.training.sft_data import write_strata
from warehouse import db, hub, lake
from warehouse.cli import main

STEPS = 10


def training_runs() -> list[dict]:
    con = db.connect(read_only=True)
    result = con.execute("SELECT * FROM training_runs ORDER BY created_at")
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


@pytest.mark.slow
def test_two_stage_sft_trains_reloads_and_records_lineage(lake_env, tiny_qwen3_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_strata(lake.exports_dir(), n_short=40, n_long=24)
    assert main(["export"]) == 0
    export_dir = lake.exports_dir() / "hf_dataset"

    # Stage 1 from the tiny model, then stage 2 from stage 1's checkpoint ("@tiny_stage1" in the config).
    # Small steps keep this under a minute or two on a shared 2-core CPU (the 49K vocabulary dominates).
    common = [f"--set=sft.max_steps={STEPS}", "--set=sft.learning_rate=3e-3",
              "--set=sft.per_device_train_batch_size=2"]
    assert main(["train", "--config", "training/configs/tiny_stage1.yaml", f"--set=model={tiny_qwen3_dir}",
                 *common, "--run-id", "s1"]) == 0
    assert main(["train", "--config", "training/configs/tiny_stage2.yaml", *common, "--run-id", "s2"]) == 0

    runs = {r["run_id"]: r for r in training_runs()}
    assert set(runs) == {"s1", "s2"}
    s1, s2 = runs["s1"], runs["s2"]
    m1, m2 = json.loads(s1["metrics"]), json.loads(s2["metrics"])
    for run, metrics, config in ((s1, m1, "short_cot"), (s2, m2, "long_cot")):
        assert run["status"] == "complete" and run["finished_at"]
        assert run["code_version"] and run["code_version"] != "unknown"
        # "Which data made this checkpoint": the export's fingerprint of the config it trained on.
        assert run["export_fingerprint"] == hub.fingerprint_rows(hub.config_files(export_dir, config))
        assert run["export_path"] == str(export_dir)
        assert json.loads(run["config"])["data"]["config"] == config
        assert metrics["global_step"] == STEPS
        # The loss falls: the last steps' mean is clearly below the first steps'.
        losses = [loss for _, loss in metrics["loss_curve"]]
        assert len(losses) == STEPS
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3, losses
        assert metrics["batching"] == "padding_free" and metrics["num_tokens"] > 0
    assert s1["train_rows"] == 40 and s2["train_rows"] == 24
    assert s1["base_model"] == str(tiny_qwen3_dir)

    # Stage 2 started from stage 1's weights: its base is stage 1's output and the weights it loaded
    # hash to what stage 1 saved (and not to the untrained tiny model).
    assert s2["base_model"] == s1["output_dir"]
    assert m2["parent_run_id"] == "s1"
    assert m2["init_weights_sha256"] == m1["final_weights_sha256"]
    assert m1["init_weights_sha256"] != m1["final_weights_sha256"]
    assert m2["first_loss"] < m1["first_loss"]  # it already knows the format

    # Both checkpoints reload and generate, with our chat template saved beside the weights.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for run in (s1, s2):
        out = Path(run["output_dir"])
        assert json.loads((out / "reasonlite_training.json").read_text())["run_id"] == run["run_id"]
        tokenizer = AutoTokenizer.from_pretrained(out)
        model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
        assert "{% generation %}" in tokenizer.chat_template
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True, return_tensors="pt",
            return_dict=True,
        )
        generated = model.generate(**prompt, max_new_tokens=6, do_sample=False)
        assert generated.shape[1] > prompt["input_ids"].shape[1]
    # The reloaded stage-2 checkpoint is the trained model: on a held-out conversation its loss on the
    # assistant tokens is far below the untrained tiny model's.
    from tests.training.sft_data import example
    from training.config import DEFAULT_CHAT_TEMPLATE
    from training.data import encode

    held_out = example(999, "long_cot", random.Random(42))["messages"]
    encoded = encode([held_out], tokenizer, DEFAULT_CHAT_TEMPLATE.read_text())
    ids, labels = torch.tensor(encoded["input_ids"]), torch.tensor(encoded["labels"])
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir, dtype=torch.float32)
    with torch.no_grad():
        trained_loss = model(input_ids=ids, labels=labels).loss.item()
        base_loss = base(input_ids=ids, labels=labels).loss.item()
    assert trained_loss < base_loss - 1.0, (trained_loss, base_loss)

    # `reasonlite sql`-style question: which data made the stage-2 checkpoint?
    con = db.connect(read_only=True)
    row = con.execute(
        "SELECT export_path, export_fingerprint, base_model FROM training_runs WHERE output_dir = ?",
        [s2["output_dir"]],
    ).fetchone()
    assert row == (str(export_dir), s2["export_fingerprint"], s1["output_dir"])


@pytest.mark.slow
def test_failed_run_is_recorded_as_failed(lake_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_strata(lake.exports_dir(), n_short=4, n_long=4)
    assert main(["export"]) == 0
    missing = tmp_path / "no-such-model"
    missing.mkdir()  # a folder without a model in it
    code = main(["train", "--config", "training/configs/tiny_stage1.yaml", f"--set=model={missing}",
                 "--run-id", "broken"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("reasonlite train: error:")
    (run,) = training_runs()
    assert run["run_id"] == "broken" and run["status"] == "failed"
    assert json.loads(run["metrics"])["error"]


@pytest.mark.slow
def test_training_on_an_export_older_than_the_latest_curate_warns(lake_env, tiny_qwen3_dir, monkeypatch, capsys):
    from tests.training.sft_data import seal_strata
    from training.train import warn_if_export_is_stale

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_strata(lake.exports_dir(), n_short=8, n_long=4)  # published by curate build "test-0"
    assert main(["export"]) == 0
    export_dir = lake.exports_dir() / "hf_dataset"
    warn_if_export_is_stale(export_dir)
    assert "warning" not in capsys.readouterr().err  # the export is of the latest build
    seal_strata(lake.exports_dir(), "test-1")  # a later curate published its strata
    assert main(["train", "--config", "training/configs/tiny_stage1.yaml", f"--set=model={tiny_qwen3_dir}",
                 "--set=sft.max_steps=1", "--set=sft.per_device_train_batch_size=2", "--run-id", "stale"]) == 0
    err = capsys.readouterr().err
    assert "train: warning:" in err and "exported from curate build test-0" in err, err
    assert "the latest curate published build test-1" in err and "run `reasonlite export`" in err
