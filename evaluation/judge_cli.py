"""`reasonlite judge` and `reasonlite vote-llm`: the LLM as a measured fallback (evaluation/judge.py)."""

from __future__ import annotations


def _common(p) -> None:
    p.add_argument("--config", required=True, help="YAML generation config with purpose: judge "
                   "(generation/configs/judge_cpu.yaml, judge_gptoss120b.yaml, vote_llm_cpu.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key: --set run_id=judge-v2 --set sampling.max_tokens=4096")
    p.add_argument("--limit", type=int, metavar="N", help="send at most N units (judge: most frequent pairs first)")
    p.add_argument("--dry-run", action="store_true", help="count what would be sent; load no model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub) -> None:
    p = sub.add_parser(
        "judge",
        help="LLM judge for the (label, answer) pairs the grader abstained on (after `reasonlite curate`)",
        description="One generation run (purpose judge) with upstream's judge prompt over each distinct "
        "(label, answer) pair of judged_generations the symbolic grader abstained on (unparseable or "
        "free-form answers), or every pair with --all. Rerun `reasonlite curate` afterwards: "
        "judged_generations takes the LLM verdict where the grader abstained (judge_source = 'llm'), "
        "judge_agreement compares the two. Resumable: pairs judged before in the run are skipped.",
    )
    _common(p)
    p.add_argument("--all", action="store_true", help="every pair, not just the abstained ones (for comparison)")
    p.set_defaults(handler=_judge)

    p = sub.add_parser(
        "vote-llm",
        help="upstream's LLM tally of each problem's answers (compared in judge_agreement)",
        description="One generation run (purpose judge) with upstream's vote prompt per problem, listing "
        "the voting samples' extracted answers (int_llm_tallies.answers); the tally "
        "\\boxed{\"answer\": count, ...} is parsed into int_llm_tallies by `reasonlite curate`. By default "
        "only problems whose answers the grader cannot key (unparseable or free-form); --all for every one.",
    )
    _common(p)
    p.add_argument("--all", action="store_true", help="every problem with answers, not just the abstained ones")
    p.set_defaults(handler=_vote_llm)


def _check_limit(args) -> None:
    from warehouse.errors import UserError

    if args.limit is not None and args.limit < 0:
        raise UserError(f"--limit {args.limit}: must be >= 0")


def _judge(args) -> int:
    from evaluation.judge import format_report, run_judge

    _check_limit(args)
    report = run_judge(args.config, args.overrides, all_pairs=args.all, limit=args.limit,
                       dry_run=args.dry_run, progress=not args.no_progress)
    print(format_report(report, args.all))
    return 0


def _vote_llm(args) -> int:
    from evaluation.judge import format_report, run_vote_llm

    _check_limit(args)
    report = run_vote_llm(args.config, args.overrides, all_problems=args.all, limit=args.limit,
                          dry_run=args.dry_run, progress=not args.no_progress)
    print(format_report(report, args.all))
    return 0
