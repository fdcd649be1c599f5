"""A synthetic lake at the paper's scale: 343K problems and 9.1M teacher solutions at scale 1.0.

ReasonLite's curation touched 343K problems (Polaris + OpenMathReasoning) and 9.1M gpt-oss-120b
solutions in two reasoning modes. This module writes a lake of the same shape through
``warehouse.lake`` (real parts, real manifests) so that ``reasonlite curate`` and the upstream-style
baseline can be measured on identical data:

* problems: ``polaris:<i>`` (15.5 %) and ``openmathreasoning:<i>``, short prompts, a dataset label
  ``expected_answer`` that is usually right, sometimes wrong (7 %), missing (3 %) or written in
  another surface form than the teacher uses (``0.75`` vs ``\\frac{3}{4}``);
* two teacher runs, ``medium`` (16 samples of every problem) and ``high`` (16 samples of 65.8 % of
  the problems) — 5.49M + 3.61M = 9.1M rows at scale 1.0;
* per problem a planted *vote profile*: confident majorities, majorities below the 0.9 bar, split
  votes, confidently wrong teachers, hard problems with scattered answers; the right answer comes in
  several equivalent surface forms (``1/2``, ``\\frac{1}{2}``, ``\\dfrac{1}{2}``, ``0.5``);
* per sample: unparseable boxed answers, finals without ``\\boxed``, missing reasoning, engine
  errors, and truncations (``finish_reason = 'length'``, no final) where the log-normal
  ``completion_tokens`` (longer for ``high`` and for harder problems) pass ``max_tokens``.

Two text profiles. ``short`` (the default): a Harmony completion of ~300 characters, while
``completion_tokens`` carries the length a real solution would have. ``realistic``: the same rows,
but each text as long as its ``completion_tokens`` say (``CHARS_PER_TOKEN`` characters a token): a
long analysis channel (synthesized math-reasoning text, ``realistic_text``, whose zstd ratio is
that of real model output) ending in the planted conclusion, and a short final channel (a few
sentences, then the planted ``\\boxed`` answer); truncated solutions run to ``max_tokens``. Every
column but the texts is identical between the two profiles. Everything is vectorized (numpy +
pyarrow compute) in chunks of 32,768 problems (≈ 0.9M rows); realistic texts are written in parts
of ~``PART_TEXT_BYTES`` of text, by ``jobs`` worker processes, so memory stays bounded. The same
seed gives the same rows whatever the number of jobs.

The planted truth of each problem (profile, right answer and its forms, whether the label is
wrong) is in ``problems.metadata`` so tests can check what a curation concluded.

CLI: ``python -m tests.benchmarks.synthetic_lake --scale 0.01 --workdir /tmp/x [--text-profile realistic]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse import lake

PAPER_PROBLEMS = 343_000
PAPER_GENERATIONS = 9_100_000
SAMPLES_PER_PROBLEM = 16
# Share of problems that also get a `high` run, so that both runs together make 9.1M rows.
HIGH_FRACTION = (PAPER_GENERATIONS / SAMPLES_PER_PROBLEM - PAPER_PROBLEMS) / PAPER_PROBLEMS
POLARIS_SHARE = 53_000 / 343_000  # Polaris-53K next to OpenMathReasoning
CHUNK_PROBLEMS = 32_768
MAX_TOKENS = 30_000
TEACHER_MODEL = "openai/gpt-oss-120b"
RUN_IDS = {"medium": "bench-teacher-medium", "high": "bench-teacher-high"}
EXTRA_RUN_ID = "bench-teacher-extra"
# Bump when the generated rows or parts change, so cached bench lakes are rebuilt (2: part names
# sort in write order, as lake.write_part names them now).
GENERATOR_VERSION = 2
STAMP = "synthetic_lake.json"
TEXT_PROFILES = ("short", "realistic")
# Characters of text per completion token in the realistic profile (o200k: ~4 on math, ~4.5 on
# English prose). The calibration knob: with text that compresses like real output, 4.5 makes the
# exported kept solutions average the released amd/ReasonLite-Dataset's ~7.3 KB of Parquet a row
# (44.7 GB / 6.1M rows); BENCHMARKS.md says how that was measured.
CHARS_PER_TOKEN = 4.5
# The final channel of a real gpt-oss math solution is a short write-up before the boxed answer.
FINAL_SHARE, FINAL_MIN_CHARS, FINAL_MAX_CHARS = 0.08, 120, 2_400
PART_TEXT_BYTES = 96 * 2**20  # realistic texts are generated and written in parts of about this much
K_SLOTS = 8  # answer candidates per problem: up to 3 right surface forms + up to 5 wrong answers

PROFILES = ("confident", "majority", "split", "wrong_confident", "hard")
PROFILE_WEIGHTS = (0.58, 0.14, 0.12, 0.04, 0.12)
_PROFILE_LEVEL = {"confident": 2, "majority": 3, "split": 3, "wrong_confident": 4, "hard": 4}

# gpt-oss Harmony prompt as upstream rendered it (system header with the reasoning level).
_PROMPT_HEAD = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\nCurrent date: 2025-08-12\n\nreasoning: {level}\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
    "<|end|><|start|>developer<|message|><|end|><|start|>user<|message|>\n"
)
_PROMPT_TAIL = "\nPlease reason step by step, and put your final answer within \\boxed{}.\n<|end|><|start|>assistant"
_ANALYSIS = "<|channel|>analysis<|message|>"
_TO_FINAL = "<|end|><|start|>assistant<|channel|>final<|message|>"
_FINAL_ONLY = "<|channel|>final<|message|>"
_RETURN = "<|return|>"

_PROBLEM_TEMPLATES = (
    "Find the number of positive integers $n \\le {a}$ such that $n^2 + {b}$ is divisible by ${c}$.",
    "Let $f(x) = {a}x^2 + {b}x + {c}$. Compute $f({d})$ and simplify.",
    "A bag contains {a} red and {b} blue marbles. Two marbles are drawn without replacement. "
    "What is the probability that both are red?",
    "In triangle $ABC$, $AB = {a}$, $BC = {b}$ and $CA = {c}$. Find the length of the altitude from $A$.",
    "How many ways can {a} identical balls be placed into {c} distinct boxes so that no box is empty?",
    "Solve for $x$: $\\frac{{x + {a}}}{{{b}}} = \\frac{{{c}}}{{x - {d}}}$.",
    "The sequence $a_n$ satisfies $a_1 = {a}$ and $a_{{n+1}} = a_n + {b}n$. Find $a_{{{c}}}$.",
    "A circle of radius {a} is inscribed in a square. A point is chosen at random in the square. "
    "Find the probability that it lies outside the circle.",
    "Determine all pairs of integers $(x, y)$ with $x^2 - {a}y^2 = {b}$ and $0 < x < {c}$.",
    "Evaluate $\\sum_{{k=1}}^{{{a}}} \\frac{{1}}{{k(k+{b})}}$.",
)
_OPENERS = pa.array([
    "We need to solve this.", "Let's parse the problem.", "We need to compute the requested quantity.",
    "Let me think step by step.", "First, restate the problem in symbols.", "We need to find the value.",
    "Let's understand the setup.", "We are asked for a single number.",
])
_STEPS = pa.array([
    "Set up the equation from the given conditions.", "Simplify both sides carefully.",
    "Check small cases to see a pattern.", "Use symmetry to reduce the casework.",
    "Apply the quadratic formula.", "Count the complementary cases instead.",
    "Factor the expression.", "Substitute the boundary values.", "Use the law of cosines.",
    "Telescope the sum.", "Reduce modulo the divisor.", "Compute the discriminant.",
    "Draw the configuration and label the lengths.", "Use Vieta's formulas.",
    "Verify the candidate against the constraints.", "Rationalize the denominator.",
])
# (prefix, suffix) around \boxed{...} in the final message.
_FINAL_FORMS = (
    ("The answer is ", "."), ("**Final answer:** $", "$"), ("Therefore, the final answer is $", "$."),
    ("Thus the answer is ", ""), ("So we get ", "."),
)
_FINAL_PREFIX = pa.array([p for p, _ in _FINAL_FORMS])
_FINAL_SUFFIX = pa.array([s for _, s in _FINAL_FORMS])
# Boxed contents no grader can read: truncated LaTeX, prose, placeholders.
_GARBAGE = pa.array(
    ["", "\\frac{", "???", "\\begin{cases} x & y", "\\text{see above}", "\\text{cannot be determined}",
     "\\ldots", "x=", "\\dfrac{}{}", "\\sqrt{", "\\text{I made an error somewhere}", "\\text{answer}",
     "\\text{as computed}", "\\boxed{", "\\left(", "\\text{TODO}"]
    + [f"\\text{{see step {k}}}" for k in range(1, 49)]
)
_ERRORS = pa.array(["engine error: request timed out", "engine error: CUDA out of memory", "engine error: connection reset"])


# ------------------------------------------------------------------------------------------ answers
# Each family returns (right surface forms, primary first; wrong values) from a random.Random.
# Every form of the right answer is equivalent under math-verify (tests check a sample of them).


def _int_answer(r: random.Random) -> tuple[list[str], list[str]]:
    u = r.random()
    if u < 0.5:
        n = r.randint(0, 100)
    elif u < 0.8:
        n = r.randint(101, 1000)
    elif u < 0.95:
        n = r.randint(1001, 99_999)
    else:
        n = -r.randint(1, 100)
    forms = [str(n), f"{n}.0"]
    if n >= 1000:
        forms.insert(1, f"{n:,}".replace(",", "{,}"))
    wrong = {n + 1, n - 1, 2 * n, n + 10, -n, n // 2, n * n, n + r.randint(2, 9)} - {n}
    return forms[:3], [str(w) for w in sorted(wrong, key=lambda w: r.random())]


def _fraction_answer(r: random.Random) -> tuple[list[str], list[str]]:
    while True:
        q = r.randint(2, 30)
        p = r.randint(1, 3 * q)
        if math.gcd(p, q) == 1:
            break
    sign = "-" if r.random() < 0.1 else ""
    forms = [f"{sign}\\frac{{{p}}}{{{q}}}", f"{sign}\\dfrac{{{p}}}{{{q}}}", f"{sign}{p}/{q}"]
    rest = q
    for f in (2, 5):
        while rest % f == 0:
            rest //= f
    if rest == 1:  # terminating decimal: 3/4 = 0.75
        forms[2] = f"{sign}{p / q:g}"
    flipped = f"\\frac{{{p}}}{{{q}}}" if sign else f"-\\frac{{{p}}}{{{q}}}"  # the sign error
    wrong = [f"\\frac{{{q}}}{{{p}}}", f"\\frac{{{p + 1}}}{{{q}}}", f"\\frac{{{p}}}{{{q + 1}}}",
             f"\\frac{{{p}}}{{{2 * q}}}", flipped, str(p * q)]
    r.shuffle(wrong)
    return forms, wrong


def _sqrt_answer(r: random.Random) -> tuple[list[str], list[str]]:
    a = r.randint(1, 9)
    b = r.choice((2, 3, 5, 6, 7, 10, 11, 13, 14, 15))
    lead = "" if a == 1 else str(a)
    forms = [f"{lead}\\sqrt{{{b}}}", f"{lead} \\sqrt{{{b}}}" if lead else f"\\sqrt{{{b}}}\\cdot 1", f"\\sqrt{{{a * a * b}}}"]
    wrong = [f"{a + 1}\\sqrt{{{b}}}", f"{lead}\\sqrt{{{b + 1}}}", str(a * b), f"\\sqrt{{{a * b + 1}}}",
             f"\\frac{{\\sqrt{{{b}}}}}{{{a + 1}}}", f"{a + 2}\\sqrt{{{b}}}"]
    r.shuffle(wrong)
    return forms, wrong


def _pi_answer(r: random.Random) -> tuple[list[str], list[str]]:
    a, b = r.randint(1, 12), r.choice((1, 2, 3, 4, 6, 8, 12))
    g = math.gcd(a, b)
    a, b = a // g, b // g
    lead = "" if a == 1 else str(a)
    if b == 1:
        forms = [f"{lead}\\pi", f"\\pi {lead}" if lead else "1\\pi"]
    else:
        forms = [f"\\frac{{{lead}\\pi}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}\\pi", f"{lead}\\pi/{b}"]
    wrong = [f"\\frac{{{a + 1}\\pi}}{{{b}}}", f"\\frac{{{a}\\pi}}{{{b + 1}}}", f"{2 * a}\\pi", f"\\frac{{{a}}}{{{b}}}",
             f"{a}\\pi^2"]
    r.shuffle(wrong)
    return forms, wrong


def _poly_answer(r: random.Random) -> tuple[list[str], list[str]]:
    r1, r2 = r.randint(-9, 9), r.randint(-9, 9)
    s, p = -(r1 + r2), r1 * r2

    def term(c: int, var: str) -> str:
        if c == 0:
            return ""
        mag = "" if abs(c) == 1 and var else str(abs(c))
        return f"{'-' if c < 0 else '+'}{mag}{var}"

    def factor(root: int) -> str:
        return "x" if root == 0 else f"(x{'-' if root > 0 else '+'}{abs(root)})"

    expanded = "x^2" + term(s, "x") + term(p, "")
    forms = [expanded, f"{factor(r1)}{factor(r2)}", expanded.replace("x^2", "x^{2}").replace("+", " + ")]
    wrong = ["x^2" + term(-s, "x") + term(p, ""), "x^2" + term(s, "x") + term(-p, ""),
             "x^2" + term(s + 1, "x") + term(p, ""), "x^2" + term(s, "x") + term(p + 2, ""), f"x{term(s, '')}"]
    wrong = [w for w in dict.fromkeys(wrong) if w != expanded]
    r.shuffle(wrong)
    return forms, wrong


def _tuple_answer(r: random.Random) -> tuple[list[str], list[str]]:
    # a < b always: math-verify reads (a, b) as an open interval, and every empty interval is equal.
    a = r.randint(-10, 20)
    b = a + r.randint(1, 15)
    if r.random() < 0.7:
        forms = [f"({a}, {b})", f"({a},{b})", f"\\left({a}, {b}\\right)"]
        wrong = [f"({a - 1}, {b})", f"({a}, {b + 1})", f"({a - 2}, {b + 2})", f"[{a}, {b}]"]
    else:
        forms = [f"[{a}, {b})", f"[{a},{b})"]
        wrong = [f"({a}, {b})", f"[{a}, {b}]", f"[{a}, {b + 1})"]
    r.shuffle(wrong)
    return forms, wrong


def _text_answer(r: random.Random) -> tuple[list[str], list[str]]:
    if r.random() < 0.7:
        letter = r.choice("ABCDE")
        forms = [f"\\text{{({letter})}}", letter, f"({letter})"]
        wrong = [c for c in "ABCDE" if c != letter]
    else:
        yes = r.random() < 0.5
        forms = ["\\text{Yes}", "Yes", "\\text{yes}"] if yes else ["\\text{No}", "No", "\\text{no}"]
        wrong = ["\\text{No}"] if yes else ["\\text{Yes}"]
    r.shuffle(wrong)
    return forms, wrong


def _decimal_answer(r: random.Random) -> tuple[list[str], list[str]]:
    k, d = r.randint(1, 400), r.choice((2, 4, 5, 8))
    if k % d == 0:
        k += 1
    g = math.gcd(k, d)
    p, q = k // g, d // g
    forms = [f"{k / d:g}", f"\\frac{{{p}}}{{{q}}}", f"{p}/{q}"]
    wrong = [f"{(k + 1) / d:g}", f"{k / (d * 2):g}", f"{round(k / d)}", f"{k / d + 10:g}"]
    wrong = [w for w in wrong if w != forms[0]]
    r.shuffle(wrong)
    return forms, wrong


_FAMILIES = (
    (_int_answer, 0.50), (_fraction_answer, 0.12), (_sqrt_answer, 0.09), (_pi_answer, 0.05),
    (_poly_answer, 0.08), (_tuple_answer, 0.05), (_text_answer, 0.04), (_decimal_answer, 0.07),
)
_FAMILY_CUM = np.cumsum([w for _, w in _FAMILIES])


# ------------------------------------------------------------------------------------- the problems


@dataclass
class ProblemChunk:
    """One chunk of problems with everything the sample generator needs (arrays of length P)."""

    index: np.ndarray  # global problem index
    problem_id: pa.Array
    prompt: pa.Array  # the problem text
    level: np.ndarray  # planted hardness 1..5
    profile: np.ndarray  # index into PROFILES
    high: np.ndarray  # bool: also sampled in the `high` run
    candidates: pa.Array  # P * K_SLOTS answer strings (null for empty slots)
    cum: dict[str, np.ndarray]  # level -> (P, K_SLOTS) cumulative choice probabilities
    problems: pa.Table  # the lake rows


def n_problems_for(scale: float) -> int:
    return max(1, round(PAPER_PROBLEMS * scale))


def _chunks(n_problems: int) -> range:
    return range(math.ceil(n_problems / CHUNK_PROBLEMS))


def _rng(seed: int, chunk: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, chunk, stream])


def _slot_weights(r: random.Random, profile: str, n_forms: int, n_wrong: int, boost: float) -> list[float]:
    """Choice probabilities over [right forms..., wrong answers...] for one problem and level."""
    if profile == "confident":
        pc_ = r.uniform(0.93, 1.0)
        wrong = [r.random() for _ in range(min(n_wrong, r.randint(1, 2)))]
    elif profile == "majority":
        pc_ = r.uniform(0.6, 0.9)
        wrong = [r.random() for _ in range(min(n_wrong, r.randint(1, 3)))]
    elif profile == "split":
        pc_ = r.uniform(0.3, 0.55)
        wrong = [3.0] + [r.random() for _ in range(min(n_wrong, r.randint(2, 3)) - 1)]
    elif profile == "wrong_confident":
        pc_ = r.uniform(0.0, 0.05)
        wrong = [30.0] + [r.random() for _ in range(min(n_wrong, 2) - 1)]
    else:  # hard: few right, many scattered wrong answers
        pc_ = r.uniform(0.0, 0.3)
        wrong = [0.5 + r.random() for _ in range(min(n_wrong, r.randint(3, 5)))]
    wrong = wrong[:n_wrong]
    if profile != "wrong_confident":
        pc_ += (1 - pc_) * boost  # `high` reasoning is a little more accurate
    # The teacher mostly writes one surface form per problem; the others are rarer.
    primary = r.uniform(0.6, 0.97) if n_forms > 1 else 1.0
    forms = [primary] + [(1 - primary) / (n_forms - 1)] * (n_forms - 1)
    total_wrong = sum(wrong) or 1.0
    weights = [pc_ * f for f in forms] + [(1 - pc_) * w / total_wrong for w in wrong]
    return weights


def problem_chunk(seed: int, chunk: int, n_problems: int) -> ProblemChunk:
    """The problems of one chunk: deterministic in (seed, chunk)."""
    start = chunk * CHUNK_PROBLEMS
    stop = min(start + CHUNK_PROBLEMS, n_problems)
    count = stop - start
    index = np.arange(start, stop)
    rng = _rng(seed, chunk, 0)
    r = random.Random(f"reasonlite-bench:{seed}:{chunk}")

    profile = np.searchsorted(np.cumsum(PROFILE_WEIGHTS), rng.random(count) * sum(PROFILE_WEIGHTS), side="right")
    profile = np.minimum(profile, len(PROFILES) - 1)
    base_level = np.array([_PROFILE_LEVEL[p] for p in PROFILES])[profile]
    level = np.clip(base_level + rng.integers(-1, 2, count), 1, 5)
    high = rng.random(count) < HIGH_FRACTION
    family = np.minimum(np.searchsorted(_FAMILY_CUM, rng.random(count) * _FAMILY_CUM[-1], side="right"),
                        len(_FAMILIES) - 1)
    label_draw = rng.random(count)

    n_polaris = round(n_problems * POLARIS_SHARE)
    is_polaris = index < n_polaris
    problem_id = [f"polaris:{i}" if i < n_polaris else f"openmathreasoning:{i - n_polaris}" for i in index.tolist()]

    candidates: list[str | None] = []
    cum = {"medium": np.zeros((count, K_SLOTS)), "high": np.zeros((count, K_SLOTS))}
    labels: list[str | None] = []
    prompts: list[str] = []
    metadata: list[str] = []
    for j in range(count):
        forms, wrong = _FAMILIES[family[j]][0](r)
        forms = forms[:3]
        wrong = [w for w in dict.fromkeys(wrong) if w not in forms]
        label_wrong = wrong[-1] if wrong else None
        teacher_wrong = wrong[: min(5, max(1, len(wrong) - 1))]
        prof = PROFILES[profile[j]]
        for lvl, boost in (("medium", 0.0), ("high", 0.25)):
            w = _slot_weights(random.Random(f"{seed}:{chunk}:{j}:{prof}"), prof, len(forms), len(teacher_wrong), boost)
            row = np.zeros(K_SLOTS)
            row[: len(forms)] = w[: len(forms)]
            row[3: 3 + len(w) - len(forms)] = w[len(forms):]
            c = np.cumsum(row / row.sum())
            c[c >= c[-1] - 1e-9] = 1.0  # u < 1 then never lands on an empty trailing slot
            cum[lvl][j] = c
        candidates.extend(forms + [None] * (3 - len(forms)))
        candidates.extend(teacher_wrong + [None] * (5 - len(teacher_wrong)))
        # Dataset label: right (often in another surface form), wrong, missing or $-wrapped.
        u = label_draw[j]
        if u < 0.07 and label_wrong is not None:
            label, label_kind = label_wrong, "wrong"
        elif u < 0.10:
            label, label_kind = None, "missing"
        elif u < 0.13:
            label, label_kind = f"${forms[0]}$", "right"
        else:
            label = forms[0] if r.random() < 0.7 or len(forms) == 1 else forms[r.randrange(1, len(forms))]
            label_kind = "right"
        labels.append(label)
        a, b, c, d = r.randint(2, 99), r.randint(1, 50), r.randint(2, 30), r.randint(1, 20)
        prompts.append(f"{_PROBLEM_TEMPLATES[r.randrange(len(_PROBLEM_TEMPLATES))].format(a=a, b=b, c=c, d=d)}")
        metadata.append(json.dumps({
            "synthetic": True, "profile": prof, "level": int(level[j]), "answer": forms[0], "forms": forms,
            "label_kind": label_kind, "teacher_wrong": teacher_wrong,
        }, separators=(",", ":")))

    source = np.where(is_polaris, "polaris", "openmathreasoning")
    # Polaris carries a pass-rate style difficulty ("k/8"); OpenMathReasoning has none.
    difficulty = [f"{8 - int(lv)}/8" if pol else None for lv, pol in zip(level.tolist(), is_polaris.tolist(), strict=True)]
    problems = pa.table({
        "problem_id": pa.array(problem_id), "source": pa.array(source), "prompt": pa.array(prompts),
        "expected_answer": pa.array(labels, pa.string()), "difficulty": pa.array(difficulty, pa.string()),
        "metadata": pa.array(metadata),
    })
    return ProblemChunk(index=index, problem_id=problems["problem_id"].combine_chunks(),
                        prompt=problems["prompt"].combine_chunks(), level=level, profile=profile, high=high,
                        candidates=pa.array(candidates, pa.string()), cum=cum, problems=problems)


# -------------------------------------------------------------------------------------- the samples


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def sample_table(chunk: ProblemChunk, run_id: str, level: str, rows: np.ndarray, rng: np.random.Generator,
                 created_base: datetime, samples: int = SAMPLES_PER_PROBLEM) -> pa.Table:
    """The generation rows of one run for the chunk's problems selected by ``rows`` (local indices)."""
    prob = np.repeat(rows, samples)
    n = len(prob)
    sample_idx = np.tile(np.arange(samples, dtype=np.int32), len(rows))
    # Answer: one draw against the problem's cumulative slot probabilities.
    u = rng.random(n)
    slot = (u[:, None] > chunk.cum[level][prob]).sum(axis=1)
    slot = np.minimum(slot, K_SLOTS - 1)
    answer = chunk.candidates.take(pa.array(prob * K_SLOTS + slot))
    garbage = rng.random(n) < 0.015
    answer = pc.if_else(pa.array(garbage), _GARBAGE.take(pa.array(rng.integers(0, len(_GARBAGE), n))), answer)
    # Lengths: log-normal by reasoning level, longer for harder problems and wrong answers.
    mu = (math.log(2600) if level == "medium" else math.log(7500)) + 0.28 * (chunk.level[prob] - 3)
    mu = mu + np.where(slot >= 3, 0.35, 0.0)
    sigma = 0.9 if level == "medium" else 0.85
    tokens = np.exp(rng.normal(mu, sigma))
    truncated = tokens >= MAX_TOKENS
    tokens = np.minimum(np.maximum(tokens, 40), MAX_TOKENS).astype(np.int32)
    error = rng.random(n) < 0.001
    no_reasoning = (rng.random(n) < 0.004) & ~truncated
    no_boxed = (rng.random(n) < 0.012) & ~truncated
    truncated &= ~error
    nonce = pc.cast(pa.array(rng.integers(0, 10_000_000, n)), pa.string())

    pid = chunk.problem_id.take(pa.array(prob))
    opener = _OPENERS.take(pa.array(rng.integers(0, len(_OPENERS), n)))
    step_a = _STEPS.take(pa.array(rng.integers(0, len(_STEPS), n)))
    step_b = _STEPS.take(pa.array(rng.integers(0, len(_STEPS), n)))
    full_reasoning = _join(opener, " ", step_a, " ", step_b, " Trying value ", nonce, ", the result is ", answer, ".")
    cut_reasoning = _join(opener, " ", step_a, " Trying value ", nonce, ", then")
    form = pa.array(rng.integers(0, len(_FINAL_FORMS), n))
    boxed_final = _join(_FINAL_PREFIX.take(form), "\\boxed{", answer, "}", _FINAL_SUFFIX.take(form))
    plain_final = _join("The answer is ", answer, ".")
    final = pc.if_else(pa.array(no_boxed), plain_final, boxed_final)

    truncated_a, error_a, no_reasoning_a = pa.array(truncated), pa.array(error), pa.array(no_reasoning)
    null_str = pa.scalar(None, pa.string())
    reasoning = pc.if_else(truncated_a, cut_reasoning, full_reasoning)
    reasoning = pc.if_else(pc.or_(error_a, no_reasoning_a), null_str, reasoning)
    final = pc.if_else(pc.or_(error_a, truncated_a), null_str, final)
    completion = _join(_ANALYSIS, full_reasoning, _TO_FINAL, pc.if_else(pa.array(no_boxed), plain_final, boxed_final), _RETURN)
    completion = pc.if_else(no_reasoning_a, _join(_FINAL_ONLY, final, _RETURN), completion)
    completion = pc.if_else(truncated_a, _join(_ANALYSIS, cut_reasoning), completion)
    completion = pc.if_else(error_a, null_str, completion)
    finish = np.where(truncated, "length", "stop").astype(object)
    finish[error] = None
    tokens[error] = 0

    head = _PROMPT_HEAD.format(level=level)
    prompt = _join(head, chunk.prompt.take(pa.array(prob)), _PROMPT_TAIL)
    prompt_tokens = (pc.utf8_length(chunk.prompt).to_numpy() // 4 + 95).astype(np.int32)[prob]
    created_us = int(created_base.timestamp() * 1_000_000) + np.arange(n, dtype=np.int64) * 20_000
    return pa.table({
        "run_id": pa.array(np.full(n, run_id, dtype=object), pa.string()),
        "problem_id": pid,
        "sample_idx": pa.array(sample_idx),
        "model": pa.array(np.full(n, TEACHER_MODEL, dtype=object), pa.string()),
        "backend": pa.array(np.full(n, "vllm", dtype=object), pa.string()),
        "reasoning_level": pa.array(np.full(n, level, dtype=object), pa.string()),
        "prompt": prompt,
        "completion": completion,
        "reasoning": reasoning,
        "final": final,
        "finish_reason": pa.array(finish, pa.string()),
        "prompt_tokens": pa.array(prompt_tokens),
        "completion_tokens": pa.array(tokens),
        "seed": pa.array(sample_idx.astype(np.int64)),  # upstream seeds each sample with its index
        "temperature": pa.array(np.full(n, 0.8, dtype=np.float32)),
        "top_p": pa.array(np.full(n, 1.0, dtype=np.float32)),
        "max_tokens": pa.array(np.full(n, MAX_TOKENS, dtype=np.int32)),
        "latency_s": pa.array((tokens / rng.uniform(25, 60, n)).astype(np.float32)),
        "error": pc.if_else(error_a, _ERRORS.take(pa.array(rng.integers(0, len(_ERRORS), n))), null_str),
        "created_at": pa.array(created_us, pa.timestamp("us", tz="UTC")),
    })


# ------------------------------------------------------------------------------- realistic texts

_TAG_CHARS = len(_ANALYSIS) + len(_TO_FINAL) + len(_RETURN)


def realistic_texts(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """``table`` (rows of :func:`sample_table`) with texts as long as their ``completion_tokens``.

    The analysis channel is synthesized text followed by the planted short reasoning (which ends
    in "the result is <answer>"), or for a truncated solution the cut short reasoning followed by
    text up to ``max_tokens``; the final channel is a few synthesized sentences, then the planted
    final with its ``\\boxed`` answer. ``completion`` is built from them as in :func:`sample_table`,
    so ``generation.parsing.split_reasoning`` gives back ``reasoning`` and ``final``.
    """
    from tests.benchmarks import realistic_text

    n = table.num_rows
    short_reasoning, short_final = table["reasoning"].combine_chunks(), table["final"].combine_chunks()
    total = (table["completion_tokens"].to_numpy() * CHARS_PER_TOKEN).astype(np.int64)
    reasoning_chars = pc.binary_length(short_reasoning).fill_null(0).to_numpy()
    final_chars = pc.binary_length(short_final).fill_null(0).to_numpy()
    has_final = pc.is_valid(short_final).to_numpy(zero_copy_only=False)
    has_reasoning = pc.is_valid(short_reasoning).to_numpy(zero_copy_only=False)
    final_body = np.clip(total * FINAL_SHARE, FINAL_MIN_CHARS, FINAL_MAX_CHARS).astype(np.int64) - final_chars
    # Without an analysis channel the final channel is the whole solution.
    final_body = np.where(has_reasoning, final_body, total - final_chars - len(_FINAL_ONLY) - len(_RETURN))
    final_body = np.where(has_final, np.maximum(final_body, 0), 0)
    reasoning_body = total - final_body - final_chars - reasoning_chars - _TAG_CHARS
    reasoning_body = np.where(has_reasoning, np.maximum(reasoning_body, 0), 0)
    # Units carry a leading space: trimmed, so the parser (which strips) gives back the same text.
    bodies = pc.utf8_trim_whitespace(realistic_text.synthesize(np.concatenate([reasoning_body, final_body]), rng))
    body_r, body_f = bodies.slice(0, n), bodies.slice(n)

    def gap(body: pa.Array, text: str) -> pa.Array:  # no separator next to an empty body
        return pc.if_else(pc.greater(pc.binary_length(body), 0), text, "")

    truncated = pa.array(table["finish_reason"].to_numpy(zero_copy_only=False) == "length")
    reasoning = pc.if_else(truncated, _join(short_reasoning, gap(body_r, " "), body_r),
                           _join(body_r, gap(body_r, "\n\n"), short_reasoning))
    final = _join(body_f, gap(body_f, "\n\n"), short_final)
    error = pc.is_valid(table["error"])
    null_str = pa.scalar(None, pa.string())
    completion = _join(_ANALYSIS, reasoning, _TO_FINAL, final, _RETURN)
    completion = pc.if_else(pa.array(~has_reasoning), _join(_FINAL_ONLY, final, _RETURN), completion)
    completion = pc.if_else(truncated, _join(_ANALYSIS, reasoning), completion)
    completion = pc.if_else(error, null_str, completion)
    for name, column in (("completion", completion), ("reasoning", reasoning), ("final", final)):
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _text_slices(tokens: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges holding about PART_TEXT_BYTES of realistic text each (at least one row)."""
    ends = np.cumsum(tokens.astype(np.int64) * CHARS_PER_TOKEN * 2)  # completion + reasoning/final
    cuts = np.searchsorted(ends, np.arange(PART_TEXT_BYTES, ends[-1] if len(ends) else 0, PART_TEXT_BYTES))
    bounds = sorted({0, *(int(c) + 1 for c in cuts), len(tokens)})
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _write_realistic_part(ipc: bytes, run_id: str, shard: int, text_seed: list[int]) -> int:
    """Worker: realistic texts for one slice of sample rows, written as one lake part."""
    table = pa.ipc.open_stream(ipc).read_all()
    table = realistic_texts(table, np.random.default_rng(text_seed))
    lake.write_part("generations", table, {"run_id": run_id, "shard": shard})
    return table.num_rows


class _PartWriter:
    """Writes generation parts: as they are (``short``), or with realistic texts, ``jobs`` at a time."""

    def __init__(self, text_profile: str, jobs: int) -> None:
        if text_profile not in TEXT_PROFILES:
            raise ValueError(f"text profile {text_profile!r}: choose from {', '.join(TEXT_PROFILES)}")
        self.realistic = text_profile == "realistic"
        self.pool = None
        if self.realistic and jobs > 1:
            import concurrent.futures
            import multiprocessing

            # spawn: the workers inherit REASONLITE_* (set by using_workdir) and no pyarrow threads.
            self.pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))

    def write(self, table: pa.Table, run_id: str, shard: int, text_seed: list[int]) -> None:
        if not self.realistic:
            lake.write_part("generations", table, {"run_id": run_id, "shard": shard})
            return
        tasks = []
        for k, (a, b) in enumerate(_text_slices(table["completion_tokens"].to_numpy())):
            sink = pa.BufferOutputStream()
            part = table.slice(a, b - a)
            with pa.ipc.new_stream(sink, part.schema) as writer:
                writer.write_table(part)
            tasks.append((sink.getvalue().to_pybytes(), run_id, shard, [*text_seed, k]))
        if self.pool is None:
            for task in tasks:
                _write_realistic_part(*task)
        else:
            for future in [self.pool.submit(_write_realistic_part, *task) for task in tasks]:
                future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


# ------------------------------------------------------------------------------------ the lake as a whole


@contextlib.contextmanager
def using_workdir(workdir: Path) -> Iterator[dict[str, str]]:
    """Point warehouse.lake at ``workdir`` for the duration of the block."""
    env = lake.env_for_root(workdir)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _manifest(run_id: str, level: str, selection: dict) -> None:
    lake.write_manifest(
        run_id, purpose="teacher", model=TEACHER_MODEL, backend="vllm", reasoning_level=level,
        n_samples=SAMPLES_PER_PROBLEM, temperature=0.8, top_p=1.0, max_tokens=MAX_TOKENS,
        prompt_template="gpt-oss-harmony", problem_selection=selection,
        config={"synthetic": True, "generator_version": GENERATOR_VERSION, **selection},
        status="complete", code_version=lake.code_version(), finished_at=lake.now_utc().isoformat(),
    )


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"  [synthetic lake] {msg}", file=sys.stderr, flush=True)


def generate(workdir: Path, scale: float, seed: int = 0, n_problems: int | None = None,
             progress: bool = True, text_profile: str = "short", jobs: int | None = None) -> dict:
    """Write problems, the medium and high teacher runs and their manifests into ``workdir``'s lake.

    ``text_profile`` is ``short`` or ``realistic`` (see the module's docstring); ``jobs`` worker
    processes write realistic texts (default: one per core). Returns (and stores in
    ``workdir/synthetic_lake.json``) the counts, sizes and the time taken. Any previous lake in
    ``workdir`` is removed first.
    """
    workdir = Path(workdir)
    n_problems = n_problems or n_problems_for(scale)
    for sub in ("lake", "exports", "tmp", "reasonlite.snapshots"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    for name in ("reasonlite.duckdb", "reasonlite.duckdb.wal", STAMP):
        (workdir / name).unlink(missing_ok=True)
    started = time.perf_counter()
    counts = {"problems": 0, "generations": {"medium": 0, "high": 0}, "truncated": 0, "errors": 0}
    base = datetime(2025, 10, 1, tzinfo=UTC)
    with using_workdir(workdir):
        writer = _PartWriter(text_profile, jobs or default_jobs())
        for chunk_no in _chunks(n_problems):
            chunk = problem_chunk(seed, chunk_no, n_problems)
            for source in ("polaris", "openmathreasoning"):
                part = chunk.problems.filter(pc.equal(chunk.problems["source"], source))
                lake.write_part("problems", part, {"source": source})
            counts["problems"] += chunk.problems.num_rows
            for stream, level in ((1, "medium"), (2, "high")):
                rows = np.arange(len(chunk.index)) if level == "medium" else np.flatnonzero(chunk.high)
                created = base.replace(day=1 + stream) if level == "high" else base
                created = datetime.fromtimestamp(created.timestamp() + chunk_no * 3600, UTC)
                table = sample_table(chunk, RUN_IDS[level], level, rows, _rng(seed, chunk_no, stream), created)
                writer.write(table, RUN_IDS[level], chunk_no, [seed, chunk_no, stream])
                counts["generations"][level] += table.num_rows
                counts["truncated"] += pc.sum(pc.equal(table["finish_reason"], "length")).as_py() or 0
                counts["errors"] += table.num_rows - table["error"].null_count
                del table
            _log(f"chunk {chunk_no + 1}/{len(_chunks(n_problems))}: {counts['problems']:,} problems, "
                 f"{sum(counts['generations'].values()):,} generations, {time.perf_counter() - started:.0f} s", progress)
        writer.close()
        for level, run_id in RUN_IDS.items():
            _manifest(run_id, level, {"synthetic_scale": scale, "seed": seed, "n_problems": n_problems,
                                      "share": 1.0 if level == "medium" else HIGH_FRACTION,
                                      **({"text_profile": text_profile} if text_profile != "short" else {})})
    stats = {
        "generator_version": GENERATOR_VERSION, "text_profile": text_profile, "text_version": _text_version(text_profile),
        "scale": scale, "seed": seed, "n_problems": n_problems,
        "problems": counts["problems"], "generations": counts["generations"],
        "total_generations": sum(counts["generations"].values()), "truncated": counts["truncated"],
        "errors": counts["errors"], "seconds": round(time.perf_counter() - started, 2),
        "lake_bytes": _tree_bytes(workdir / "lake"),
        "generations_bytes": _tree_bytes(workdir / "lake" / "generations"),
    }
    (workdir / STAMP).write_text(json.dumps(stats, indent=2))
    return stats


EXTRA_RUN_PROBLEMS = ("block", "scattered")


def add_teacher_run(workdir: Path, fraction: float = 0.05, seed: int = 0, run_id: str = EXTRA_RUN_ID,
                    progress: bool = True, problems: str = "scattered") -> dict:
    """One more `medium` teacher run with ``fraction`` x the lake's generation count (16 samples per
    problem) — the incremental curation case. ``problems``: "scattered", a random subset of the
    problems (re-sampling chosen problems, e.g. those without a confident vote); "block", the first
    ones in the lake's order (a teacher job sharded by problem range)."""
    if problems not in EXTRA_RUN_PROBLEMS:
        raise ValueError(f"problems={problems!r}: expected one of {', '.join(EXTRA_RUN_PROBLEMS)}")
    stats = json.loads((Path(workdir) / STAMP).read_text())
    n_problems = stats["n_problems"]
    target_problems = max(1, round(fraction * stats["total_generations"] / SAMPLES_PER_PROBLEM))
    share = min(1.0, target_problems / n_problems)
    block_left = target_problems
    started = time.perf_counter()
    rows_written = 0
    with using_workdir(workdir):
        base = datetime(2025, 11, 1, tzinfo=UTC)
        writer = _PartWriter(stats.get("text_profile", "short"), default_jobs())
        for chunk_no in _chunks(n_problems):
            chunk = problem_chunk(stats["seed"], chunk_no, n_problems)
            rng = _rng(stats["seed"] * 7919 + seed, chunk_no, 3)
            if problems == "block":
                rows = np.arange(min(block_left, len(chunk.index)))
                block_left -= len(rows)
                if not len(rows):
                    break
            else:
                rows = np.flatnonzero(rng.random(len(chunk.index)) < share)
            table = sample_table(chunk, run_id, "medium", rows, rng, base)
            writer.write(table, run_id, chunk_no, [stats["seed"] * 7919 + seed, chunk_no, 3])
            rows_written += table.num_rows
        writer.close()
        _manifest(run_id, "medium", {"synthetic_scale": stats["scale"], "seed": stats["seed"], "share": share,
                                     "problems": problems, "incremental": True})
    _log(f"extra run {run_id}: {rows_written:,} generations in {time.perf_counter() - started:.0f} s", progress)
    return {"run_id": run_id, "problems": problems, "generations": rows_written,
            "seconds": round(time.perf_counter() - started, 2)}


def remove_run(workdir: Path, run_id: str) -> None:
    with using_workdir(workdir):
        shutil.rmtree(lake.table_dir("generations") / f"run_id={run_id}", ignore_errors=True)
        shutil.rmtree(lake.manifest_path(run_id).parent, ignore_errors=True)


def ensure_lake(workdir: Path, scale: float, seed: int = 0, progress: bool = True,
                text_profile: str = "short") -> dict:
    """The lake for (scale, seed, text profile) in ``workdir``, generated unless an identical one is there."""
    stamp = Path(workdir) / STAMP
    if stamp.exists():
        with contextlib.suppress(ValueError, KeyError):
            stats = json.loads(stamp.read_text())
            made = (stats["generator_version"], stats["scale"], stats["seed"], stats.get("text_profile", "short"),
                    stats.get("text_version"))
            wanted = (GENERATOR_VERSION, scale, seed, text_profile, _text_version(text_profile))
            if made == wanted and (Path(workdir) / "lake").exists():
                _log(f"reusing {workdir} ({stats['total_generations']:,} generations)", progress)
                stats["reused"] = True
                return stats
    Path(workdir).mkdir(parents=True, exist_ok=True)
    _log(f"generating scale {scale} ({text_profile} texts) into {workdir}", progress)
    return generate(workdir, scale, seed, progress=progress, text_profile=text_profile)


def _text_version(text_profile: str) -> int | None:
    from tests.benchmarks import realistic_text

    return realistic_text.VERSION if text_profile == "realistic" else None


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.01, help="1.0 = 343K problems, 9.1M generations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, required=True, help="bench directory (lake/, duckdb, exports/)")
    parser.add_argument("--extra-run", action="store_true", help="also add a 5%% teacher run")
    parser.add_argument("--text-profile", choices=TEXT_PROFILES, default="short",
                        help="short: ~300-character texts; realistic: as long as completion_tokens say")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes for realistic texts (default: cores)")
    args = parser.parse_args(argv)
    stats = generate(args.workdir, args.scale, args.seed, text_profile=args.text_profile, jobs=args.jobs)
    if args.extra_run:
        stats["extra"] = add_teacher_run(args.workdir)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
