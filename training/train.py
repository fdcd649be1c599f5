"""One SFT run with TRL's SFTTrainer, recorded in the lake's ``training_runs``.

Beyond the upstream recipe (TRL SFT, no packing, pad to the longest in a batch of 8, loss on every
token): labels come from our chat template's generation markers (loss on the trained assistant turn
only, its ``<think>`` included), and batches are padding-free (sequences flattened into one row with
restarting ``position_ids``; the attention kernel keeps them apart) or bfd-packed.
"""

from __future__ import annotations

import functools

import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from training import data as train_data
from training.config import DEFAULT_CHAT_TEMPLATE, resolve_path
from warehouse import hub, lake
from warehouse.errors import UserError

LINEAGE_FILE = "reasonlite_training.json"
MAX_CURVE_POINTS = 500


def new_run_id(stage: str) -> str:
    import uuid

    return f"{stage}-{lake.now_utc():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def resolve_model(ref: str) -> tuple[str, str | None]:
    """A model reference as a loadable path or id, and the training run it came from (for ``@stage``)."""
    if ref.startswith("@"):
        from warehouse import db

        stage = ref[1:]
        con = db.connect(read_only=True)
        row = con.execute(
            "SELECT run_id, output_dir FROM training_runs WHERE stage = ? AND status = 'complete' "
            "ORDER BY finished_at DESC LIMIT 1",
            [stage],
        ).fetchone()
        con.close()
        if row is None:
            raise UserError(f"model: {ref}: no finished training run of stage {stage!r} in the lake; train it first")
        run_id, output_dir = row
        if not (Path(output_dir) / "config.json").exists():
            raise UserError(f"model: {ref}: run {run_id}'s checkpoint {output_dir} is missing")
        return output_dir, run_id
    path = resolve_path(ref)
    return (str(path), None) if path.exists() else (ref, None)


def output_dir_for(cfg: dict[str, Any], run_id: str) -> Path:
    configured = cfg.get("output_dir")
    if not configured:
        return lake.checkpoints_dir() / cfg["stage"] / run_id
    path = Path(str(configured).format(stage=cfg["stage"], run_id=run_id)).expanduser()
    return path if path.is_absolute() else lake.checkpoints_dir() / path


def weights_fingerprint(model) -> str | None:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes): equal means same weights.

    None when parameters are sharded (ZeRO-3), where no process holds them all.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if getattr(tensor, "ds_id", None) is not None or tensor.numel() == 0 and "weight" in name:
            return None
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _downsample(points: list, limit: int = MAX_CURVE_POINTS) -> list:
    if len(points) <= limit:
        return points
    step = len(points) / limit
    picked = [points[int(i * step)] for i in range(limit)]
    return picked[:-1] + [points[-1]]


def _shifted(schedule, step: int) -> float:
    return schedule(step + 1)


