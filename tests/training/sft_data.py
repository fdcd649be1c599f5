"""Small SFT strata in the export contract's shape, written by the tests themselves (no dbt needed)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SCHEMA = pa.schema(
    [
        ("problem_id", pa.string()),
        ("source", pa.string()),
        ("run_id", pa.string()),
        ("sample_idx", pa.int32()),
        ("teacher_model", pa.string()),
        ("reasoning_level", pa.string()),
        ("stratum", pa.string()),
        ("label", pa.string()),
        ("label_source", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("messages", MESSAGES),
        ("answer_key", pa.string()),  # an extra column after the contract's: must be carried along
    ]
)
PROMPT = "Solve the following math problem. Put the final answer in \\boxed{{}}.\n\n{problem}"


def example(i: int, stratum: str, rng: random.Random) -> dict:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    steps = 1 if stratum == "short_cot" else 4
    reasoning = "\n".join(
        [f"We need {a} + {b}."] + [f"Check: {a} + {b} = {a + b}." for _ in range(steps)]
    )
    final = f"The answer is \\boxed{{{a + b}}}."
    return {
        "problem_id": f"{'polaris' if i % 2 else 'omr'}:{i}",
        "source": "polaris" if i % 2 else "omr",
        "run_id": "teach-medium" if stratum == "short_cot" else "teach-high",
        "sample_idx": i % 4,
        "teacher_model": "openai/gpt-oss-120b",
        "reasoning_level": "medium" if stratum == "short_cot" else "high",
        "stratum": stratum,
        "label": str(a + b),
        "label_source": "vote" if i % 3 else "dataset",
        "prompt_tokens": 20,
        "completion_tokens": 12 * steps + 10,
        "messages": [
            {"role": "user", "content": PROMPT.format(problem=f"What is {a} + {b}?")},
            {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{final}"},
        ],
        "answer_key": str(a + b),
    }


def write_strata(exports: Path, n_short: int = 40, n_long: int = 24, seed: int = 0) -> dict[str, Path]:
    exports.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = {}
    for stratum, n in (("short_cot", n_short), ("long_cot", n_long)):
        rows = [example(i, stratum, rng) for i in range(n)]
        path = exports / f"sft_{stratum}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
        paths[stratum] = path
    seal_strata(exports, f"test-{seed}")
    return paths


def seal_strata(exports: Path, build_id: str = "test") -> None:
    """Record the strata now in ``exports`` as one successful build's (what a curate publishes last),
    so `reasonlite export` takes them."""
    from warehouse import snapshots

    strata = {name: {"sha256": hashlib.sha256((exports / name).read_bytes()).hexdigest(),
                     "bytes": (exports / name).stat().st_size} for name in snapshots.STRATA_FILES}
    (exports / snapshots.BUILD_FILE).write_text(json.dumps({"build_id": build_id, "strata": strata}))
