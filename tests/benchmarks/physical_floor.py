"""The physical floor of curation: what DuckDB alone needs to read the lake once and write the export once.

Run by ``bench_curation.bench_volume`` in its own measured process, right beside
``reasonlite curate --full-refresh`` and ``reasonlite export`` on the same lake:

* ``scan``: one pass over every text column of every generation part (``sum(length(...))`` of
  ``completion``, ``reasoning``, ``final`` and ``prompt``, the columns curation reads), so every
  Parquet page of them is read and decompressed once, and nothing else is done;
* ``write``: the exported SFT strata (what curate's export wrote) written once more as zstd
  (level 1) Parquet by a plain ``COPY``; reading them back (from the page cache) is part of it, so
  this bounds the cost of writing the export's bytes once from above.

``python -m tests.benchmarks.physical_floor scan|write --workdir W`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

from tests.benchmarks.synthetic_lake import using_workdir
from warehouse import hub, lake

TEXT_COLUMNS = ("completion", "reasoning", "final", "prompt")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scan(workdir: Path) -> dict:
    with using_workdir(workdir):
        glob = str(lake.table_dir("generations") / "*" / "*" / "part-*.parquet")
    con = duckdb.connect()
    lengths = ", ".join(f'sum(length("{c}"))' for c in TEXT_COLUMNS)
    started = time.perf_counter()
    row = con.execute(f"SELECT count(*), {lengths} FROM read_parquet({_literal(glob)}, hive_partitioning = false)").fetchone()
    seconds = time.perf_counter() - started
    return {"rows": row[0], "text_chars": int(sum(x or 0 for x in row[1:])), "seconds": round(seconds, 3)}


def write(workdir: Path) -> dict:
    with using_workdir(workdir):
        strata = [p for name in hub.STRATA.values() for p in hub.segment_files(hub.stratum_source(name))]
        target = lake.scratch_dir() / "physical_floor_export.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    sources = "[" + ", ".join(_literal(str(p)) for p in strata if p.exists()) + "]"
    con = duckdb.connect()
    started = time.perf_counter()
    # zstd level 1, as pyarrow writes the lake and the HF export (DuckDB's default level 3 is slower).
    con.execute(f"COPY (SELECT * FROM read_parquet({sources})) TO {_literal(str(target))} "
                "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)")
    seconds = time.perf_counter() - started
    size = target.stat().st_size
    rows = con.execute(f"SELECT count(*) FROM read_parquet({_literal(str(target))})").fetchone()[0]
    target.unlink()
    return {"rows": rows, "bytes": size, "seconds": round(seconds, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("scan", "write"))
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    print(json.dumps((scan if args.what == "scan" else write)(args.workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