def shift_warmup(scheduler) -> None:
    """transformers' warmup starts at learning rate 0, so the first optimizer step trains nothing (a
    third of the demo's 3 steps). Shift the schedule one step forward: a warmup of W steps then
    ramps 1/W, 2/W, ... 1 (a ratio rounds up to at least one such step), and the last step lands on
    the schedule's end value."""
    from torch.optim.lr_scheduler import LambdaLR

    if not isinstance(scheduler, LambdaLR):
        return
    scheduler.lr_lambdas = [functools.partial(_shifted, f) for f in scheduler.lr_lambdas]
    for group, base, schedule in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas,
                                     strict=True):
        group["lr"] = base * schedule(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def _trainer_class():
    from trl import SFTTrainer

    class WarmupShiftedSFTTrainer(SFTTrainer):
        def create_scheduler(self, num_training_steps, optimizer=None):
            created = self.lr_scheduler is None
            scheduler = super().create_scheduler(num_training_steps, optimizer)
            if created:
                shift_warmup(scheduler)
            return scheduler

    return WarmupShiftedSFTTrainer


def _sft_args(cfg: dict[str, Any], out: Path, cuda: bool, liger: bool):
    from trl import SFTConfig

    sft = dict(cfg["sft"])
    max_length = sft.pop("max_length", None)
    batching = cfg["batching"]
    kwargs: dict[str, Any] = {
        "output_dir": str(out),
        "report_to": "none",
        "use_cpu": not cuda,
        "assistant_only_loss": False,  # the labels column already masks everything but the trained turn
        "use_liger_kernel": liger,
        "dataset_num_proc": cfg["data"].get("num_proc"),
    }
    if batching == "padding_free":
        # Sequences were truncated while tokenizing; TRL refuses max_length without packing here.
        kwargs.update(padding_free=True, packing=False, max_length=None)
    elif batching == "packed":
        kwargs.update(packing=True, packing_strategy="bfd", max_length=max_length)
    else:  # upstream: pad to the longest sequence of each batch
        kwargs.update(padding_free=False, packing=False, max_length=max_length)
    kwargs.update(sft)
    try:
        return SFTConfig(**kwargs)
    except (ValueError, TypeError) as err:
        raise UserError(f"{cfg['config_path']}: sft: {str(err).splitlines()[0]}") from None


def _value_matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a declared SFTConfig type; types we do not model are left to TRL."""
    import enum
    import types
    import typing

    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_value_matches(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or value in {m.value for m in hint}
    if hint in (list, tuple) or origin in (list, tuple):
        return isinstance(value, list | tuple)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True


def check_sft_keys(cfg: dict[str, Any]) -> None:
    """Every ``sft:`` key is an SFTConfig argument of the declared type (``max_steps: abc`` fails here,
    not in the middle of the Trainer)."""
    import typing

    import trl
    from trl import SFTConfig

    hints = typing.get_type_hints(SFTConfig)
    for key, value in cfg["sft"].items():
        if key not in SFTConfig.__dataclass_fields__:
            raise UserError(f"{cfg['config_path']}: sft.{key}: not an SFTConfig argument (trl {trl.__version__})")
        hint = hints.get(key, Any)
        if not _value_matches(value, hint):
            wanted = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise UserError(f"{cfg['config_path']}: sft.{key}: expected {wanted}, got {value!r}")


def _looks_like_local_path(ref: str) -> bool:
    # "org/name" is a Hub id; anything absolute, relative to here, or deeper is a folder.
    return ref.startswith(("/", ".", "~")) or ref.count("/") > 1


def check_model(cfg: dict[str, Any]) -> None:
    """A model given as a folder must exist (before TRL calls it an invalid Hub repo id)."""
    ref = cfg["model"]
    if ref.startswith("@") or resolve_path(ref).exists() or not _looks_like_local_path(ref):
        return
    raise UserError(f"{cfg['config_path']}: model: {ref}: no such folder")


def preflight(cfg: dict[str, Any]) -> None:
    """The checks a run makes before it records anything or loads a model; `train --dry-run` makes them too."""
    check_sft_keys(cfg)
    check_model(cfg)


def check_export_fingerprint(export_dir: Path, config: str) -> str:
    """The fingerprint of the rows in the config's shards (:func:`warehouse.hub.fingerprint_rows`),
    refused when it is not the one export recorded: the data changed after export."""
    files = train_data.data_files(export_dir, config)
    exported = (hub.read_lineage(export_dir) or {}).get("configs", {}).get(config, {})
    if exported.get("fingerprint") and exported.get("fingerprint_method") != hub.FINGERPRINT_METHOD:
        raise UserError(f"{export_dir}: data/{config} was fingerprinted by an older `reasonlite export` "
                        f"({exported.get('fingerprint_method', 'file hashes')}); run `reasonlite export` again")
    fingerprint = hub.fingerprint_rows(files)
    if exported.get("fingerprint") and exported["fingerprint"] != fingerprint:
        raise UserError(f"{export_dir}: data/{config} changed since export (fingerprint of its rows "
                        f"{fingerprint[:16]}, lineage.json says {exported['fingerprint'][:16]})")
    return fingerprint


def warn_if_export_is_stale(export_dir: Path) -> None:
    """Warn when a curate published other strata after this export was made from an earlier build."""
    from warehouse import snapshots

    exported = (hub.read_lineage(export_dir) or {}).get("curation_build")
    latest = snapshots.published_build() or {}
    if exported and latest.get("build_id") and exported != latest["build_id"]:
        print(f"train: warning: {export_dir} was exported from curate build {exported}; the latest curate "
              f"published build {latest['build_id']} (finished {latest.get('finished_at', '?')}): run "
              "`reasonlite export` to train on the current curation", file=sys.stderr)


def _attn_implementation(cfg: dict[str, Any], cuda: bool, log) -> str:
    wanted = cfg["attn_implementation"]
    if wanted == "flash_attention_2" and (not cuda or importlib.util.find_spec("flash_attn") is None):
        # SDPA keeps padding-free batches correct (transformers builds a block-diagonal mask from the
        # restarting position_ids), at the cost of materialising that mask.
        log(f"train: flash_attention_2 unavailable ({'no CUDA' if not cuda else 'flash-attn not installed'}); using sdpa")
        return "sdpa"
    return wanted


def _model_config(model_path: str):
    """The model's config, minus a stale GGUF ``quantization_config``.

    A folder converted from GGUF (SmolLM2 from its PyPI wheel) holds plain dequantized safetensors but
    its config.json may still name the GGUF file; transformers then treats the model as quantized and
    the Trainer refuses to fine-tune it. With no .gguf file in the folder the marker is meaningless.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    quant = getattr(config, "quantization_config", None)
    method = quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)
    if str(method) == "gguf" and Path(model_path).is_dir() and not any(Path(model_path).glob("*.gguf")):
        del config.quantization_config
    return config


def _liger(cfg: dict[str, Any], cuda: bool) -> bool:
    if cfg["liger"] == "auto":
        return cuda and importlib.util.find_spec("liger_kernel") is not None
    return bool(cfg["liger"])


