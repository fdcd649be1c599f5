"""Fixtures of the generation tests: problems written straight into an isolated lake, a tiny model
vLLM's CPU attention accepts (head_dim 64; the shared tiny_llama has 16, which it refuses)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import MODEL_CACHE
from warehouse import lake


def write_problems(source: str, prompts: list[str], answers: list[str] | None = None) -> list[str]:
    ids = [f"{source}:{i}" for i in range(len(prompts))]
    with lake.PartWriter("problems") as writer:
        for i, (pid, prompt) in enumerate(zip(ids, prompts, strict=True)):
            writer.add({"problem_id": pid, "source": source, "prompt": prompt,
                        "expected_answer": (answers or [None] * len(prompts))[i], "metadata": json.dumps({})})
    return ids


def benchmark_prompts(benchmarks_dir, name: str, limit: int | None = None) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (benchmarks_dir / f"{name}.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    return [r["problem"] for r in rows], [str(r["answer"]) for r in rows]


@pytest.fixture(scope="session")
def tiny_vllm_dir(tokenizer_dir):
    from generation.models import tiny_random_model

    return tiny_random_model(MODEL_CACHE / "tiny-llama-h256", tokenizer_dir, architecture="llama", hidden_size=256)
