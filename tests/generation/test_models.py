"""Converted GGUF folders must not keep a GGUF quantization_config (vLLM then refuses them)."""

from __future__ import annotations

import json
import shutil

import pytest

from generation.models import drop_gguf_quantization_config


@pytest.mark.slow  # imports vLLM
def test_gguf_quantization_config_is_dropped_so_vllm_accepts_the_folder(tiny_vllm_dir, tmp_path):
    from vllm.config import ModelConfig

    folder = tmp_path / "converted"
    shutil.copytree(tiny_vllm_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"dequantize": False, "gguf_file": "x.gguf", "quant_method": "gguf"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="validation error"):
        ModelConfig(model=str(folder), max_model_len=256)

    assert drop_gguf_quantization_config(folder) is True
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert ModelConfig(model=str(folder), max_model_len=256).max_model_len == 256
    assert drop_gguf_quantization_config(folder) is False  # idempotent
