"""The upstream way, as a straightforward Python program: the baseline `make bench` compares against.

Upstream ReasonLite (AMD-AGI/ReasonLite, ``utils/mode_handler.py``) keeps every solution as a JSON
line, loads whole files into lists of dicts, groups solutions per problem in a dict, asks the
teacher LLM to tally the answers (``vote`` mode), applies the vote rule (top share >= 0.9 and >= 4
votes, ``utils/prompt_func.judge_prompt``) and then asks the LLM once per solution whether its
answer matches the label (``judge_vote`` mode). An LLM call per solution cannot run here, so the
fair deterministic stand-in is math-verify, the symbolic checker upstream's own evaluation uses:

1. **load**: every JSON line into memory (``json.loads`` per line, as upstream's ``_read_jsonl_many``);
2. **vote**: per problem, a dict of answer groups; each solution's final text is parsed with
   ``math_verify.parse`` (one call per solution) and joins the first group it ``verify``-matches
   (a dict keyed by the parsed value catches identical values first), else opens a new group;
3. **label**: the top group becomes the label when its share of the answered solutions is
   >= ``vote_ratio`` and it has >= ``min_votes`` votes, else the dataset label stands;
4. **judge**: every solution that finished, has reasoning and a boxed final, gets one
   ``verify(parse(label), parse(answer))`` call — a separate pass, as upstream's separate script.

The same rules as the dbt models (votes only from finished, error-free solutions with a
``\\boxed`` answer; share over answered solutions), so labels can be compared one to one.

``export_jsonl(workdir)`` turns a bench lake into upstream-style JSON lines (not timed: upstream's
data already was JSONL); ``python -m tests.benchmarks.baseline_upstream --jsonl X --out Y`` runs the
timed part in its own process, so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

JSONL_NAME = "answer_origin.jsonl"


def export_jsonl(workdir: Path) -> Path:
    """Write the bench lake's teacher generations as upstream ``answer_origin`` records.

    Each record carries its problem's info (prompt, expected_answer) like upstream's did.
    """
    import duckdb

    from tests.benchmarks.synthetic_lake import using_workdir
    from warehouse import db, lake

    out = Path(workdir) / JSONL_NAME
    tmp = out.with_name(f".tmp-{out.name}")
    with using_workdir(workdir):
        con = duckdb.connect(config={"temp_directory": str(lake.scratch_dir())})
        db.create_lake_views(con)
        con.execute(
            f"""
            COPY (
                SELECT
                    g.run_id || ':' || g.problem_id || '_' || g.sample_idx AS "index",
                    g.problem_id,
                    g.run_id,
                    g.reasoning_level,
                    {{'index': p.problem_id, 'prompt': p.prompt, 'expected_answer': p.expected_answer,
                      'difficulty': p.difficulty}} AS info,
                    g.prompt AS model_input,
                    g.completion AS model_output,
                    g.reasoning,
                    g."final",
                    g.finish_reason,
                    g.error,
                    g.completion_tokens
                FROM generations AS g
                LEFT JOIN problems AS p USING (problem_id)
                LEFT JOIN runs AS r USING (run_id)
                WHERE coalesce(r.purpose, 'teacher') = 'teacher'
            ) TO {db._sql_str(str(tmp))} (FORMAT json)
            """
        )
        con.close()
    tmp.replace(out)
    return out


# ---------------------------------------------------------------------------------- the timed part


def _parse_label(label: str | None):
    from math_verify import parse

    if label is None or not label.strip():
        return []
    # A bare label needs delimiters for math-verify's LaTeX reader ("\frac{1}{2}" alone parses as 1).
    return parse(label if "$" in label or "\\boxed" in label else "\\boxed{" + label + "}")


def _key(parsed) -> str:
    return str(parsed[0]) if parsed else ""


def run(jsonl: Path, vote_ratio: float = 0.9, min_votes: int = 4, progress: bool = True) -> dict:
    """Vote and judge as upstream did (math-verify instead of the LLM); returns labels and counts."""
    from math_verify import parse, verify

    timings = {}
    t0 = time.perf_counter()
    with open(jsonl) as fh:
        records = [json.loads(line) for line in fh]
    timings["load_s"] = time.perf_counter() - t0

    # ---- vote: group answers per problem up to equivalence
    t1 = time.perf_counter()
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        by_problem[rec["problem_id"]].append(rec)
    votes: dict[str, dict] = {}
    parse_calls = verify_calls = 0
    for n_done, (pid, recs) in enumerate(by_problem.items()):
        groups: list[dict] = []  # {"parsed", "answer", "votes"}
        by_key: dict[str, dict] = {}
        answered = 0
        for rec in recs:
            final = rec.get("final")
            if rec.get("error") or rec.get("finish_reason") == "length" or not final or "\\boxed" not in final:
                continue
            parsed = parse(final)
            parse_calls += 1
            if not parsed:
                continue
            answered += 1
            group = by_key.get(_key(parsed))
            if group is None:
                for candidate in groups:
                    verify_calls += 1
                    if verify(candidate["parsed"], parsed):
                        group = candidate
                        break
            if group is None:
                group = {"parsed": parsed, "answer": parsed[-1], "votes": 0}
                groups.append(group)
            by_key.setdefault(_key(parsed), group)
            group["votes"] += 1
        info = recs[0]["info"] or {}
        top = max(groups, key=lambda g: g["votes"]) if groups else None
        passes = top is not None and top["votes"] / answered >= vote_ratio and top["votes"] >= min_votes
        dataset_label = info.get("expected_answer")
        votes[pid] = {
            "label": top["answer"] if passes else dataset_label,
            "label_source": "vote" if passes else ("dataset" if dataset_label is not None else "none"),
            "label_parsed": top["parsed"] if passes else _parse_label(info.get("expected_answer")),
            "top_votes": top["votes"] if top else 0,
            "answered": answered,
            "n_groups": len(groups),
        }
        if progress and n_done and n_done % 2000 == 0:
            print(f"  [baseline] voted {n_done:,}/{len(by_problem):,} problems, "
                  f"{time.perf_counter() - t1:.0f} s", file=sys.stderr, flush=True)
    timings["vote_s"] = time.perf_counter() - t1

    # ---- judge: one verify(parse(label), parse(answer)) per solution, as a separate pass
    t2 = time.perf_counter()
    funnel = defaultdict(int)
    kept_by_level = defaultdict(int)
    for n_done, rec in enumerate(records):
        funnel["samples"] += 1
        final = rec.get("final")
        if rec.get("error"):
            reason = "error"
        elif rec.get("finish_reason") == "length":
            reason = "truncated"
        elif not rec.get("reasoning"):
            reason = "no_reasoning"
        elif not final:
            reason = "no_final"
        elif "\\boxed" not in final:
            reason = "no_boxed"
        else:
            label = votes[rec["problem_id"]]["label_parsed"]
            parsed = parse(final)
            parse_calls += 1
            verify_calls += 1
            if not parsed:
                reason = "no_answer"
            elif not label:
                reason = "no_label"
            elif verify(label, parsed):
                reason = None
            else:
                reason = "inconsistent"
        if reason is None:
            funnel["kept"] += 1
            kept_by_level[rec.get("reasoning_level") or "none"] += 1
        else:
            funnel[reason] += 1
        if progress and n_done and n_done % 50_000 == 0:
            print(f"  [baseline] judged {n_done:,}/{len(records):,} solutions, "
                  f"{time.perf_counter() - t2:.0f} s", file=sys.stderr, flush=True)
    timings["judge_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    return {
        "records": len(records),
        "problems": len(by_problem),
        "labels": {pid: {"label": v["label"], "label_source": v["label_source"]} for pid, v in votes.items()},
        "vote_labels": sum(v["label_source"] == "vote" for v in votes.values()),
        "funnel": dict(funnel),
        "kept_by_level": dict(kept_by_level),
        "parse_calls": parse_calls,
        "verify_calls": verify_calls,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="upstream-style voting and judging (math-verify stand-in)")
    parser.add_argument("--jsonl", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="result JSON (labels, funnel, timings)")
    parser.add_argument("--vote-ratio", type=float, default=0.9)
    parser.add_argument("--min-votes", type=int, default=4)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.jsonl, args.vote_ratio, args.min_votes, progress=not args.quiet)
    args.out.write_text(json.dumps(result))
    print(json.dumps({k: v for k, v in result.items() if k != "labels"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
