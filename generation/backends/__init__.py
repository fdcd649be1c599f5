"""Sampling engines behind one interface: ``start()``, ``generate(requests, sink)``, ``close()``."""

from __future__ import annotations

from generation.backends.base import Backend, Request, SampleResult


def make_backend(config, renderer, tokenizer) -> Backend:
    """The backend named by ``config.backend`` (imports stay lazy: torch/vLLM load only when used)."""
    if config.backend == "vllm":
        from generation.backends.vllm_backend import VLLMBackend

        return VLLMBackend(config, renderer, tokenizer)
    if config.backend == "openai":
        from generation.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(config, renderer, tokenizer)
    if config.backend == "transformers":
        from generation.backends.transformers_backend import TransformersBackend

        return TransformersBackend(config, renderer, tokenizer)
    raise ValueError(f"unknown backend {config.backend!r}")


__all__ = ["Backend", "Request", "SampleResult", "make_backend"]
