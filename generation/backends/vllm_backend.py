"""vLLM offline: one engine per process, n samples of a problem in one request (shared prefix),
prefix caching on, per-sample seeds (vLLM gives child k of a seeded request ``seed + k``)."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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
from warehouse.cli import user_message
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


GiB = 1 << 30
# The prompt's share of a sequence when the KV cache is sized before the prompts are seen: problem
# statements under a chat template stay well below it, and vLLM preempts when a batch needs more.
PROMPT_TOKENS_ESTIMATE = 256
# The KV cache takes at most this share of what NUMA node 0 has free at start, so that the weights,
# the sampler and the rest of the machine keep room; fewer sequences then run at once.
KV_SHARE_OF_FREE_NODE = 0.5
KV_HEADROOM = 1.1  # block rounding and the last partial block of each sequence


@dataclass(frozen=True)
class KVPlan:
    """The KV cache a CPU run asks for, and why (printed at start)."""

    bytes: int
    wanted: int  # every concurrent sequence at full length
    floor: int  # one sequence of max_model_len: vLLM refuses to start with less
    free: int  # NUMA node 0's available memory, as vLLM reads it
    node: int

    def describe(self) -> str:
        return (f"KV cache {self.bytes / GiB:.2f} GiB (the run wants {self.wanted / GiB:.2f}, one full-length "
                f"sequence {self.floor / GiB:.2f}; NUMA node {self.node} has {self.free / GiB:.2f} GiB free)")


def numa_node_free(node: int = 0) -> tuple[int, int]:
    """(total, available) bytes of the NUMA node vLLM's CPU worker allocates on, read as vLLM reads it."""
    from vllm.utils.cpu_resource_utils import get_memory_node_info

    info = get_memory_node_info(node)
    return info.total_memory, info.available_memory


def _text_config(hf_config):
    """The language model's part of a (possibly multimodal) config."""
    return hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config


def kv_bytes_per_token(hf_config, dtype: str) -> int:
    """Key and value for every layer and KV head, at the cache's element size."""
    text = _text_config(hf_config)
    heads = getattr(text, "num_attention_heads", None) or 1
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    element = 4 if dtype in ("float32", "float") else 2
    return 2 * text.num_hidden_layers * kv_heads * head_dim * element


def model_context(hf_config) -> int | None:
    return getattr(_text_config(hf_config), "max_position_embeddings", None)


def plan_cpu_kv_cache(per_token: int, max_model_len: int, max_tokens: int, sequences: int,
                      node: int = 0) -> KVPlan:
    """Size the CPU KV cache in bytes: every concurrent sequence at its longest (prompt + max_tokens,
    within the context), with headroom, capped by what the node has free but never below one
    full-length sequence. A share of the node would change with the node's size, which on a
    machine that just started can be half of what it is an hour later."""
    _, free = numa_node_free(node)
    per_sequence = min(max_model_len, max_tokens + PROMPT_TOKENS_ESTIMATE)
    wanted = int(sequences * per_sequence * per_token * KV_HEADROOM)
    floor = int(max_model_len * per_token * KV_HEADROOM)
    chosen = max(floor, min(wanted, int(free * KV_SHARE_OF_FREE_NODE)))
    return KVPlan(bytes=chosen, wanted=wanted, floor=floor, free=free, node=node)


