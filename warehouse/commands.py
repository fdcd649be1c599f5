"""Lake commands: ingest, import-generations, sql, status."""

from __future__ import annotations

import sys
from pathlib import Path

from warehouse.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("ingest", help="add problems from a local file or a HuggingFace dataset id")
    p.add_argument("spec", help="a .jsonl/.json/.csv/.parquet file, or a dataset id like ORG/NAME")
    p.add_argument("--source", required=True, help="source name; problem ids become <source>:<row>")
    p.add_argument("--preset", choices=["polaris", "openmathreasoning", "benchmark"],
                   help="column names of a known set")
    p.add_argument("--problem-col", help="column holding the problem text")
    p.add_argument("--answer-col", help="column holding the dataset answer")
    p.add_argument("--difficulty-col", help="column holding a difficulty")
    p.add_argument("--split", default="train", help="dataset split (hub datasets)")
    p.add_argument("--config", help="dataset config name (hub datasets)")
    p.add_argument("--limit", type=int, help="ingest only the first N rows")
    p.set_defaults(handler=_ingest)

    p = sub.add_parser("import-generations", help="bring existing teacher or evaluation outputs into the lake")
    p.add_argument("file", help="JSONL or Parquet, one row per sample (problem_id, completion, ...)")
    p.add_argument("--run-id", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--purpose", default="teacher", choices=["teacher", "eval", "judge"])
    p.add_argument("--reasoning-level", help="e.g. medium or high, when rows do not say")
    p.add_argument("--problem-source", default="imported",
                   help="source for problem ids without a '<source>:' prefix")
    p.set_defaults(handler=_import_generations)

    p = sub.add_parser("sql", help="run a read-only query over the lake and the marts")
    p.add_argument("query", help="one statement: a query, a plain EXPLAIN or a read-only PRAGMA")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"],
                   help="output format (default: table, or what --out's extension names)")
    p.add_argument("--out", help="write the result to this file (never inside the lake, marts or exports)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--max-rows", type=int, default=100, help="rows shown in table format")
    p.set_defaults(handler=_sql)

    p = sub.add_parser("status", help="runs, rows per table and sizes")
    p.set_defaults(handler=_status)


def _progress(description: str):
    from tqdm import tqdm

    return tqdm(desc=description, unit=" rows", disable=not sys.stderr.isatty(), leave=False)


def _ingest(args) -> int:
    from warehouse.ingest import ingest_problems

    with _progress("ingest") as bar:
        report = ingest_problems(
            args.spec, args.source, preset=args.preset, problem_col=args.problem_col,
            answer_col=args.answer_col, difficulty_col=args.difficulty_col, split=args.split,
            config=args.config, limit=args.limit, progress=bar.update,
        )
    print(f"{report.source}: read {report.rows_read} rows, wrote {report.rows_written}, "
          f"already in the lake {report.already_present}")
    if report.duplicate_prompts:
        print(f"{report.source}: {report.duplicate_prompts} rows repeat an earlier prompt exactly "
              f"(e.g. {'; '.join(report.duplicate_examples)}); kept, curation decides")
    if report.not_in_file:
        print(f"{report.source}: the lake holds {report.not_in_file} more problems of this source than the "
              "file has rows (kept; a problem id is never removed)")
    return 0


def _import_generations(args) -> int:
    from warehouse.ingest import import_generations

    with _progress("import") as bar:
        report = import_generations(
            args.file, args.run_id, args.model, purpose=args.purpose,
            reasoning_level=args.reasoning_level, problem_source=args.problem_source, progress=bar.update,
        )
    print(f"{report.run_id}: read {report.rows_read} samples, wrote {report.rows_written}, "
          f"already in the lake {report.already_present}, new problems {report.problems_created}")
    return 0


def _sql(args) -> int:
    import os
    import uuid

    import duckdb

    from warehouse import db

    out = Path(args.out) if args.out else None
    fmt = db.result_format(args.format, out)
    if fmt == "parquet" and out is None:
        raise UserError("--format parquet needs --out FILE")
    target = db.check_result_path(out, args.force) if out else None
    try:
        relation = db.run_readonly_sql(args.query)
        if target is None:
            db.write_result(relation, fmt, sys.stdout, max_rows=args.max_rows)
            return 0
        # Written beside the target and renamed over it: an error or a kill leaves the old file whole.
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb" if fmt == "parquet" else "w", newline="" if fmt == "csv" else None) as stream:
                rows = db.write_result(relation, fmt, stream, max_rows=args.max_rows)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except duckdb.Error as err:
        raise UserError(f"DuckDB: {str(err).strip().splitlines()[0]}") from None
    print(f"wrote {target} ({fmt}, {rows:,} rows)")
    return 0


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _status(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from warehouse import db, lake

    console = Console()
    con = db.connect(read_only=True)
    console.print(f"lake: {lake.lake_root()}")
    tables = Table("table", "rows", "parts", "size")
    for name in ("problems", "generations"):
        rows = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        tables.add_row(name, f"{rows:,}", str(sum(1 for _ in lake.iter_parts(name))),
                       f"{_dir_size(lake.table_dir(name)) / 1e6:.1f} MB")
    for name in ("runs", "training_runs"):
        rows = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        tables.add_row(name, f"{rows:,}", "-", f"{_dir_size(lake.table_dir(name)) / 1e6:.1f} MB")
    console.print(tables)
    runs = con.execute("""
        SELECT r.run_id, r.purpose, r.model, r.status, count(g.sample_idx) AS samples,
               sum(g.completion_tokens) AS tokens, count(g.error) AS errors
        FROM runs r LEFT JOIN generations g USING (run_id)
        GROUP BY ALL ORDER BY r.run_id""").fetchall()
    if runs:
        table = Table("run", "purpose", "model", "status", "samples", "tokens", "errors")
        for row in runs:
            table.add_row(*[("" if v is None else f"{v:,}" if isinstance(v, int) else str(v)) for v in row])
        console.print(table)
    database = lake.database_path()
    if database.exists():
        marts = con.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                        "WHERE table_catalog = 'warehouse' ORDER BY 1").fetchall()
        console.print(f"marts: {database} ({_dir_size(database) / 1e6:.1f} MB), "
                      f"{len(marts)} tables/views")
        build = con.execute("SELECT build_id, invocation_id, finished_at FROM warehouse.main.curation_build "
                            "LIMIT 1").fetchone() if ("main.curation_build",) in marts else None
        if build:  # which snapshot this reader sees: a curate running now publishes a new one when done
            console.print(f"build: {build[0]} (dbt invocation {build[1]}, finished {build[2]})")
    else:
        console.print("marts: not built yet (run `reasonlite curate`)")
    return 0
