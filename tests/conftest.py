"""Shared fixtures: an isolated lake per test, and tiny real models built once per machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_BENCHMARKS = REPO.parent / "shared" / "benchmarks"
# Tiny models are deterministic; building them once per checkout keeps the suite fast.
MODEL_CACHE = REPO / ".cache" / "test-models"


@pytest.fixture
def lake_env(tmp_path, monkeypatch) -> Path:
    """Point every warehouse path (lake, DuckDB file, exports, reports) into a fresh tmp dir."""
    from warehouse import lake

    root = tmp_path / "warehouse"
    for key, value in lake.env_for_root(root).items():
        monkeypatch.setenv(key, value)
    return root


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    if not SHARED_BENCHMARKS.exists():
        pytest.skip(f"{SHARED_BENCHMARKS} not present")
    return SHARED_BENCHMARKS


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    from generation.models import smollm2_tokenizer

    return smollm2_tokenizer(MODEL_CACHE / "smollm2-tokenizer")


@pytest.fixture(scope="session")
def tiny_llama_dir(tokenizer_dir) -> Path:
    from generation.models import tiny_random_model

    return tiny_random_model(MODEL_CACHE / "tiny-llama", tokenizer_dir, architecture="llama")


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tokenizer_dir) -> Path:
    from generation.models import tiny_random_model

    return tiny_random_model(MODEL_CACHE / "tiny-qwen3", tokenizer_dir, architecture="qwen3")


def pytest_configure(config):
    # vLLM on CPU: keep its thread use polite on a 2-core machine.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
