"""Batching benchmark for SFT: how much of the computed tokens are real, ours vs upstream.

For one length distribution (log-normal like real CoT lengths, or the token counts of an export) it
batches the same examples in the same order several ways, by running the real collators:

- ``upstream``: no packing, batch 8, pad to the longest sequence of the batch (TRL's collator, as in
  AMD-AGI/ReasonLite's config: packing false, per-device batch 8);
- ``padding_free`` (ours): the same batches flattened into one row with restarting position ids;
- ``packed_bfd``: TRL's best-fit-decreasing packing into ``max_length`` rows, then padding-free;
- ``grouped``: upstream plus transformers' length-grouped sampler, a common half-measure.

It counts computed tokens (the collated ``input_ids`` size: what every linear layer, norm and MLP
runs on) against real tokens, and the attention cost (sum of L^2 per causal block) against what a
varlen kernel needs. The attention share applies to kernels that attend over padded rows (SDPA,
eager); FlashAttention-2 with a padding mask unpads inside attention, but not in the other layers.
Padding-free on SDPA (no flash-attn) builds a block-diagonal mask of (flattened length)^2: fine on
CPU and for moderate batches; install flash-attn for 8 x 32K-token batches.

With ``--arch`` it also times forward+backward on random-weight models (``tiny`` on CPU,
``qwen3-0.6b`` on a GPU: ``--device cuda --arch qwen3-0.6b``) for upstream vs padding-free batches
of the same examples, and reports real tokens per second.

    python -m tests.benchmarks.bench_train                      # padding share, CPU, ~1 min
    python -m tests.benchmarks.bench_train --from-export        # lengths of the exported short_cot
    python -m tests.benchmarks.bench_train --device cuda --arch qwen3-0.6b --steps 20
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

IGNORE = -100
# Qwen3-0.6B's published architecture (config.json of Qwen/Qwen3-0.6B); random weights are enough to time it.
QWEN3_0_6B = dict(
    vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
    num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}, tie_word_embeddings=True,
)
TINY = dict(
    vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, max_position_embeddings=65536, tie_word_embeddings=True,
)


# ------------------------------------------------------------------------------------------ lengths


def lognormal_lengths(n: int, median: float, sigma: float, prompt_median: float, max_length: int, seed: int):
    """(prompt, total) token lengths: log-normal completions, as CoT lengths are, capped at max_length."""
    rng = np.random.default_rng(seed)
    prompt = np.maximum(8, rng.lognormal(math.log(prompt_median), 0.5, n)).astype(np.int64)
    completion = np.maximum(8, rng.lognormal(math.log(median), sigma, n)).astype(np.int64)
    total = np.minimum(prompt + completion, max_length)
    return np.minimum(prompt, total - 1), total


def export_lengths(config: str, max_length: int, n: int | None, seed: int):
    """Token counts of an exported config (teacher tokenizer: a proxy for the student's)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from warehouse import hub

    files = hub.config_files(hub.default_export_dir(), config)
    if not files:
        sys.exit(f"bench_train: no export at {hub.default_export_dir()} (run `reasonlite export`)")
    table = pq.read_table(files, columns=["prompt_tokens", "completion_tokens"])
    prompt = pc.fill_null(table.column("prompt_tokens"), 0).to_numpy().astype(np.int64) + 10  # template tokens
    total = np.minimum(prompt + pc.fill_null(table.column("completion_tokens"), 0).to_numpy().astype(np.int64),
                       max_length)
    if n is not None and n < len(total):
        pick = np.random.default_rng(seed).choice(len(total), n, replace=False)
        prompt, total = prompt[pick], total[pick]
    return np.minimum(prompt, total - 1), total


def make_examples(prompt: np.ndarray, total: np.ndarray, vocab: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    examples = []
    for p, t in zip(prompt, total, strict=True):
        ids = rng.integers(10, vocab, int(t), dtype=np.int64)
        labels = ids.copy()
        labels[: int(p)] = IGNORE  # assistant-only loss: the prompt is not trained
        examples.append({"input_ids": ids, "labels": labels})
    return examples


# ---------------------------------------------------------------------------------------- batching


def epoch_order(n: int, seed: int) -> list[int]:
    """The order a Trainer's RandomSampler visits examples in one epoch."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator).tolist()


def grouped_order(lengths: np.ndarray, batch: int, seed: int) -> list[int]:
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    return list(LengthGroupedSampler(batch, lengths=lengths.tolist(), generator=generator))


def batches(order: list[int], batch: int) -> list[list[int]]:
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def measure_collation(name: str, collator, examples: list[dict], groups: list[list[int]]) -> dict:
    """Run the collator over every batch; count computed vs real tokens and attention cost."""
    computed = real = trained = 0
    attn_computed = attn_needed = 0
    widest = 0
    started = time.perf_counter()
    for group in groups:
        out = collator([examples[i] for i in group])
        ids = out["input_ids"]
        computed += ids.numel()
        widest = max(widest, ids.shape[1])
        trained += int((out["labels"] != IGNORE).sum())
        if "attention_mask" in out:  # padded rows: every row is one causal block of the padded width
            lengths = out["attention_mask"].sum(1)
            real += int(lengths.sum())
            attn_computed += ids.shape[0] * ids.shape[1] ** 2
            attn_needed += int((lengths.double() ** 2).sum())
        else:  # flattened: one causal block per sequence (varlen kernel), no padding positions
            blocks = out["cu_seq_lens_q"].diff().double()
            real += int(blocks.sum())
            attn_computed += int((blocks**2).sum())
            attn_needed += int((blocks**2).sum())
    return {
        "batching": name,
        "steps": len(groups),
        "computed_tokens": computed,
        "real_tokens": real,
        "trained_tokens": trained,
        "real_share": real / computed if computed else 0.0,
        "attention_share": attn_needed / attn_computed if attn_computed else 0.0,
        "widest_row": widest,
        "collate_s": round(time.perf_counter() - started, 2),
    }


def packed_groups(examples: list[dict], max_length: int, rows_per_batch: int):
    """TRL's bfd packing (as SFTTrainer does with packing=True), then batches of packed rows."""
    import datasets
    from trl.data_utils import pack_dataset

    dataset = datasets.Dataset.from_dict(
        {"input_ids": [e["input_ids"] for e in examples], "labels": [e["labels"] for e in examples]}
    )
    packed = pack_dataset(dataset, max_length, "bfd")
    rows = [{"input_ids": r["input_ids"], "labels": r["labels"], "seq_lengths": r["seq_lengths"]} for r in packed]
    return rows, batches(list(range(len(rows))), rows_per_batch)


# --------------------------------------------------------------------------------------- throughput


def build_model(arch: str, device: str, attn: str):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    config = Qwen3Config(**(QWEN3_0_6B if arch == "qwen3-0.6b" else TINY))
    config._attn_implementation = attn
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(device=device, dtype=dtype)
    if arch == "qwen3-0.6b":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    add_fused_lm_head(model)  # as SFTTrainer: the loss without materialising (tokens x vocab) logits
    return model


def time_steps(model, collator, examples, groups, device: str, warmup: int) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
    real = computed = 0
    elapsed = 0.0
    peak = 0
    for step, group in enumerate(groups):
        batch = collator([examples[i] for i in group])
        inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        out = model(**inputs, use_cache=False, fused_lm_head=True)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
            peak = max(peak, torch.cuda.max_memory_allocated())
        if step >= warmup:
            elapsed += time.perf_counter() - started
            computed += batch["input_ids"].numel()
            real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    return {
        "timed_steps": max(0, len(groups) - warmup),
        "seconds": round(elapsed, 3),
        "real_tokens_per_s": round(real / elapsed, 1) if elapsed else None,
        "computed_tokens_per_s": round(computed / elapsed, 1) if elapsed else None,
        "peak_gpu_gb": round(peak / 1024**3, 2) if peak else None,
    }


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2048, help="examples (default 2048)")
    parser.add_argument("--batch", type=int, default=8, help="examples per batch (upstream stage 1: 8)")
    parser.add_argument("--max-length", type=int, default=32768)
    parser.add_argument("--median", type=float, default=3000, help="median completion tokens (log-normal)")
    parser.add_argument("--sigma", type=float, default=0.8, help="log-normal sigma of completion lengths")
    parser.add_argument("--prompt-median", type=float, default=120)
    parser.add_argument("--from-export", nargs="?", const="short_cot", metavar="CONFIG",
                        help="use the token counts of an exported config instead (default short_cot)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch", choices=["tiny", "qwen3-0.6b"], help="also time training steps on this model")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--attn", default=None, help="attention implementation (default: flash_attention_2 "
                        "on CUDA when installed, else sdpa)")
    parser.add_argument("--steps", type=int, default=6, help="timed batches per batching (plus 1 warm-up)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    if args.from_export:
        prompt, total = export_lengths(args.from_export, args.max_length, args.n, args.seed)
        source = f"export config {args.from_export}"
    else:
        prompt, total = lognormal_lengths(args.n, args.median, args.sigma, args.prompt_median, args.max_length,
                                          args.seed)
        source = f"log-normal completions (median {args.median:g}, sigma {args.sigma:g}), prompts ~{args.prompt_median:g}"
    vocab = (QWEN3_0_6B if args.arch == "qwen3-0.6b" else TINY)["vocab_size"]
    examples = make_examples(prompt, total, vocab, args.seed)
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    padded = DataCollatorForLanguageModeling(pad_token_id=0)
    flat = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    order = epoch_order(len(examples), args.seed)
    same_batches = batches(order, args.batch)

    print(f"lengths: {len(total)} examples from {source}; tokens: mean {total.mean():.0f}, "
          f"median {np.median(total):.0f}, p95 {np.percentile(total, 95):.0f}, max {total.max()}, "
          f"{(total >= args.max_length).sum()} at max_length {args.max_length}")
    results = [
        measure_collation(f"upstream (batch {args.batch}, pad to longest)", padded, examples, same_batches),
        measure_collation(f"padding_free (ours, batch {args.batch})", flat, examples, same_batches),
        measure_collation(f"grouped by length (batch {args.batch}, padded)", padded, examples,
                          batches(grouped_order(total, args.batch, args.seed), args.batch)),
    ]
    rows, groups = packed_groups(examples, args.max_length, 1)
    results.append(measure_collation(f"packed bfd (1 row of {args.max_length})", flat, rows, groups))

    print(f"\n{'batching':44} {'steps':>6} {'computed':>13} {'real':>13} {'real share':>10} {'attn share':>10} "
          f"{'trained':>8}")
    for r in results:
        print(f"{r['batching']:44} {r['steps']:>6} {r['computed_tokens']:>13,} {r['real_tokens']:>13,} "
              f"{r['real_share']:>10.1%} {r['attention_share']:>10.1%} {r['trained_tokens'] / r['real_tokens']:>8.1%}")
    print("(trained: share of real tokens with a label, i.e. in the loss; assistant-only loss leaves out the prompt)")
    upstream, ours = results[0], results[1]
    ratio = ours["real_share"] / upstream["real_share"]
    print(f"\nreal-token share, ours / upstream: {ours['real_share']:.1%} / {upstream['real_share']:.1%} = "
          f"{ratio:.2f}x (upstream computes {upstream['computed_tokens'] / ours['computed_tokens']:.2f}x the tokens "
          f"for the same {upstream['real_tokens']:,} real ones)")
    report = {"source": source, "n": len(total), "batch": args.batch, "max_length": args.max_length,
              "collation": results, "real_share_ratio": ratio}

    if args.arch:
        if args.device == "cuda" and not torch.cuda.is_available():
            sys.exit("bench_train: --device cuda but CUDA is not available")
        import importlib.util

        attn = args.attn or ("flash_attention_2" if args.device == "cuda"
                             and importlib.util.find_spec("flash_attn") else "sdpa")
        model = build_model(args.arch, args.device, attn)
        timed = same_batches[: args.steps + 1]  # the same examples for both
        throughput = {}
        for name, collator in (("upstream", padded), ("padding_free", flat)):
            throughput[name] = time_steps(model, collator, examples, timed, args.device, warmup=1)
        print(f"\nthroughput on {args.arch} ({args.device}, {attn}, random weights), {args.steps} timed steps "
              f"of the same {args.batch}-example batches:")
        for name, t in throughput.items():
            print(f"  {name:14} {t['real_tokens_per_s']:>12,.0f} real tokens/s  "
                  f"({t['computed_tokens_per_s']:,.0f} computed/s, {t['seconds']} s"
                  f"{', peak ' + str(t['peak_gpu_gb']) + ' GB' if t['peak_gpu_gb'] else ''})")
        speedup = throughput["padding_free"]["real_tokens_per_s"] / throughput["upstream"]["real_tokens_per_s"]
        print(f"  speedup (real tokens/s, padding_free / upstream): {speedup:.2f}x")
        report["throughput"] = {"arch": args.arch, "device": args.device, "attn": attn, **throughput,
                                "speedup": speedup}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
