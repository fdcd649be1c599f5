"""`reasonlite evaluate` and `reasonlite report`."""

from __future__ import annotations

import sys


def register(sub) -> None:
    """Add this stage's subcommands to the `reasonlite` parser."""
    p = sub.add_parser(
        "evaluate",
        help="sample a model on benchmarks (avg@n, pass@k, maj@n, budget curve) and score with the grader",
        description="Ingest the benchmarks, run one resumable generation run with purpose 'eval' per "
        "benchmark (run id eval-<model>-<benchmark>-<hash of the sampling settings>), build the eval "
        "marts with dbt and print eval_scores, scored twice: upstream's way (the paper's) and strictly. Settings "
        "default to the preset (upstream's protocol), which the checkpoint's training record picks.",
    )
    p.add_argument("--model", required=True, help="model folder (vllm/transformers) or served model name (openai)")
    p.add_argument("--benchmarks", default="aime24,aime25,amc23",
                   help="comma-separated: aime24, aime25, amc23, math500, gsm8k (default: the paper's three)")
    p.add_argument("--preset", choices=["turbo", "final"],
                   help="turbo: T 0.6, top_p 0.95, 32K tokens; final: T 1.0, top_p 0.98, 64K context "
                        "(generation/configs/eval_*.yaml). Default: from the checkpoint's training record "
                        "(stage 1 -> turbo, stage 2 -> final); turbo for a model without one")
    p.add_argument("--n", type=int, help="samples per problem (default 16)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--max-tokens", type=int, help="completion tokens per sample")
    p.add_argument("--seed", type=int, help="base seed (sample k of a problem gets a seed derived from it)")
    p.add_argument("--backend", choices=["vllm", "openai", "transformers"], help="default: the preset's (vllm)")
    p.add_argument("--benchmark-dir", metavar="DIR",
                   help="read DIR/<name>.jsonl (id, problem, answer) instead of the HuggingFace datasets")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N problems of each benchmark")
    p.add_argument("--name", help="model name used in the run ids (default: the model folder's name)")
    p.add_argument("--max-model-len", type=int, help="engine context length (vllm / transformers)")
    p.add_argument("--gpu-memory-utilization", type=float,
                   help="vLLM's share of GPU memory (default 0.9); on the CPU the KV cache is sized in bytes")
    p.add_argument("--kv-cache-gib", type=float, help="vLLM KV cache size in GiB (default on the CPU: what the run needs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any generation config key, e.g. --set vllm.batch_problems=8")
    p.add_argument("--no-score", action="store_true", help="generate only; skip the dbt build")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_evaluate)

    p = sub.add_parser(
        "report",
        help="self-contained report.html, markdown table (paper's Table 1 layout), CSV and PNG plots",
        description="Write report.html (every chart inline, no request leaves the machine), report.md, "
        "eval_scores.csv and plots (accuracy vs token budget, completion lengths, curation funnel) under "
        "warehouse/reports/<timestamp>/ from the marts. Curation alone is enough; evaluations add their part.",
    )
    p.add_argument("--out", metavar="DIR", help="parent folder of the report (default: warehouse/reports)")
    p.set_defaults(handler=_report)

    p = sub.add_parser(
        "compare",
        help="paired differences between two evaluated models or runs, with 95 %% intervals and p-values",
        description="A and B: a run id, a model path or model name as in eval_scores, or the --name given to "
        "`reasonlite evaluate`. Per benchmark both ran, on the problems and samples both share: avg@n, pass@k, "
        "maj@n of A and B, diff = B - A, a paired bootstrap 95 % interval (problems, and samples within each "
        "problem) and a paired permutation p-value. Reads the mart eval_problem_results.",
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--benchmarks", help="comma-separated; default: every benchmark both ran")
    p.add_argument("--k", help="comma-separated k of pass@k (default 2, 4, 8, ... up to n, and n)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="json/csv: values as fractions, on stdout; what was resolved and left out goes to stderr")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples and permutations (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the permutations (default 0)")
    p.add_argument("--scoring", choices=["upstream", "strict"], default="upstream",
                   help="whose correctness: upstream's protocol (the paper's, default) or this grader's strict one")
    p.set_defaults(handler=_compare)


def _check_positive(value, flag: str) -> None:
    from warehouse.errors import UserError

    if value is not None and value < 1:
        raise UserError(f"{flag}: must be >= 1, got {value}")


def _evaluate(args) -> int:
    from evaluation.evaluate import EvalOptions, evaluate, format_scores

    _check_positive(args.n, "--n")
    _check_positive(args.limit, "--limit")
    _check_positive(args.max_tokens, "--max-tokens")
    options = EvalOptions(
        model=args.model, benchmarks=args.benchmarks, preset=args.preset, n=args.n,
        temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed,
        backend=args.backend, benchmark_dir=args.benchmark_dir, limit=args.limit, name=args.name,
        max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization,
        kv_cache_gib=args.kv_cache_gib,
        overrides=args.overrides, score=not args.no_score, progress=not args.no_progress,
    )
    result = evaluate(options, log=lambda m: print(f"evaluate: {m}", file=sys.stderr))
    if result.errors:
        print(f"evaluate: {result.errors} samples failed (error column); run the same command again to retry them",
              file=sys.stderr)
    if not options.score:
        print("runs: " + ", ".join(result.run_ids.values()))
        return 0
    if not result.dbt_ok:
        print("evaluate: dbt build of the eval marts failed:", file=sys.stderr)
        for failure in result.dbt_failures[:10]:
            print(f"  ! {failure}", file=sys.stderr)
        return 1
    print(format_scores(result.scores))
    print('same numbers: reasonlite sql "select * from eval_scores"; tables and plots: reasonlite report')
    return 0


def _report(args) -> int:
    from evaluation.report import build_report

    report = build_report(args.out)
    print(f"report: {report.directory}")
    for path in report.files:
        print(f"  {path.name}")
    for note in report.skipped:
        print(f"  (no {note})")
    return 0


def _compare(args) -> int:
    from evaluation.compare import compare, context_lines, render_csv, render_json, render_table
    from warehouse import db, lake
    from warehouse.errors import UserError

    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()] if args.k else None
    except ValueError:
        raise UserError(f"--k: expected comma-separated integers, got {args.k!r}") from None
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()] if args.benchmarks else None
    if not lake.database_path().exists():
        raise UserError(f"{lake.database_path()}: no warehouse yet; run `reasonlite evaluate` first")
    con = db.connect(read_only=True)
    try:
        comparison = compare(con, args.a, args.b, benchmarks=benchmarks, ks=ks, resamples=args.resamples,
                             seed=args.seed, scoring=args.scoring)
    finally:
        con.close()
    if args.format == "table":
        print(render_table(comparison))
    else:
        for line in context_lines(comparison):
            print(f"compare: {line}", file=sys.stderr)
        print(render_json(comparison) if args.format == "json" else render_csv(comparison))
    return 0