def run(cfg: dict[str, Any], run_id: str | None = None, log=print) -> dict[str, Any]:
    """Train one stage; returns the final ``training_runs`` record."""
    import torch

    preflight(cfg)  # before anything is recorded: a typo is a config error, not a failed run
    run_id = run_id or new_run_id(cfg["stage"])
    main = is_main_process()
    cuda = torch.cuda.is_available()
    model_path, parent_run = resolve_model(cfg["model"])
    out = output_dir_for(cfg, run_id)
    export_dir = train_data.export_path(cfg["data"].get("export"))
    fingerprint = check_export_fingerprint(export_dir, cfg["data"]["config"])
    if main:
        warn_if_export_is_stale(export_dir)
    chat_template_path = resolve_path(cfg["chat_template"]) if cfg["chat_template"] else DEFAULT_CHAT_TEMPLATE
    if not chat_template_path.exists():
        raise UserError(f"{cfg['config_path']}: chat_template: {chat_template_path} not found")
    chat_template = chat_template_path.read_text()
    resolved = {**cfg, "resolved": {"model": model_path, "parent_run_id": parent_run, "chat_template": str(chat_template_path)}}
    record_fields = dict(
        stage=cfg["stage"],
        base_model=model_path,
        output_dir=str(out),
        export_path=str(export_dir),
        export_fingerprint=fingerprint,
        config=resolved,
        code_version=lake.code_version(),
    )
    if main:
        lake.write_record("training_runs", run_id, status="running", **record_fields)
    started = time.time()
    try:
        result = _train(cfg, run_id, model_path, out, export_dir, chat_template, cuda, log)
    except BaseException as err:
        if main:
            lake.write_record(
                "training_runs", run_id, status="failed", finished_at=lake.now_utc().isoformat(),
                metrics={"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                         "wall_s": round(time.time() - started, 1)},
            )
        raise
    if not main:
        return {}
    metrics = {**result["metrics"], "wall_s": round(time.time() - started, 1), "parent_run_id": parent_run}
    lineage = {"run_id": run_id, **record_fields, "train_rows": result["train_rows"], "metrics": metrics}
    (out / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, sort_keys=True, default=str))
    record = lake.write_record(
        "training_runs", run_id, status="complete", train_rows=result["train_rows"], metrics=metrics,
        finished_at=lake.now_utc().isoformat(), **record_fields,
    )
    log(f"train: run {run_id} complete: {result['train_rows']} rows, final loss {metrics.get('last_loss')}, "
        f"checkpoint {out}")
    return record


def _train(cfg, run_id, model_path, out: Path, export_dir: Path, chat_template: str, cuda: bool, log) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    liger = _liger(cfg, cuda)
    args = _sft_args(cfg, out, cuda, liger)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.chat_template = chat_template  # saved with the checkpoint: eval renders prompts the same way
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    from accelerate import PartialState

    # Rank 0 builds the Arrow caches first; the other ranks then load them instead of racing to write.
    with PartialState().main_process_first():
        conversations = train_data.load_conversations(
            export_dir, cfg["data"]["config"], cfg["data"].get("max_rows")
        )
        max_length = cfg["sft"].get("max_length")
        dataset, data_stats = train_data.tokenize(
            conversations, tokenizer, chat_template, max_length, cfg["data"]["overlong"],
            cfg["data"].get("num_proc"),
        )
    if len(dataset) == 0:
        raise UserError(f"{export_dir}: data/{cfg['data']['config']}: no trainable rows")
    log(f"train: {data_stats['train_rows']} rows, {data_stats['train_tokens']} tokens "
        f"({data_stats['trained_tokens']} trained), {data_stats['overlong_rows']} over max_length")

    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(cfg["dtype"], "auto")
    model = AutoModelForCausalLM.from_pretrained(
        model_path, config=_model_config(model_path), dtype=dtype,
        attn_implementation=_attn_implementation(cfg, cuda, log),
    )
    init_fingerprint = weights_fingerprint(model) if is_main_process() else None
    trainer = _trainer_class()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    output = trainer.train()
    trainer.save_model(str(out))
    history = trainer.state.log_history
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    runtime = output.metrics.get("train_runtime") or 0.0
    metrics = {
        "train_loss": output.metrics.get("train_loss"),
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "loss_curve": _downsample([[s, round(v, 5)] for s, v in losses]),
        "global_step": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_runtime_s": runtime,
        "num_tokens": tokens,
        "tokens_per_s": round(tokens / runtime, 1) if runtime and tokens else None,
        "batching": cfg["batching"],
        "device": "cuda" if cuda else "cpu",
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "liger": liger,
        "data": data_stats,
        "init_weights_sha256": init_fingerprint,
        "final_weights_sha256": weights_fingerprint(trainer.model) if is_main_process() else None,
        "python": sys.version.split()[0],
    }
    return {"metrics": metrics, "train_rows": data_stats["train_rows"]}
