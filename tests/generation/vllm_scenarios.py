"""Several checks on ONE real vLLM engine (CPU, tiny model), run as a subprocess by test_vllm.py
because vLLM spawns processes. Writes its observations as JSON to argv[2]."""

from __future__ import annotations

import json
import sys


def main(model_dir: str, out_path: str) -> None:
    from generation.backends.vllm_backend import VLLMBackend
    from generation.config import config_from_dict
    from generation.runner import run_generation
    from tests.generation.conftest import write_problems
    from warehouse import db, lake

    def config(run_id: str, **extra):
        return config_from_dict({
            "run_id": run_id, "model": model_dir, "backend": "vllm", "samples": 3,
            "problems": {"sources": ["v"]}, "sampling": {"max_tokens": 12, "temperature": 1.0, "seed": 7},
            "flush_rows": 4,
            "vllm": {"max_model_len": 256, "batch_problems": 2},
            **extra,
        }, f"{run_id}.yaml")

    write_problems("v", ["What is 2+2?", "word " * 300, "Find x if 2x = 6.", "What is 7*8?"])
    engine = VLLMBackend(config("a"), None, None)
    engine.start()
    result = {}
    summary = run_generation(config("a"), engine=engine, progress=False)
    result["a"] = {"written": summary.samples_written, "errors": summary.errors, "status": summary.status,
                   "tokens_per_s": summary.tokens_per_s, "run_tokens_per_s": summary.run_throughput["tokens_per_s"]}

    # Run b already has sample 0 of every problem (copied from a): it must make only samples 1 and 2,
    # as one n=2 request seeded base+1, and reproduce a's texts exactly (per-sample seeds).
    con = db.connect(marts=False)
    cols = [f.name for f in lake.GENERATIONS_SCHEMA]
    rows = con.execute(f"SELECT {', '.join(cols)} FROM generations WHERE run_id = 'a' AND sample_idx = 0 "
                       "AND error IS NULL").fetchall()
    with lake.PartWriter("generations", defaults={"shard": 0}) as writer:
        for row in rows:
            writer.add({**dict(zip(cols, row, strict=True)), "run_id": "b"})
    lake.write_manifest("b", config={**config("b").to_dict()})
    summary_b = run_generation(config("b"), engine=engine, progress=False)
    result["b"] = {"written": summary_b.samples_written, "already": summary_b.units_already_done}

    con = db.connect(marts=False)
    result["rows"] = [dict(zip([d[0] for d in con.description], r, strict=True)) for r in con.execute(
        "SELECT run_id, problem_id, sample_idx, completion, finish_reason, prompt_tokens, completion_tokens, seed, "
        "error, prompt FROM generations ORDER BY run_id, problem_id, sample_idx").fetchall()]
    result["manifest_a"] = lake.read_manifest("a")
    engine.close()
    with open(out_path, "w") as f:
        json.dump(result, f, default=str)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
