"""A small imported teacher run whose answers the grader partly abstains on (free-form words,
unparseable LaTeX), written as the JSONL a user would import (`reasonlite import-generations`
with `problem` and `expected_answer` columns)."""

from __future__ import annotations

import json
from pathlib import Path

INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."

# problem_id -> (problem, dataset label, [(boxed answer, finish_reason)])
PROBLEMS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    # Free-form words: the grader keys them as text and cannot tell "primes" from the label.
    "toy:0": ("Which positive integers have exactly two positive divisors?", "\\text{the set of all primes}",
              [("primes", "stop"), ("primes", "stop"), ("\\text{the set of all primes}", "stop"),
               ("composite numbers", "stop")]),
    # Proof-like LaTeX the grader cannot parse (fallback keys): only the identical answer is decided.
    "toy:1": ("Which triangles are similar in the figure?", "\\triangle ABC \\sim \\triangle DEF",
              [("\\triangle ABC \\sim \\triangle DEF", "stop"), ("\\triangle DEF \\sim \\triangle ABC", "stop"),
               ("5", "stop"),
               ("AB \\parallel CD", "length")]),  # truncated: never reaches the label check, never sent
    # Numbers: all decided symbolically.
    "toy:2": ("What is 1/4 + 1/4?", "1/2", [("0.5", "stop"), ("\\frac{1}{2}", "stop"), ("3", "stop"),
                                          ("\\frac12", "stop")]),
    # A confident vote (4 of 4) overrides the dataset label 7: decided.
    "toy:3": ("What is 2^3?", "7", [("8", "stop"), ("8", "stop"), ("8", "stop"), ("8", "stop")]),
}

# Distinct (label, answer) pairs the grader abstains on, for the curated samples above.
ABSTAINED_PAIRS = {
    ("\\text{the set of all primes}", "primes"),
    ("\\text{the set of all primes}", "composite numbers"),
    ("\\triangle ABC \\sim \\triangle DEF", "\\triangle DEF \\sim \\triangle ABC"),
    ("\\triangle ABC \\sim \\triangle DEF", "5"),
}
ABSTAINED_PROBLEMS = {"toy:0", "toy:1"}


def write_run(path: Path) -> Path:
    rows = []
    for problem_id, (problem, label, samples) in PROBLEMS.items():
        for idx, (answer, finish) in enumerate(samples):
            final = f"So the answer is $\\boxed{{{answer}}}$." if finish == "stop" else None
            completion = f"<think>Let me work on it, attempt {idx}.</think>" + (final or "") if final else \
                "<think>Let me work on it and never stop"
            rows.append({
                "problem_id": problem_id, "sample_idx": idx, "problem": problem + INSTRUCTION,
                "expected_answer": label, "completion": completion, "finish_reason": finish,
                "prompt_tokens": 40, "completion_tokens": 30 + idx, "reasoning_level": "medium",
            })
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
