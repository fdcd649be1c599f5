"""vLLM offline: one engine per process, n samples of a problem in one request (shared prefix),
prefix caching on, per-sample seeds (vLLM gives child k of a seeded request ``seed + k``)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

from generation.backends.base import (
    Backend,
    Request,
    SampleResult,
    Sink,
    batched,
    contiguous_runs,
    error_results,
    too_long_error,
)
from warehouse import lake
from warehouse.errors import UserError


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_has_bf16() -> bool:
    """Native bfloat16 matmuls (AVX512-BF16 or AMX). Without them vLLM's CPU default of bf16
    is emulated and several times slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def cpu_threads() -> list[int]:
    """The cores a CPU engine computes on. vLLM's auto binding keeps one core for its scheduler,
    which on a 2-core laptop halves the compute; on ≤ 4 cores we bind all of them instead."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return cores if len(cores) <= 4 else cores[:-1]


def _cpu_engine_defaults(kwargs: dict) -> None:
    """Engine settings for the CPU build that the user did not choose (measured on 2 AVX2 cores,
    SmolLM2-135M, 128 sequences: start 107 s -> 20 s, decode 123 -> 226 tokens/s)."""
    # vLLM's model runner rewinds a seeded request's generator when a chunked prefill discards
    # its token (set_offset), which CPU generators do not support: the engine dies mid-run once a
    # batch of prompts exceeds the token budget. Whole prefills only.
    kwargs["enable_chunked_prefill"] = False
    # torch.compile costs over a minute at every start and buys little for GEMM-bound CPU decode.
    kwargs.setdefault("enforce_eager", True)
    if kwargs.get("dtype", "auto") == "auto" and not cpu_has_bf16():
        kwargs["dtype"] = "float32"
    cores = cpu_threads()
    if "VLLM_CPU_OMP_THREADS_BIND" not in os.environ and len(cores) <= 4:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores))


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, config, renderer, tokenizer):
        self.config = config
        self.renderer = renderer
        self.tokenizer = tokenizer
        self.llm = None
        self.max_len = None

    def start(self) -> None:
        from vllm import LLM

        v = self.config.vllm
        kwargs = dict(
            model=self.config.model,
            tokenizer=self.config.tokenizer or self.config.model,
            gpu_memory_utilization=v.gpu_memory_utilization,
            tensor_parallel_size=v.tensor_parallel_size,
            dtype=v.dtype,
            enable_prefix_caching=v.enable_prefix_caching,
            seed=self.config.sampling.seed,
        )
        if v.max_model_len:
            kwargs["max_model_len"] = v.max_model_len
        kwargs.update(v.extra)
        if _on_cpu():
            _cpu_engine_defaults(kwargs)
        try:
            self.llm = LLM(**kwargs)
        except (OSError, ValueError) as err:
            raise UserError(f"{self.config.where}: vllm: cannot start the engine for {self.config.model!r}: "
                            f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}") from err
        self.max_len = self.llm.llm_engine.model_config.max_model_len

    def _params(self, count: int, seed: int | None, max_tokens: int):
        from vllm import SamplingParams

        s = self.config.sampling
        return SamplingParams(
            n=count,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=max_tokens,
            seed=seed,
            skip_special_tokens=self.renderer.skip_special_tokens(),
        )

    def generate(self, requests: Iterable[Request], sink: Sink) -> None:
        from vllm.inputs import TokensPrompt

        for chunk in batched(requests, self.config.vllm.batch_problems):
            prompts, params, meta = [], [], []
            for req in chunk:
                ids = req.prompt_ids
                room = self.max_len - len(ids)
                if room < 1:
                    # Never let one long prompt fail the batch: it gets an error row, the run goes on.
                    for result in error_results(req, too_long_error(len(ids), self.max_len), len(ids)):
                        sink(result)
                    continue
                for start, count in contiguous_runs(req.sample_indices):
                    prompts.append(TokensPrompt(prompt_token_ids=list(ids)))
                    params.append(self._params(count, req.seeds.get(start), min(self.config.sampling.max_tokens, room)))
                    meta.append((req, start))
            if not prompts:
                continue
            started = time.perf_counter()
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
                failures = [None] * len(outputs)
            except (ValueError, TypeError):
                # A request the engine refuses (validation): find it, keep the rest. Anything else
                # (engine died, out of memory) ends the run with status failed; a restart resumes.
                outputs, failures = self._one_by_one(prompts, params)
            latency = time.perf_counter() - started
            done = lake.now_utc()
            for i, (output, failure, (req, start)) in enumerate(zip(outputs, failures, meta, strict=True)):
                if failure is not None:
                    for k in range(params[i].n):
                        idx = start + k
                        sink(SampleResult(req.problem_id, idx, error=failure, seed=req.seeds.get(idx),
                                          prompt_tokens=len(req.prompt_ids), latency_s=latency, created_at=done))
                    continue
                for completion in output.outputs:
                    idx = start + completion.index
                    sink(SampleResult(
                        problem_id=req.problem_id,
                        sample_idx=idx,
                        completion=completion.text,
                        finish_reason=completion.finish_reason,
                        prompt_tokens=len(output.prompt_token_ids or req.prompt_ids),
                        completion_tokens=len(completion.token_ids),
                        latency_s=latency,
                        seed=req.seeds.get(idx),
                        created_at=done,
                    ))

    def _one_by_one(self, prompts, params):
        outputs, failures = [], []
        for prompt, param in zip(prompts, params, strict=True):
            try:
                outputs.append(self.llm.generate([prompt], [param], use_tqdm=False)[0])
                failures.append(None)
            except (ValueError, TypeError) as err:
                outputs.append(None)
                failures.append(f"engine_error: {type(err).__name__}: {str(err).strip()[:500]}")
        return outputs, failures

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            # Best effort; the process exit also stops the engine.
            with contextlib.suppress(Exception):
                llm.llm_engine.engine_core.shutdown()
