"""Small SFT strata in the export contract's shape, written by the tests themselves (no dbt needed)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
# The contract's columns in the order curate writes segments (hub._output_schema's), so that export
# can link them as shards; answer_key is an extra column after the contract's: it must be carried along.
SCHEMA = pa.schema(
    [
        ("messages", MESSAGES),
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
        ("answer_key", pa.string()),
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


def write_strata(exports: Path, n_short: int = 40, n_long: int = 24, seed: int = 0, segments: int = 1,
                 build_id: str | None = None) -> dict[str, Path]:
    """Publish both strata as curate does: ``<exports>/sft_<stratum>/part-<build>-<n>.parquet``, the
    rows split in order into ``segments`` files (an empty stratum: empty segments with the schema),
    then the build record. Returns each stratum's folder."""
    rng = random.Random(seed)
    build_id = build_id or f"test-{seed}"
    folders = {}
    for stratum, n in (("short_cot", n_short), ("long_cot", n_long)):
        table = pa.Table.from_pylist([example(i, stratum, rng) for i in range(n)], schema=SCHEMA)
        folders[stratum] = write_segments(exports / f"sft_{stratum}", build_id, split(table, segments))
    seal_strata(exports, build_id)
    return folders


def split(table: pa.Table, parts: int) -> list[pa.Table]:
    """``table`` cut into ``parts`` consecutive slices (the last ones may be empty)."""
    size = -(-table.num_rows // max(parts, 1))
    return [table.slice(i * size, size) for i in range(max(parts, 1))]


def write_segments(folder: Path, build_id: str, tables: list[pa.Table]) -> Path:
    """Replace the stratum folder by one segment per table (empty tables too, as DuckDB writes them)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for n, table in enumerate(tables):
        pq.write_table(table, folder / f"part-{build_id}-{n}.parquet", compression="zstd")
    return folder


def read_stratum(folder: Path) -> pa.Table:
    """Every row of a stratum folder (its segments in name order)."""
    return pa.concat_tables(pq.read_table(p) for p in sorted(folder.glob("part-*.parquet")))


def seal_strata(exports: Path, build_id: str = "test") -> None:
    """Record the strata now in ``exports`` as one successful build's (what a curate publishes last:
    every segment's sha256, by path under ``exports``), so `reasonlite export` takes them. A stratum in
    the older single-file layout is recorded as that file."""
    from warehouse import snapshots

    files = []
    for name in snapshots.STRATA_DIRS:
        folder, single = exports / name, exports / f"{name}.parquet"
        files += snapshots.stratum_segments(folder) if folder.is_dir() else [single] if single.exists() else []
    strata = {path.relative_to(exports).as_posix(): {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                                      "bytes": path.stat().st_size} for path in files}
    (exports / snapshots.BUILD_FILE).write_text(json.dumps({"build_id": build_id, "strata": strata}))
