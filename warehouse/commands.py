"""Lake commands: ingest, import-generations, sql, status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from warehouse.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("ingest", help="add problems from a local file or a HuggingFace dataset id")
    p.add_argument("spec", help="a .jsonl/.json/.csv/.parquet file, or a dataset id like ORG/NAME")
    p.add_argument("--source", help="source name; problem ids become <source>:<row> (default: the preset's, "
                   "polaris or openmathreasoning, the names the teacher configs select)")
    p.add_argument("--preset", choices=["polaris", "openmathreasoning", "benchmark"],
                   help="column names of a known set (and its source name)")
    p.add_argument("--problem-col", help="column holding the problem text")
    p.add_argument("--answer-col", help="column holding the dataset answer")
    p.add_argument("--difficulty-col", help="column holding a difficulty")
    p.add_argument("--split", default="train", help="dataset split (hub datasets)")
    p.add_argument("--config", help="dataset config name (hub datasets)")
    p.add_argument("--limit", type=int, help="ingest only the first N rows")
    p.add_argument("--merge-duplicates", action=argparse.BooleanOptionalAction, default=None,
                   help="one problem per distinct problem text (Unicode NFKC, whitespace collapsed), the first "
                   "row's; default: on for --preset polaris/openmathreasoning (one row per solution), else off")
    p.set_defaults(handler=_ingest)

    p = sub.add_parser("import-generations", help="bring existing teacher or evaluation outputs into the lake")
    p.add_argument("file", help="JSONL or Parquet, one row per sample (problem_id, completion, ...); or upstream "
                   "ReasonLite's files as they are: datas/<exp>/, or a file or folder under it (auto-detected)")
    p.add_argument("--run-id", help="required, except for upstream files: default the experiment's folder name")
    p.add_argument("--model", help="the model that wrote the samples (required)")
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
    p.add_argument("--memory-limit", help="DuckDB memory limit of the query, e.g. 4GB (default: 80%% of RAM); "
                                          "the query never spills to disk")
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
            config=args.config, limit=args.limit, merge_duplicates=args.merge_duplicates, progress=bar.update,
        )
    print(f"{report.source}: read {report.rows_read} rows, wrote {report.rows_written}, "
          f"already in the lake {report.already_present}")
    if report.rows_merged:
        print(f"{report.source}: merged {report.rows_merged} rows that repeat a problem text (after NFKC and "
              f"whitespace) into {report.problems} problems, each the first row's (e.g. "
              f"{'; '.join(report.duplicate_examples)})")
        if report.answer_conflicts:
            print(f"{report.source}: {report.answer_conflicts} merged problems had rows with another "
                  f"expected_answer; kept the first row's (e.g. {', '.join(report.conflict_examples)})")
    elif report.duplicate_prompts:
        print(f"{report.source}: {report.duplicate_prompts} rows repeat an earlier prompt "
              f"(e.g. {'; '.join(report.duplicate_examples)}); kept (--merge-duplicates keeps one per text)")
    if report.not_in_file:
        print(f"{report.source}: the lake holds {report.not_in_file} more problems of this source than the "
              "file has rows (kept; a problem id is never removed)")
    return 0


def _import_generations(args) -> int:
    from warehouse import upstream
    from warehouse.ingest import import_generations

    if not args.model:
        raise UserError("--model is required: the model that wrote the samples"
                        + (" (upstream's files do not record it; its config/oss.yaml uses openai/gpt-oss-120b)"
                           if upstream.is_upstream(args.file) else ""))
    with _progress("import") as bar:
        if upstream.is_upstream(args.file):
            if args.purpose != "teacher" or args.reasoning_level:
                raise UserError("upstream files: --purpose and --reasoning-level come from the files "
                                "(samples: teacher, verdicts and tallies: judge; the level from model_input)")
            reports = upstream.import_upstream(args.file, args.model, run_id=args.run_id,
                                               problem_source=args.problem_source, progress=bar.update)
        else:
            if args.run_id is None:
                raise UserError("--run-id is required (only upstream ReasonLite files name their own run)")
            reports = [import_generations(
                args.file, args.run_id, args.model, purpose=args.purpose,
                reasoning_level=args.reasoning_level, problem_source=args.problem_source, progress=bar.update,
            )]
    for report in reports:
        what = "samples" if report.purpose != "judge" else "verdicts/tallies"
        print(f"{report.run_id}: read {report.rows_read} {what}, wrote {report.rows_written}, "
              f"already in the lake {report.already_present}, new problems {report.problems_created}")
        for note in report.notes:
            print(f"{report.run_id}: {note}")
    return 0


def _sql(args) -> int:
    import os
    import uuid

    from warehouse import db

    out = Path(args.out) if args.out else None
    fmt = db.result_format(args.format, out)
    if fmt == "parquet" and out is None:
        raise UserError("--format parquet needs --out FILE")
    target = db.check_result_path(out, args.force) if out else None
    # The query runs in a child process that cannot write any file (warehouse.db.sandboxed_query);
    # this process only formats the Arrow batches it streams back. A table needs max_rows + 1 rows.
    # Forked: this process holds no DuckDB connection (the statement check closed its own) and
    # starts no threads.
    row_limit = args.max_rows + 1 if fmt == "table" else None
    with db.readonly_query(args.query, row_limit=row_limit, memory_limit=args.memory_limit, fork=True) as result:
        if target is None:
            db.write_result(result, fmt, sys.stdout, max_rows=args.max_rows)
            return 0
        # Written beside the target and renamed over it: an error or a kill leaves the old file whole.
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb" if fmt == "parquet" else "w", newline="" if fmt == "csv" else None) as stream:
                rows = db.write_result(result, fmt, stream, max_rows=args.max_rows)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
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