@contextlib.contextmanager
def _engine_log_tail(lines: int = 400) -> Iterator[collections.deque]:
    """Keep the tail of everything written to stderr (by this process and the engine processes it
    starts) while still printing it: vLLM's engine fails in a child process, whose cause reaches only
    its stderr, and the parent sees just "Engine core initialization failed"."""
    tail: collections.deque = collections.deque(maxlen=lines)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
    except OSError:
        yield tail
        return

    def pump() -> None:
        pending = b""
        while chunk := os.read(read_fd, 65536):
            with contextlib.suppress(OSError):
                os.write(saved, chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            tail.extend(line.decode("utf-8", "replace") for line in complete)
        # Every writer is gone (the engine's processes exited): nothing more to forward.
        os.close(read_fd)
        os.close(saved)

    os.dup2(write_fd, 2)
    os.close(write_fd)
    threading.Thread(target=pump, name="vllm-stderr", daemon=True).start()
    try:
        yield tail
    finally:
        sys.stderr.flush()
        # The engine's processes keep the pipe as their stderr; the pump forwards it while they live.
        os.dup2(saved, 2)


_WORKER_FAILED = re.compile(r"Worker failed with error '(.+)'")
_ERROR_LINE = re.compile(r"\b([A-Za-z_.]*(?:Error|Exception)): (.+)$")
_WRAPPERS = ("Engine core initialization failed", "Worker failed with error", "See root cause above")


def engine_failure_cause(lines: Iterable[str]) -> str | None:
    """The root cause of a failed engine start, from the engine's stderr: the worker's own error if it
    reported one, else the last exception line that is not one of vLLM's wrappers."""
    lines = [line.strip() for line in lines]
    for line in reversed(lines):
        if found := _WORKER_FAILED.search(line):
            return found.group(1)
    for line in reversed(lines):
        found = _ERROR_LINE.search(line)
        if found and not any(w in found.group(2) for w in _WRAPPERS):
            return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2)}"
    return None


