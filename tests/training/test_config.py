"""Stage configs, `--set` overrides and the accelerate launch for several GPUs or nodes."""

from __future__ import annotations

import json

import pytest
import yaml

from training.config import ACCELERATE_DIR, REPO_DIR, load_config
from warehouse.cli import main
from warehouse.errors import UserError

CONFIGS = REPO_DIR / "training" / "configs"


def test_stage_configs_reproduce_upstream_hyperparameters():
    for name, batch, data, model in (("stage1", 8, "short_cot", "Qwen/Qwen3-0.6B"), ("stage2", 16, "long_cot", "@stage1")):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        sft = cfg["sft"]
        assert cfg["model"] == model and cfg["data"]["config"] == data
        assert cfg["dtype"] == "bfloat16" and cfg["attn_implementation"] == "flash_attention_2"
        assert sft["learning_rate"] == 3e-4 and sft["lr_scheduler_type"] == "cosine_with_min_lr"
        assert sft["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1} and sft["warmup_steps"] == 0.03
        assert sft["num_train_epochs"] == 8 and sft["max_length"] == 32768
        assert sft["per_device_train_batch_size"] == batch
        # upstream: 32 processes (train/stage*.sh:9) x this per-device batch x 1 accumulation step
        assert cfg["global_batch_size"] == 32 * batch
        assert sft["gradient_checkpointing"] is True and sft["max_grad_norm"] == 0.3 and sft["bf16"] is True
        assert cfg["liger"] == "auto"


def test_sft_sections_are_valid_sft_config_arguments():
    from trl import SFTConfig

    for path in CONFIGS.glob("*.yaml"):
        for key in load_config(path)["sft"]:
            assert key in SFTConfig.__dataclass_fields__, f"{path.name}: sft.{key}"


def test_overrides_are_typed_and_dotted():
    cfg = load_config(CONFIGS / "tiny_stage1.yaml", ["model=/m", "sft.max_steps=3", "data.max_rows=5",
                                                     "sft.lr_scheduler_kwargs.min_lr_rate=0.2", "batching=packed",
                                                     "sft.learning_rate=3e-3"])
    assert cfg["model"] == "/m" and cfg["sft"]["max_steps"] == 3 and cfg["data"]["max_rows"] == 5
    assert cfg["sft"]["lr_scheduler_kwargs"] == {"min_lr_rate": 0.2} and cfg["batching"] == "packed"
    assert cfg["sft"]["learning_rate"] == 0.003  # PyYAML alone would give the string "3e-3"


@pytest.mark.parametrize(
    "override, message",
    [
        ("sft.packing=true", "sft.packing: set by this stage from `batching`"),
        ("batching=sorted", "batching: 'sorted' is not one of"),
        ("modle=x", "modle: unknown key"),
        ("data.config=", "data.config: required"),
        ("nokey", "expected KEY=VALUE"),
        ("sft.max_length=abc", "sft.max_length: expected an integer"),
    ],
)
def test_bad_config_values_are_one_line_errors(override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("`", "`")):
        load_config(CONFIGS / "tiny_stage1.yaml", [override])


def test_unknown_sft_argument_is_refused_before_anything_is_recorded(lake_env, capsys):
    code = main(["train", "--config", str(CONFIGS / "tiny_stage1.yaml"), "--set", "sft.warmup_ratio=0.1"])
    assert code == 2
    assert "sft.warmup_ratio: not an SFTConfig argument" in capsys.readouterr().err
    assert not (lake_env / "lake" / "training_runs").exists()


def test_broken_yaml_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: s\nmodel: [unclosed\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "not valid YAML" in err and err.count("\n") == 1


def test_multi_gpu_launches_accelerate_with_the_shipped_config(capsys, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MACHINE_RANK", "2")
    monkeypatch.setenv("REASONLITE_RUN_ID", "stage1-shared")
    assert main(["train", "--config", "training/configs/stage1.yaml", "--gpus", "8", "--nodes", "4",
                 "--set", "sft.max_steps=5", "--dry-run"]) == 0
    cmd = capsys.readouterr().out.split()
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--config_file") + 1] == str(ACCELERATE_DIR / "zero1.yaml")
    assert cmd[cmd.index("--num_processes") + 1] == "32" and cmd[cmd.index("--num_machines") + 1] == "4"
    assert cmd[cmd.index("--machine_rank") + 1] == "2" and cmd[cmd.index("--main_process_ip") + 1] == "10.0.0.1"
    # The workers run this same command (with LOCAL_RANK set they train instead of launching).
    worker = cmd[cmd.index("warehouse.cli"):]
    assert worker[:2] == ["warehouse.cli", "train"] and worker[worker.index("--run-id") + 1] == "stage1-shared"
    assert "sft.max_steps=5" in worker


def test_multi_node_needs_a_shared_run_id_and_master(capsys, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("REASONLITE_RUN_ID", raising=False)
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    assert main(["train", "--config", "training/configs/stage2.yaml", "--nodes", "2", "--dry-run"]) == 2
    assert "REASONLITE_RUN_ID" in capsys.readouterr().err
    monkeypatch.delenv("MASTER_ADDR")
    assert main(["train", "--config", "training/configs/stage2.yaml", "--nodes", "2", "--run-id", "x",
                 "--dry-run"]) == 2
    assert "MASTER_ADDR" in capsys.readouterr().err


def test_shipped_accelerate_configs_parse():
    kinds = {}
    for name in ("ddp", "zero1", "zero3"):
        data = yaml.safe_load((ACCELERATE_DIR / f"{name}.yaml").read_text())
        kinds[name] = (data["distributed_type"], data.get("deepspeed_config", {}).get("zero_stage"))
    assert kinds == {"ddp": ("MULTI_GPU", None), "zero1": ("DEEPSPEED", 1), "zero3": ("DEEPSPEED", 3)}


def test_single_device_dry_run_prints_the_resolved_config(capsys):
    assert main(["train", "--config", "training/configs/tiny_stage2.yaml", "--set", "sft.max_steps=2",
                 "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["model"] == "@tiny_stage1" and cfg["sft"]["max_steps"] == 2


def test_stale_gguf_marker_does_not_make_a_converted_model_quantized(tiny_llama_dir, tmp_path):
    """A GGUF-converted folder (plain safetensors, config still naming the .gguf) must stay trainable."""
    import shutil

    from transformers import AutoModelForCausalLM

    from training.train import _model_config

    folder = tmp_path / "converted"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"dequantize": False, "gguf_file": "x.Q4_1.gguf", "quant_method": "gguf"}
    (folder / "config.json").write_text(json.dumps(config))
    assert AutoModelForCausalLM.from_pretrained(folder).hf_quantizer is not None  # what the Trainer refuses
    model = AutoModelForCausalLM.from_pretrained(folder, config=_model_config(str(folder)))
    assert getattr(model, "hf_quantizer", None) is None
    # With the .gguf file actually present the marker is kept.
    (folder / "x.Q4_1.gguf").write_bytes(b"")
    assert getattr(_model_config(str(folder)), "quantization_config", None)


@pytest.mark.slow
@pytest.mark.parametrize("override, message", [
    ("sft.max_steps=abc", "sft.max_steps: expected int, got 'abc'"),
    ("sft.max_stepz=5", "sft.max_stepz: not an SFTConfig argument"),
    ("sft.bf16=maybe", "sft.bf16: expected bool | None, got 'maybe'"),
    ("model=/nonexistent", "model: /nonexistent: no such folder"),
])
def test_dry_run_makes_the_checks_of_the_real_run(lake_env, tiny_qwen3_dir, override, message):
    """A real process each time: the dry run refuses what the real run refuses, with one line and
    before anything is recorded (the real run refuses it before loading the model)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    reasonlite = Path(sys.executable).with_name("reasonlite")
    for extra in (["--dry-run"], []):
        result = subprocess.run(
            [str(reasonlite), "train", "--config", "training/configs/tiny_stage1.yaml",
             f"--set=model={tiny_qwen3_dir}", f"--set={override}", *extra],
            cwd=REPO_DIR, capture_output=True, text=True, timeout=600, env=dict(os.environ))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not (lake_env / "lake" / "training_runs").exists()


def test_a_hub_id_is_not_taken_for_a_missing_folder(capsys):
    assert main(["train", "--config", "training/configs/tiny_stage1.yaml", "--set", "model=Org/some-model",
                 "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "Org/some-model"


@pytest.mark.parametrize("name, gpus, nodes, accumulation", [
    ("stage1", 8, 4, 1), ("stage1", 8, 1, 4), ("stage1", 1, 1, 32), ("stage1", 2, 2, 8),
    ("stage2", 8, 4, 1), ("stage2", 1, 1, 32), ("stage2", 4, 1, 8),
])
def test_gradient_accumulation_is_derived_from_the_global_batch(name, gpus, nodes, accumulation):
    """Upstream's global batch (256 for stage 1, 512 for stage 2) on whatever GPUs the run gets (#20 item 6)."""
    cfg = load_config(CONFIGS / f"{name}.yaml", gpus=gpus, nodes=nodes)
    assert cfg["sft"]["gradient_accumulation_steps"] == accumulation
    per_device = cfg["sft"]["per_device_train_batch_size"]
    assert gpus * nodes * per_device * accumulation == cfg["global_batch_size"] == cfg["batch"]["global"]


@pytest.mark.parametrize("args, message", [
    (["--gpus", "3"], "global_batch_size: 256 cannot be reached with 3 GPU(s) x 1 node(s) x "
                      "sft.per_device_train_batch_size 8 = 24 sequences per forward pass"),
    (["--gpus", "8", "--nodes", "8"], "global_batch_size: 256 cannot be reached with 8 GPU(s) x 8 node(s)"),
    (["--set", "sft.per_device_train_batch_size=6"], "256 is not a multiple of 6"),
    (["--set", "sft.gradient_accumulation_steps=2"], "sft.gradient_accumulation_steps: derived from global_batch_size"),
    (["--set", "global_batch_size=0"], "global_batch_size: expected a positive integer"),
])
def test_a_combination_that_cannot_reach_the_global_batch_is_one_line(capsys, monkeypatch, args, message):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("REASONLITE_RUN_ID", "stage1-shared")
    assert main(["train", "--config", "training/configs/stage1.yaml", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_launch_and_workers_agree_on_the_batch(capsys, monkeypatch):
    """The launcher says the arithmetic; each worker (same --gpus/--nodes) resolves the same accumulation,
    and refuses to train under a process count it was not derived for."""
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("REASONLITE_RUN_ID", "stage2-shared")
    assert main(["train", "--config", "training/configs/stage2.yaml", "--gpus", "4", "--nodes", "2", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "train: global batch 512 = 4 GPU(s) x 2 node(s) x 16 per device x 4 accumulation step(s)" in out.err
    worker = out.out.split()
    worker = worker[worker.index("warehouse.cli") + 1:]
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert main([*worker, "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["sft"]["gradient_accumulation_steps"] == 4 and cfg["batch"]["global"] == 512
    monkeypatch.setenv("WORLD_SIZE", "16")
    assert main([*worker, "--dry-run"]) == 2
    assert "launched with WORLD_SIZE=16, but --gpus 4 x --nodes 2 = 8" in capsys.readouterr().err


def test_configs_without_a_global_batch_keep_their_accumulation():
    cfg = load_config(CONFIGS / "tiny_stage1.yaml", ["sft.gradient_accumulation_steps=3"], gpus=2)
    assert cfg["global_batch_size"] is None and cfg["sft"]["gradient_accumulation_steps"] == 3
    assert cfg["batch"]["global"] == 2 * 4 * 3
