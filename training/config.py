"""Training configs: YAML files plus ``--set key=value`` overrides, checked before anything heavy loads.

A config has our own keys at the top level and TRL's ``SFTConfig`` arguments under ``sft:``::

    stage: stage1                 # name recorded in training_runs; stage 2 starts from "@stage1"
    model: Qwen/Qwen3-0.6B        # HF id, local folder, or "@<stage>": the latest finished run of that stage
    global_batch_size: 256        # sequences per optimizer step over all GPUs (optional)
    data: {export: null, config: short_cot, max_rows: null, overlong: truncate}
    batching: padding_free        # padding_free | packed | padded (upstream)
    ...
    sft: {learning_rate: 3.0e-4, ...}

Overrides use dotted keys and YAML values: ``--set model=/path --set sft.max_steps=5``.

With ``global_batch_size`` declared, gradient accumulation is derived from the GPUs the run gets
(``--gpus`` x ``--nodes``) and ``sft.per_device_train_batch_size``, so the optimizer sees the same
batch on 1 GPU or 32; a combination that cannot make it exactly is refused before anything starts.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from warehouse.errors import UserError

REPO_DIR = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CHAT_TEMPLATE = PACKAGE_DIR / "chat_template.jinja"
ACCELERATE_DIR = PACKAGE_DIR / "accelerate"

BATCHING = ("padding_free", "packed", "padded")
DISTRIBUTED = ("ddp", "zero1", "zero3")
OVERLONG = ("truncate", "drop")
DTYPES = ("bfloat16", "float16", "float32", "auto")

DEFAULTS: dict[str, Any] = {
    "stage": None,
    "model": None,
    "global_batch_size": None,  # None: sft.gradient_accumulation_steps as given (default 1)
    "dtype": "bfloat16",
    "attn_implementation": "flash_attention_2",
    "liger": "auto",  # true | false | auto (on when liger-kernel is installed and training on GPU)
    "chat_template": None,  # default: training/chat_template.jinja
    "output_dir": None,  # default: <checkpoints>/<stage>/<run_id>
    "batching": "padding_free",
    "distributed": "zero1",
    "data": {"export": None, "config": None, "max_rows": None, "overlong": "truncate", "num_proc": None},
    "sft": {},
}
# SFTConfig fields this stage sets itself from the keys above; setting them under `sft:` is refused.
MANAGED_SFT_KEYS = {
    "output_dir": "output_dir",
    "packing": "batching",
    "padding_free": "batching",
    "packing_strategy": "batching",
    "assistant_only_loss": "the chat template (labels are built from its generation markers)",
    "completion_only_loss": "the chat template (labels are built from its generation markers)",
    "chat_template_path": "chat_template",
    "model_init_kwargs": "dtype / attn_implementation",
    "use_liger_kernel": "liger",
    "dataset_kwargs": "data",
}


def resolve_path(value: str | Path, base: Path | None = None) -> Path:
    """A path as given if it exists, else relative to ``base`` (the config's folder), else to the repo."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    for root in (base, REPO_DIR):
        if root is not None and (root / path).exists():
            return (root / path).resolve()
    return path.resolve()


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# YAML 1.1 (PyYAML) reads `3e-4` as a string; a learning rate written that way must still be a number.
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _numbers(value: Any) -> Any:
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE (e.g. sft.max_steps=10)")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise UserError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise UserError(f"--set {text!r}: value is not valid YAML ({str(err).splitlines()[0]})") from None
    return parts, _numbers(value)


def load_config(path: str | Path, overrides: list[str] | None = None, gpus: int = 1, nodes: int = 1) -> dict[str, Any]:
    """Read, merge defaults, apply overrides, validate and derive the batch for ``gpus`` x ``nodes``
    processes; returns a plain dict (JSON-serialisable)."""
    path = resolve_path(path)
    if not path.exists():
        raise UserError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    cfg = _merge(DEFAULTS, _numbers(raw))
    for text in overrides or []:
        parts, value = parse_override(text)
        node = cfg
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                if part in node and node[part] is not None:
                    raise UserError(f"--set {text!r}: {part} is not a section")
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    cfg["config_path"] = str(path)
    validate(cfg, str(path))
    resolve_batch(cfg, gpus, nodes)
    return cfg


def resolve_batch(cfg: dict[str, Any], gpus: int, nodes: int) -> None:
    """Set ``sft.gradient_accumulation_steps`` so that one optimizer step sees ``global_batch_size``
    sequences on ``gpus`` x ``nodes`` processes, and record the arithmetic under ``batch``."""
    source = cfg["config_path"]
    if gpus < 1 or nodes < 1:
        raise UserError("--gpus and --nodes must be at least 1")
    sft = cfg["sft"]
    per_device = sft.get("per_device_train_batch_size", 8)  # TrainingArguments' default
    if not isinstance(per_device, int) or isinstance(per_device, bool) or per_device < 1:
        raise UserError(f"{source}: sft.per_device_train_batch_size: expected a positive integer, got {per_device!r}")
    per_step = gpus * nodes * per_device
    wanted = cfg["global_batch_size"]
    if wanted is None:
        accumulation = sft.get("gradient_accumulation_steps", 1)
    else:
        if wanted % per_step:
            raise UserError(
                f"{source}: global_batch_size: {wanted} cannot be reached with {gpus} GPU(s) x {nodes} node(s) x "
                f"sft.per_device_train_batch_size {per_device} = {per_step} sequences per forward pass "
                f"({wanted} is not a multiple of {per_step}); change --gpus/--nodes or the per-device batch"
            )
        accumulation = wanted // per_step
        sft["gradient_accumulation_steps"] = accumulation
    cfg["batch"] = {"gpus": gpus, "nodes": nodes, "processes": gpus * nodes, "per_device": per_device, "gradient_accumulation_steps": accumulation,
                    "global": per_step * accumulation}


def describe_batch(cfg: dict[str, Any]) -> str:
    b = cfg["batch"]
    return (f"global batch {b['global']} = {b['gpus']} GPU(s) x {b['nodes']} node(s) x {b['per_device']} per device "
            f"x {b['gradient_accumulation_steps']} accumulation step(s)")


def validate(cfg: dict[str, Any], source: str) -> None:
    known = set(DEFAULTS) | {"config_path", "description"}
    for key in cfg:
        if key not in known:
            raise UserError(f"{source}: {key}: unknown key (known: {', '.join(sorted(known))})")
    for key in ("stage", "model"):
        if not isinstance(cfg[key], str) or not cfg[key].strip():
            raise UserError(f"{source}: {key}: required (a non-empty string)")
    choices = {"batching": BATCHING, "distributed": DISTRIBUTED, "dtype": DTYPES}
    for key, allowed in choices.items():
        if cfg[key] not in allowed:
            raise UserError(f"{source}: {key}: {cfg[key]!r} is not one of {', '.join(allowed)}")
    if cfg["liger"] not in (True, False, "auto"):
        raise UserError(f"{source}: liger: expected true, false or auto, got {cfg['liger']!r}")
    data = cfg["data"]
    if not isinstance(data, dict):
        raise UserError(f"{source}: data: expected a mapping")
    unknown = set(data) - set(DEFAULTS["data"])
    if unknown:
        raise UserError(f"{source}: data.{sorted(unknown)[0]}: unknown key")
    if not isinstance(data.get("config"), str) or not data["config"]:
        raise UserError(f"{source}: data.config: required (short_cot or long_cot)")
    if data["overlong"] not in OVERLONG:
        raise UserError(f"{source}: data.overlong: {data['overlong']!r} is not one of {', '.join(OVERLONG)}")
    if data["max_rows"] is not None and (not isinstance(data["max_rows"], int) or data["max_rows"] < 1):
        raise UserError(f"{source}: data.max_rows: expected a positive integer")
    sft = cfg["sft"]
    if not isinstance(sft, dict):
        raise UserError(f"{source}: sft: expected a mapping of SFTConfig arguments")
    wanted = cfg["global_batch_size"]
    if wanted is not None:
        if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
            raise UserError(f"{source}: global_batch_size: expected a positive integer, got {wanted!r}")
        if "gradient_accumulation_steps" in sft:
            raise UserError(f"{source}: sft.gradient_accumulation_steps: derived from global_batch_size "
                            "divided by GPUs x nodes x per-device batch); remove it, or set global_batch_size: null")
    for key in sft:
        if key in MANAGED_SFT_KEYS:
            raise UserError(f"{source}: sft.{key}: set by this stage from `{MANAGED_SFT_KEYS[key]}`; remove it")
    max_length = sft.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 8):
        raise UserError(f"{source}: sft.max_length: expected an integer >= 8")
    if cfg["batching"] == "packed" and max_length is None:
        raise UserError(f"{source}: sft.max_length: packing needs a sequence length")