def start_failure_message(model: str, cause: str | None, plan: KVPlan | None) -> str:
    """One line: what stopped the engine and what to change."""
    if cause is None:
        return f"vllm: the engine for {model!r} did not start (its log is above; --debug shows the traceback)"
    if "Available memory on node" in cause or "memory for kv" in cause:
        needs = f"needs {plan.bytes / GiB:.2f} GiB, " if plan else ""
        return (f"vLLM could not fit the KV cache: {needs}{cause.rstrip('.')}; set vllm.kv_cache_gib (GiB) "
                "lower, lower vllm.max_model_len, or free memory")
    return f"vllm: the engine for {model!r} did not start: {cause}"


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, config, renderer, tokenizer):
        self.config = config
        self.renderer = renderer
        self.tokenizer = tokenizer
        self.llm = None
        self.max_len = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> None:
        from vllm import LLM

        v = self.config.vllm
        # vllm.env holds while the engine runs (its processes inherit it); close() restores the rest.
        self._saved_env = {str(k): os.environ.get(str(k)) for k in v.env}
        os.environ.update({str(k): str(value) for k, value in v.env.items()})
        kwargs = dict(
            model=self.config.model,
            tokenizer=self.config.tokenizer or self.config.model,
            tensor_parallel_size=v.tensor_parallel_size,
            dtype=v.dtype,
            enable_prefix_caching=v.enable_prefix_caching,
            seed=self.config.sampling.seed,
        )
        if v.max_model_len:
            kwargs["max_model_len"] = v.max_model_len
        if v.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = v.gpu_memory_utilization
        if v.kv_cache_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(v.kv_cache_gib * GiB)
        hf_config = self._hf_config()
        if hf_config is not None:
            self._fit_context(kwargs, hf_config)
        kwargs.update(v.extra)
        plan = None
        if _on_cpu():
            _cpu_engine_defaults(kwargs)
            plan = self._size_cpu_kv_cache(kwargs, hf_config)
        with _engine_log_tail() as log_tail:
            try:
                self.llm = LLM(**kwargs)
            except Exception as err:
                # Config errors are raised here (pydantic names the field); the engine's own failures
                # happen in its processes and reach us only through their log.
                cause = (user_message(err) if isinstance(err, OSError | ValueError) else None) \
                    or engine_failure_cause(log_tail)
                raise UserError(f"{self.config.where}: {start_failure_message(self.config.model, cause, plan)}") from err
        self.max_len = self.llm.llm_engine.model_config.max_model_len

    def _hf_config(self):
        """The model's own config (local files only), for its context length and KV size."""
        try:
            from transformers import AutoConfig

            return AutoConfig.from_pretrained(self.config.model, local_files_only=True)
        except Exception:  # an unusual folder: vLLM's own start will say what is wrong with it
            return None

    def _fit_context(self, kwargs: dict, hf_config) -> None:
        """A preset's context longer than the model allows follows the model (vLLM refuses it), unless
        the user forces it with VLLM_ALLOW_LONG_MAX_MODEL_LEN=1, as vLLM documents."""
        allowed = model_context(hf_config)
        asked = kwargs.get("max_model_len")
        if not (asked and allowed and asked > allowed):
            return
        if os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN") == "1":
            print(f"{self.config.where}: vllm.max_model_len {asked} is beyond {self.config.model}'s {allowed} "
                  "tokens: kept, as VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 asks", file=sys.stderr)
            return
        print(f"{self.config.where}: vllm.max_model_len {asked} is beyond {self.config.model}'s {allowed} "
              f"tokens: using {allowed} (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 forces it)", file=sys.stderr)
        kwargs["max_model_len"] = allowed

    def _size_cpu_kv_cache(self, kwargs: dict, hf_config) -> KVPlan | None:
        """On the CPU build the KV cache is a size in bytes: the user's (vllm.kv_cache_gib, or vLLM's
        VLLM_CPU_KVCACHE_SPACE), else what this run needs. A share the user sets explicitly
        (gpu_memory_utilization) is passed on as vLLM reads it: a share of NUMA node 0, whose size
        changes while the machine runs, so no shipped CPU config sets one."""
        explicit = kwargs.get("kv_cache_memory_bytes")
        if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            return None  # vLLM's own setting wins over anything computed here
        if explicit is None and kwargs.get("gpu_memory_utilization") is not None:
            total, free = numa_node_free()
            print(f"{self.config.where}: vllm on the CPU: gpu_memory_utilization {kwargs['gpu_memory_utilization']} "
                  f"is a share of NUMA node 0 ({total / GiB:.2f} GiB now, {free / GiB:.2f} free), which changes "
                  "while the machine runs; vllm.kv_cache_gib sizes the KV cache in bytes", file=sys.stderr)
            return None
        if explicit is None and hf_config is None:
            return None
        if explicit is not None:
            _, free = numa_node_free()
            plan = KVPlan(bytes=explicit, wanted=explicit, floor=explicit, free=free, node=0)
        else:
            s = self.config.sampling
            max_len = kwargs.get("max_model_len") or model_context(hf_config) or s.max_tokens + PROMPT_TOKENS_ESTIMATE
            sequences = min(kwargs.get("max_num_seqs", 256), self.config.vllm.batch_problems * self.config.samples)
            dtype = kwargs.get("dtype") or "auto"
            if dtype == "auto":
                dtype = str(getattr(hf_config, "dtype", None) or "bfloat16")
            plan = plan_cpu_kv_cache(kv_bytes_per_token(hf_config, dtype.replace("torch.", "")), max_len,
                                     s.max_tokens, sequences)
        if plan.bytes > plan.free:
            what = "vllm.kv_cache_gib asks for" if explicit is not None else "needs"
            raise UserError(f"{self.config.where}: vLLM could not fit the KV cache: {what} {plan.bytes / GiB:.2f} GiB, "
                            f"NUMA node {plan.node} has {plan.free / GiB:.2f} GiB free; "
                            + ("set vllm.kv_cache_gib lower" if explicit is not None else
                               "lower vllm.max_model_len or set vllm.kv_cache_gib"))
        kwargs["kv_cache_memory_bytes"] = plan.bytes
        print(f"{self.config.where}: vllm on the CPU: {plan.describe()}", file=sys.stderr)
        return plan

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
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        llm, self.llm = self.llm, None
        if llm is not None:
            # Best effort; the process exit also stops the engine.
            with contextlib.suppress(Exception):
                llm.llm_engine.engine_core.shutdown()
