"""transformers ``generate``: batched sampling on CPU or GPU for small local runs.

Samples are batched across problems (left padding). Each batch is seeded with the seed of its
first sample, so a rerun with the same batches reproduces the same texts; a single sample is not
reproducible on its own as with vLLM (the ``seed`` column holds the sample's nominal seed). Use
vLLM where per-sample reproducibility matters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

from generation.backends.base import Backend, Request, SampleResult, Sink, batched, too_long_error
from warehouse import lake
from warehouse.errors import UserError


# On <= 4 cores one torch thread beat one per core by 7x (tiny model) and by > 17x (SmolLM2-135M)
# in generation/README.md's measurements: small matmuls gain little from a second thread, and OpenMP
# threads that spin-wait collapse when anything else wants a core.
SMALL_MACHINE_CORES = 4


def cpu_threads(configured: int | None) -> int | None:
    """torch threads for CPU generation: the config's, else OMP_NUM_THREADS's (None: leave torch's),
    else 1 on small machines; None on larger ones (torch's default, one per core)."""
    if configured is not None:
        return configured
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 if cores <= SMALL_MACHINE_CORES else None


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, config, renderer, tokenizer):
        self.config = config
        self.renderer = renderer
        self.tokenizer = tokenizer
        self.model = None

    def start(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        t = self.config.transformers
        device = t.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = "auto" if t.dtype == "auto" else getattr(torch, t.dtype, None)
        if dtype is None:
            raise UserError(f"{self.config.where}: transformers.dtype: unknown torch dtype {t.dtype!r}")
        try:
            model = AutoModelForCausalLM.from_pretrained(self.config.model, dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as err:
            raise UserError(f"{self.config.where}: model: cannot load {self.config.model!r} with transformers "
                            f"({str(err).strip().splitlines()[0]})") from None
        self.device = device
        threads = cpu_threads(t.threads)
        if device == "cpu" and threads is not None:
            torch.set_num_threads(threads)
        self.model = model.to(device).eval()
        self.max_len = t.max_model_len or getattr(model.config, "max_position_embeddings", None) or 4096
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(e) for e in eos + [self.tokenizer.eos_token_id] if e is not None}
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = next(iter(self.eos_ids))

    def _units(self, requests: Iterable[Request], sink: Sink) -> Iterator[tuple[Request, int]]:
        for req in requests:
            if len(req.prompt_ids) >= self.max_len:
                message = too_long_error(len(req.prompt_ids), self.max_len)
                for idx in req.sample_indices:
                    sink(SampleResult(req.problem_id, idx, error=message, prompt_tokens=len(req.prompt_ids),
                                      seed=req.seeds.get(idx)))
                continue
            for idx in req.sample_indices:
                yield req, idx

    def generate(self, requests: Iterable[Request], sink: Sink) -> None:
        import torch

        s = self.config.sampling
        for batch in batched(self._units(requests, sink), self.config.transformers.batch_size):
            width = max(len(req.prompt_ids) for req, _ in batch)
            # Left padding: every row's prompt ends at the same column, generation starts after it.
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (req, _) in enumerate(batch):
                n = len(req.prompt_ids)
                input_ids[row, width - n:] = torch.tensor(req.prompt_ids)
                attention[row, width - n:] = 1
            room = min(self.max_len - len(req.prompt_ids) for req, _ in batch)
            max_new = max(1, min(s.max_tokens, room))
            first_seed = batch[0][0].seeds.get(batch[0][1])
            if first_seed is not None:
                torch.manual_seed(first_seed)
            sampling = dict(do_sample=True, temperature=s.temperature, top_p=s.top_p) if s.temperature > 0 else \
                dict(do_sample=False)
            started = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    max_new_tokens=max_new,
                    pad_token_id=self.pad_id,
                    **sampling,
                )
            latency = time.perf_counter() - started
            done = lake.now_utc()
            generated = out[:, width:].tolist()
            for (req, idx), tokens in zip(batch, generated, strict=True):
                stop = next((i for i, tok in enumerate(tokens) if tok in self.eos_ids), None)
                # Count the stop token like vLLM does; what follows it is padding.
                kept = tokens if stop is None else tokens[: stop + 1]
                text_tokens = tokens if stop is None else tokens[:stop]
                sink(SampleResult(
                    problem_id=req.problem_id,
                    sample_idx=idx,
                    completion=self.tokenizer.decode(text_tokens, skip_special_tokens=self.renderer.skip_special_tokens()),
                    finish_reason="stop" if stop is not None else "length",
                    prompt_tokens=len(req.prompt_ids),
                    completion_tokens=len(kept),
                    latency_s=latency,
                    seed=req.seeds.get(idx),
                    created_at=done,
                ))

    def close(self) -> None:
        self.model = None
