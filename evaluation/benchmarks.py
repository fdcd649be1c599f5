"""Benchmark registry: where each evaluation set comes from and how it becomes lake problems.

A benchmark is ingested as ordinary problems with ``source = <benchmark name>`` (ids
``<name>:<row>``), so an evaluation is just a generation run with purpose ``eval`` over that
source, and the same grader scores it against ``expected_answer``.

Two origins, one result:

* the real path: the HuggingFace dataset id below, read by ``datasets.load_dataset``;
* ``benchmark_dir``: a local folder with ``<name>.jsonl`` rows ``{"id", "problem", "answer"}``
  (the tests and offline machines use ``../shared/benchmarks``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from warehouse import lake
from warehouse.errors import UserError


def gsm8k_final_answer(text: str | None) -> str | None:
    """GSM8K's answer column is a worked solution ending in ``#### N``; the label is N."""
    if text is None:
        return None
    _, sep, tail = str(text).rpartition("####")
    answer = tail.strip() if sep else str(text).strip()
    return answer.replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", answer) else answer


@dataclass(frozen=True)
class Benchmark:
    name: str
    dataset_id: str
    split: str
    problem_col: str
    answer_col: str
    config: str | None = None
    # Turns the dataset's answer column into the bare label (None: taken as is).
    answer_transform: Callable[[str | None], str | None] | None = None
    size: int | None = None  # problems in the full set, for a sanity message


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("aime24", "HuggingFaceH4/aime_2024", "train", "problem", "answer", size=30),
        Benchmark("aime25", "math-ai/aime25", "test", "problem", "answer", size=30),
        Benchmark("amc23", "math-ai/amc23", "test", "question", "answer", size=40),
        Benchmark("math500", "HuggingFaceH4/MATH-500", "test", "problem", "answer", size=500),
        Benchmark("gsm8k", "openai/gsm8k", "test", "question", "answer", config="main",
                  answer_transform=gsm8k_final_answer, size=1319),
    )
}

# The paper's table: AMC23, AIME25, AIME24 (avg@16 and pass@8).
PAPER_BENCHMARKS = ("aime24", "aime25", "amc23")


def parse_names(text: str | list[str], benchmark_dir: str | Path | None = None) -> list[str]:
    """``"aime24,amc23"`` → validated, de-duplicated names in the order given.

    With a ``benchmark_dir``, any ``<name>.jsonl`` in it is a benchmark too (a private held-out
    set, the demo's held-out split), ingested as problems of source ``<name>``.
    """
    names = text if isinstance(text, list) else [n.strip() for n in str(text).split(",")]
    names = [n.lower() for n in names if n]
    if not names:
        raise UserError("--benchmarks: give at least one of " + ", ".join(BENCHMARKS))
    for name in names:
        if name in BENCHMARKS:
            continue
        if benchmark_dir is not None and (Path(benchmark_dir) / f"{name}.jsonl").is_file():
            lake.partition_dir("problems", {"source": name})  # a valid source name
            continue
        hint = f" or a {name}.jsonl in --benchmark-dir" if benchmark_dir is not None else ""
        raise UserError(f"--benchmarks: unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}{hint}")
    return list(dict.fromkeys(names))


def local_file(name: str, benchmark_dir: str | Path) -> Path:
    path = Path(benchmark_dir) / f"{name}.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: no such file (--benchmark-dir needs <name>.jsonl per benchmark)")
    return path


def _materialize_hub(bench: Benchmark) -> Path:
    """Write a hub benchmark whose answers need a transform as local JSONL (id, problem, answer),
    keeping the dataset's row order so problem ids match the hub rows."""
    from warehouse.sources import iter_rows

    out = lake.scratch_dir() / "benchmarks" / f"{bench.name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    where = f"{bench.dataset_id} ({bench.split})"
    with open(tmp, "w", encoding="utf-8") as sink:
        for index, row in iter_rows(bench.dataset_id, split=bench.split, config=bench.config):
            if bench.problem_col not in row or bench.answer_col not in row:
                raise UserError(f"{where}: row {index}: needs columns {bench.problem_col!r} and {bench.answer_col!r}")
            answer = bench.answer_transform(row[bench.answer_col])
            sink.write(json.dumps({"id": f"{bench.name}-{index}", "problem": row[bench.problem_col],
                                   "answer": answer}, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out


def ingest_benchmark(name: str, benchmark_dir: str | Path | None = None):
    """Make sure benchmark ``name`` is in the lake as problems of source ``name`` (idempotent).

    Returns the ``warehouse.ingest.IngestReport``; rows already present are not written again.
    """
    from warehouse.ingest import ingest_problems

    if benchmark_dir is not None:
        return ingest_problems(str(local_file(name, benchmark_dir)), source=name, preset="benchmark")
    bench = BENCHMARKS[name]
    if bench.answer_transform is not None:
        return ingest_problems(str(_materialize_hub(bench)), source=name, preset="benchmark")
    return ingest_problems(bench.dataset_id, source=name, problem_col=bench.problem_col,
                           answer_col=bench.answer_col, split=bench.split, config=bench.config)


def problems_in_lake(name: str) -> int:
    from warehouse import db

    con = db.connect(marts=False)
    try:
        return con.execute("SELECT count(*) FROM problems WHERE source = ?", [name]).fetchone()[0]
    finally:
        con.close()
