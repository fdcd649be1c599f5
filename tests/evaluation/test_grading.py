"""Table-driven tests for evaluation.grading: extraction, canonical keys, equivalence, the batch
API, hostile inputs (bounded time, no code execution), threads and worker processes."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from evaluation import grading as G
from evaluation.grading import keys, mathverify, parse, sandbox
from tests.processes import alive

REPO = Path(__file__).resolve().parents[2]
SLACK_S = 1.0  # scheduling slack on a loaded 2-core CI box, on top of the bound
CPU_GRACE_S = 0.35  # the caller kills a worker this far past its budget (its own timer fires first)
DEFAULT_BOUND_S = 1.0


def _load_factor() -> float:
    """How much slower than its CPU time a worker runs right now (other jobs share the cores)."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def assert_bounded(call, items: int):
    """The bound is worker CPU time (a verdict must not depend on load): each item costs at most
    its budget of CPU, and the wall time at most that stretched by the machine's load."""
    cpu, start = G.worker_cpu_seconds(), time.monotonic()
    result = call()
    wall, cpu = time.monotonic() - start, G.worker_cpu_seconds() - cpu
    assert cpu < items * (G.TIMEOUT_S + CPU_GRACE_S), cpu
    assert wall < items * (G.TIMEOUT_S + CPU_GRACE_S) * _load_factor() + SLACK_S, (wall, _load_factor())
    return result


@pytest.fixture(scope="module", autouse=True)
def _warm_workers_generous_bound():
    # Verdict tests must not depend on machine load, so they run with a generous bound; the
    # tests of the bound itself set the default (1 s) back. The first symbolic call starts the
    # worker "zygote" (imports sympy once).
    saved, G.TIMEOUT_S = G.TIMEOUT_S, 10.0
    G.answers_equal("x^2+1", r"\sin x")
    yield
    G.TIMEOUT_S = saved


@pytest.fixture
def default_bound(monkeypatch):
    monkeypatch.setattr(G, "TIMEOUT_S", DEFAULT_BOUND_S)


@pytest.fixture
def short_bound(monkeypatch):
    monkeypatch.setattr(G, "TIMEOUT_S", 0.5)  # the hostile table: same code path, half the wait


# ------------------------------------------------------------------------------ extraction

EXTRACT = [
    (r"so the answer is \boxed{42}.", "42"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"nested \boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),
    (r"first \boxed{3} then \boxed{5}", "5"),
    (r"\boxed{1}, \boxed{2}", "1, 2"),
    (r"\boxed{1} and \boxed{2}", "1, 2"),
    (r"$\boxed{-2} \quad \text{and} \quad \boxed{1}$", "-2, 1"),
    (r"$$\boxed{2}, \boxed{3}, \boxed{5}$$", "2, 3, 5"),
    (r"\boxed{1} no no no no no \boxed{2}", "2"),
    (r"\fbox{7}", "7"),
    (r"\boxed 5", "5"),
    (r"\boxed{\boxed{3}}", "3"),
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),
    (r"$\displaystyle \boxed{\dfrac{1}{2}}$", r"\frac{1}{2}"),
    (r"\boxed{2\sqrt{2}}.", r"2\sqrt{2}"),
    # gpt-oss Harmony: only the final channel commits to an answer
    ("<|channel|>analysis<|message|>think \\boxed{1}<|end|><|start|>assistant<|channel|>final"
     "<|message|>The answer is \\boxed{2}.<|return|>", "2"),
    ("<|channel|>analysis<|message|>thinking... \\boxed{3}", None),
    ("<|channel|>final<|message|>42<|end|>", "42"),
    ("<|start|>assistant<|channel|>final<|message|>**42**<|return|>", "42"),
    # <think> blocks are ignored
    ("<think>maybe \\boxed{1}</think>So \\boxed{2}", "2"),
    ("<think>maybe \\boxed{1}</think>The answer is 7.", "7"),
    ("<think>unfinished \\boxed{1}", None),
    # markers
    ("Final answer: 12", "12"),
    ("The final answer is $\\frac{3}{4}$. I hope it is correct.", r"\frac{3}{4}"),
    ("**Final Answer**\n\n$17$", "17"),
    ("The answer is: 5 cm.", "5"),
    ("Answer: \\(x=5\\)", "x=5"),
    ("Final Answer: The largest $n$ is 34.", "34"),
    ("The answer is 12 apples and some more words here.", "12"),
    ("Therefore, the answer is $\\boxed{5}$. The final answer is 6.", "6"),
    # cleaning
    ("$x = 3$", "x = 3"),  # the name stays: y = 3 is another answer (#16)
    (r"\boxed{x = 3}", "x = 3"),
    (r"\boxed{y = 2x + 3}", "y = 2x + 3"),
    (r"\boxed{90^\circ}", "90"),
    (r"\boxed{90^{\circ}}", "90"),
    (r"\boxed{15\text{ cm}^2}", "15"),
    (r"\boxed{125\textnormal{ miles}}", "125"),
    (r"\boxed{\$5.00}", "5.00"),
    (r"\(\frac{1}{2}\)", r"\frac{1}{2}"),
    (r"\[ \boxed{7} \]", "7"),
    (r"\boxed{\text{odd}}", r"\text{odd}"),
    (r"\boxed{\textbf{(B)}}", "(B)"),
    (r"\boxed{50\%}", "50%"),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"( 3, \frac{\pi}{2} )"),
    (r"\boxed{1,\!000}", "1,000"),
    (r"\boxed{14{,}916}", "14,916"),
    (r"\boxed{p = -1 \text{ and } p = \dfrac{15}{8}}", r"p = -1, p = \frac{15}{8}"),
    (r"\boxed{x = 1, y = 2}", "x = 1, y = 2"),
    ("x \\in [1, 2]", "[1, 2]"),
    ("**42**", "42"),
    # bare answers and non-answers
    ("42", "42"),
    ("1/2", "1/2"),
    (r"$\frac12$", r"\frac12"),
    ("B", "B"),
    ("(C)", "(C)"),
    ("unbalanced \\boxed{3", None),
    ("", None),
    (None, None),
    ("   ", None),
    ("A long explanation without any final statement of the result at all.\nMore text follows here.", None),
]


@pytest.mark.parametrize("text,expected", EXTRACT)
def test_extract_answer(text, expected):
    assert G.extract_answer(text) == expected


def test_extract_answers_batch_matches_single():
    texts = [t for t, _ in EXTRACT]
    assert G.extract_answers(texts) == [e for _, e in EXTRACT]


@pytest.mark.parametrize("text,expected", [(t, e) for t, e in EXTRACT if e is not None])
def test_extract_is_idempotent(text, expected):
    assert G.extract_answer(expected) == expected


# ------------------------------------------------------------------------------ canonical keys

# Every answer of a group must get one and the same key.
KEY_GROUPS = {
    "integer": ["42", "+42", "042", "42.0", "42.00", r"\boxed{42}", "$42$", "42.", r"\text{42}", "4.2e1",
                r"4.2\times10^{1}", "The answer is 42.", "<|channel|>final<|message|>42<|end|>",
                r"\(42\)", r"\[42\]"],
    "thousands": ["1000000", "1,000,000", r"1{,}000{,}000", r"1\,000\,000", "1 000 000", r"1,\!000,\!000",
                  "10^6", r"10^{6}", r"1\times10^{6}", "1e6"],
    "negative": ["-5", r"-\frac{10}{2}", r"\frac{-10}{2}", "- 5", "-5.0"],
    "half": ["1/2", "0.5", r"\frac{1}{2}", r"\dfrac12", r"\tfrac{1}{2}", r"\frac{2}{4}", ".5", "2/4",
             r"\cfrac{1}{2}", r"\left(\frac{1}{2}\right)", "0.50", "5e-1", r"\frac{\sqrt{4}}{4}", r"\frac12",
             r"\frac{1}2"],
    "negative_fraction": ["-3/4", r"-\frac{3}{4}", r"\frac{-3}{4}", "-0.75", r"\frac{3}{-4}", r"-\dfrac{3}{4}"],
    "mixed_number": [r"2\frac{1}{2}", "5/2", "2.5", r"\frac{5}{2}", r"2 \frac{1}{2}"],
    "scientific": ["1.5e-3", r"1.5\times10^{-3}", "0.0015", r"\frac{3}{2000}", r"1.5 \cdot 10^{-3}", "1.5E-3"],
    "percent": [r"50\%", "50%", "50 percent", r"50 \%", r"\boxed{50\%}"],  # 50 is equal, not the same key
    "radical": [r"\sqrt{8}", r"2\sqrt{2}", r"2\sqrt2", r"\sqrt{2}\cdot 2", r"2 \sqrt{2}", r"\sqrt{2}+\sqrt{2}", r"\sqrt8"],
    "half_root": [r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt2}{2}", r"\dfrac{\sqrt{2}}{2}",
                  r"\frac{1}{2}\sqrt{2}", r"\sqrt{\frac{1}{2}}", r"\sqrt{0.5}", r"\sqrt{2}/2"],
    "rationalized": [r"\frac{1}{1+\sqrt{2}}", r"\sqrt{2}-1", r"-1+\sqrt{2}"],
    "cube_root": [r"\sqrt[3]{16}", r"2\sqrt[3]{2}"],
    "pi": [r"\frac{\pi}{2}", r"\pi/2", r"\frac{1}{2}\pi", r"0.5\pi", r"\dfrac{\pi}{2}", r"\frac12\pi"],
    "two_pi_thirds": [r"\frac{2\pi}{3}", r"\frac{2}{3}\pi", r"2\pi/3"],
    "pi_squared": [r"\pi^2", r"\pi^{2}", r"\pi\cdot\pi"],
    "e": ["e", r"e^{1}", r"\mathrm{e}", r"\text{e}"],
    "e_squared": ["e^2", r"e^{2}", r"e \cdot e"],
    "complex": ["3+4i", "4i+3", "3 + 4 i", r"3+4\cdot i"],
    "i_squared": ["i^2", "-1"],
    "interval": [r"[1,2)", r"\left[1, 2\right)", r"[1, 2)", r"x \in [1,2)"],
    "ray": [r"(-\infty, 3]", r"(-\infty,3]", r"\left(-\infty, 3\right]"],
    "union": [r"(-\infty,0)\cup(1,\infty)", r"(1,\infty)\cup(-\infty,0)", r"(-\infty, 0) \cup (1, \infty)"],
    "tuple": [r"(1,2,3)", r"\left(1, 2, 3\right)", "(1, 2, 3)"],
    "named_tuple": [r"(a, b, c) = (1, 2, 3)", "a=1, b=2, c=3", "c = 3, a = 1, b = 2", r"(c, a, b) = (3, 1, 2)"],
    "named_value": ["x = 42", "x=42", r"\boxed{x = 42}", "x = 40 + 2 = 42"],
    # A worked computation states its last side: 3 \times 8 = 24 is 24, not "a true equation" (2+2=4 is 4).
    "computation": ["24", "3 * 8 = 24", r"3 \times 8 = 24", "20 + 4 = 24", r"\frac{48}{2} = 24"],
    "computation_4": ["2+2=4", "4", r"8 \div 2 = 4"],
    "set": [r"\{1,2,3\}", "3, 2, 1", r"\{3, 1, 2\}", "1, 2, 3", "1, 2 and 3", r"\boxed{1}, \boxed{2}, \boxed{3}",
            r"1, 2, \text{ and } 3"],
    "named_set": ["x = 1, x = 2, x = 3", "x = 3, x = 1, x = 2", r"x = 1 \text{ or } x = 2 \text{ or } x = 3"],
    "plus_minus": [r"1 \pm \sqrt{2}", r"1+\sqrt{2}, 1-\sqrt{2}", r"\{1-\sqrt{2}, 1+\sqrt{2}\}"],
    "matrix": [r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
               r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", r"\left[\begin{array}{cc}1 & 2 \\ 3 & 4\end{array}\right]"],
    "vector": [r"\begin{pmatrix}1\\ \frac{1}{2}\end{pmatrix}", r"\begin{pmatrix}1\\0.5\end{pmatrix}"],
    "polynomial": ["x^2+2x+1", "(x+1)^2", "1+2x+x^2", "x^{2}+2x+1", r"x^2 + 2 \cdot x + 1"],
    "rational_function": [r"\frac{x^2-1}{x-1}", "x+1"],
    "plane": ["34x+45y-20z+100=0", "-34x-45y+20z-100=0", "68x+90y-40z+200=0"],
    "assignment": ["y = 2x + 3", "y=3+2x", r"y = 2 \cdot x + 3"],  # and equal to 2x+3 (HARD_POSITIVES)
    "inequality": [r"x \le 5", r"5 \ge x", "x <= 5", r"x\leq5", r"5 \geq x"],
    "strict_inequality": [r"x > 2", r"2 < x"],
    "chain": [r"1 < x < 3", r"1<x<3"],
    "text": [r"\text{odd}", "odd", r"\textbf{odd}", "Odd", r"\text{ odd }", r"\mathrm{odd}"],
    "phrase": [r"\text{no solution}", "no solution", "No Solution", r"\text{No solution}."],
    "choice": ["B", "(B)", r"\text{B}", r"\text{(B)}", r"\textbf{(B)}", r"\boxed{B}", "B.", r"\mathrm{(B)}",
               r"\boxed{\text{(B)}}", "(B) 42"],
    "degrees": [r"90^\circ", "90", r"90^{\circ}", "90°", "90 degrees", r"90\degree"],
    "units": [r"5\text{ cm}", "5 cm", "5", r"5\,\text{cm}", r"5 \mbox{ cm}", r"5\text{ cm}^2",
              r"5 \text{ square units}", "5 inches"],
    "money": [r"\$5", "5 dollars", "$5$", r"\$5.00", "5"],
    "log": [r"\log_2 8", "3"],
    "binomial": [r"\binom{5}{2}", "10", r"\dbinom{5}{2}"],
    "factorial": ["5!", "120"],
    "power": ["2^{10}", "1024", "2^10"],
    "infinity": [r"\infty", r"+\infty"],
    "empty_set": [r"\emptyset", r"\varnothing", r"\{\}"],
}


@pytest.mark.parametrize("name", sorted(KEY_GROUPS))
def test_equivalent_answers_share_a_key(name):
    answers = KEY_GROUPS[name]
    keys = G.canonical_keys(answers)
    assert len(set(keys)) == 1, dict(zip(answers, keys, strict=True))
    assert not G.is_fallback_key(keys[0])


def test_groups_have_distinct_keys():
    firsts = {name: G.canonical_key(answers[0]) for name, answers in KEY_GROUPS.items()}
    # a few groups are the same number on purpose (5, 90, 10, ...); the rest must differ
    same = {("degrees", "units"), ("money", "units"), ("degrees", "money")}
    for a, b in itertools.combinations(sorted(firsts), 2):
        if firsts[a] == firsts[b]:
            assert (a, b) in same or (b, a) in same or {a, b} <= {"units", "money", "degrees"}, (a, b)


KEY_DISTINCT = [
    ("1/2", "1/3"), ("0.5", "0.51"), ("2", "-2"), ("B", "C"), (r"[1,2)", r"(1,2]"), (r"(1,2,3)", r"(3,2,1)"),
    ("1, 2", "1, 3"), (r"\sqrt{2}", r"\sqrt{3}"), ("x^2", "x^3"), ("x < 5", "x > 5"), (r"\text{odd}", r"\text{even}"),
    ("1000", "100"), ("1,000", "1,001"), ("x", "y"), (r"\pi", "3.14"), ("e", "2.718"), ("1+i", "1-i"),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&3\\2&4\end{pmatrix}"), ("0.333", "1/3"),
    ("32, 349", "32349"), ("1,22", "1.22"), ("x = 1, y = 2", "x = 2, y = 1"), (r"\frac{\pi}{2}", r"90^\circ"),
    ("12:00", "1:00"), (r"2\frac{1}{2}", "1"), ("x \\le 5", "x < 5"), (r"(-\infty, 0)", r"(-\infty, 0]"),
    (r"\{1, 2\}", "(1, 2)"), ("A", "a"), (r"\text{(A)}", r"\text{(B)}"), ("1e3", "1e4"), ("2^{10}", "2^{11}"),
]


@pytest.mark.parametrize("a,b", KEY_DISTINCT)
def test_different_answers_get_different_keys(a, b):
    ka, kb = G.canonical_keys([a, b])
    assert ka != kb


KEY_EXACT = [
    ("1/2", "num:1/2"), ("-7", "num:-7"), ("0.25", "num:1/4"), ("1,234", "num:1234"), ("2.5e3", "num:2500"),
    (r"\frac{6}{-4}", "num:-3/2"), ("B", "choice:B"), (r"\text{(D)}", "choice:D"), (r"\text{Odd}", "text:odd"),
    ("no solution", "text:no solution"), (r"\sqrt{2}", "sym:Pow(Integer(2), Rational(1, 2))"),
    (r"\{2, 1\}", "sym:FiniteSet(Integer(1), Integer(2))"), ("", None), (None, None), ("   ", None),
]


@pytest.mark.parametrize("answer,key", KEY_EXACT)
def test_key_format(answer, key):
    assert G.canonical_key(answer) == key


@pytest.mark.parametrize("answer", [
    "12:00", r"\frac{1}{0}", "¯\\_(ツ)_/¯", r"\sum_{k=0}^{n-1} F_k", "@@@", r"\boxed{", "a" * 5000,
    "__import__('os').system('true')", r"9^{9^{9^{9}}}",
])
def test_unparseable_answers_get_stable_flagged_keys(answer):
    key = G.canonical_key(answer)
    G._clear_caches()
    assert G.canonical_key(answer) == key
    assert key is not None and G.key_kind(key) in ("str", "sym")
    if G.key_kind(key) == "str":
        assert G.is_fallback_key(key) and G.is_unparsed_key(key)


def test_long_answers_are_keyed_by_hash():
    key = G.canonical_key("7" * 5000 + "x")
    assert key.startswith("str:#") and len(key) == len("str:#") + 64


def test_key_kinds():
    assert [G.key_kind(k) for k in G.canonical_keys(["1/2", "B", "odd", r"\sqrt{2}", "12:00"])] == \
        ["num", "choice", "text", "sym", "str"]
    assert G.key_kind(None) is None and not G.is_fallback_key(None)


def test_keys_are_deterministic_across_processes():
    answers = [a for group in KEY_GROUPS.values() for a in group[:2]] + [a for pair in KEY_DISTINCT for a in pair]
    here = G.canonical_keys(answers)
    code = ("import json,sys; from evaluation import grading as G; "
            "print(json.dumps(G.canonical_keys(json.load(sys.stdin))))")
    import json

    env = dict(os.environ, PYTHONHASHSEED="12345", REASONLITE_GRADER_ISOLATION="inline")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(answers), capture_output=True,
                         text=True, cwd=REPO, env=env, timeout=120, check=True)
    assert json.loads(out.stdout) == here


# ------------------------------------------------------------------------------ equivalence

EQUAL = [
    # numbers and tolerance
    ("1/2", "0.5", 1), ("1/2", "1/3", 0), ("0.5", "0.51", 0), ("2", "-2", 0), ("1000", "1000.5", 0),
    ("1000", "1,000", 1), ("1000", "999.9999999", 1), ("3", "3.0", 1), ("-0", "0", 1), ("1e3", "1000", 1),
    ("1/3", "0.333333", 1), ("1/3", "0.3", 0), ("8/3", "2.66", 0), (r"2\frac{1}{2}", "2.5", 1), (r"2\frac{1}{2}", "1", 0),
    (r"\frac{1}{2}", "2/4", 1), ("1,5", "1.5", 1), ("32349", "32, 349", 0), ("11111111100", r"11,\! 111,\! 111,\! 100", 1),
    # percentages: the number without its sign, or the fraction of one (never a proper fraction as its own percent)
    (r"28\%", "28", 1), (r"28\%", "0.28", 1), (r"50\%", r"\frac{1}{2}", 1), ("0.28", "28", 0), (r"28\%", "29", 0),
    (r"\frac{1}{2}\%", "0.005", 1), (r"\frac{1}{2}\%", r"\frac12", 0), (r"12.5\%", "12.5", 1), (r"50\%", "50 percent", 1),
    # radicals, constants, decimals for constants
    (r"\sqrt{8}", r"2\sqrt{2}", 1), (r"\sqrt{2}", r"\sqrt{3}", 0),
    (r"\sqrt{2}", "1.41421356", 1), (r"\sqrt{2}", "1.4", 0), (r"\pi", "3.1415927", 1),
    (r"\frac{\pi}{2}", r"90^\circ", 0), (r"\sqrt{-4}", "2i", 1), (r"2 + 3i", r"3i + 2", 1), (r"2 + 3i", r"2 - 3i", 0),
    ("1+i", "1-i", 0), (r"\ln(e^2)", "2", 1), (r"\log_2 8", "3", 1), ("2^{10}", "1024", 1),
    # expressions
    (r"\tan^2(y)+1", r"\sec^2(y)", 1), (r"\frac{x+2}{7}", r"\frac{x}{7}+\frac{2}{7}", 1), ("x^2-1", "(x-1)(x+1)", 1),
    (r"\frac{1}{x}", "x^{-1}", 1), (r"\sin^2 x + \cos^2 x", "1", 1), ("x^2", "x^3", 0), ("x+2n+1", "x+1", 0),
    # relations and assignments
    ("x < 5", "x > 5", 0), (r"x \le 5", r"5 \ge x", 1), ("x < 1", "-x > -1", 1), ("x=1", "1", 1), ("1", "x=1", 1),
    ("7 = 11a+c", "11a+c", 0), ("x = 2, y = 3", "(2, 3)", 1), ("y = 3, x = 2", "x=2, y=3", 1),
    ("x = 2, y = 3", "x=3, y=2", 0), (r"34x+45y-20z+100=0", r"-34x-45y+20z-100=0", 1),
    # sets, tuples, intervals, matrices
    (r"\{1,2\}", r"\{2,1\}", 1), ("(1,2)", "(2,1)", 0), ("[1,2]", "[1,2)", 0), (r"[1,2)", r"(1,2]", 0),
    ("1, 2", "1, 3", 0), (r"(-\infty, 1) \cup (2, \infty)", r"(2,\infty)\cup(-\infty,1)", 1), (r"x \in (0, 1)", "(0,1)", 1),
    (r"0 < x < 1", "(0,1)", 1), (r"1 \pm \sqrt{2}", r"1-\sqrt{2}, 1+\sqrt{2}", 1), (r"(\frac{3}{5},\frac{8}{3}]", "(0.6,2.666667]", 1),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", 1),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&3\\2&4\end{pmatrix}", 0),
    (r"\infty", r"\infty", 1), (r"-\infty", r"\infty", 0),
    # text and multiple choice
    (r"\text{E}", "E", 1), ("d", r"\text{E}", 0), (r"\text{odd}", "odd", 1), (r"\text{odd}", r"\text{even}", 0),
    (r"\text{(A)}", "A", 1), (r"\text{yes}", "Yes", 1), ("yes", "no", 0), ("B", "C", 0), (r"\textbf{(C)}", "C", 1),
    ("10", "ten", 0), ("12:00", "12:00", 1), ("12:00", "1:00", 0),
    # units and decorations
    (r"\frac{1}{2}", r"\frac{1}{2} \text{ cm}", 1), ("100", r"\$100", 1), ("100", "100 dollars", 1), (r"90^\circ", "90", 1),
    ("5", r"5\text{ apples}", 1), ("15", r"15\mbox{ cm}^2", 1),
    # whole solutions on either side
    ("42", "The answer is $\\boxed{42}$.", 1), ("42", "<think>hmm \\boxed{41}</think>\nSo the answer is \\boxed{42}.", 1),
    ("42", "<think>\\boxed{42}</think> so \\boxed{41}", 0),
    ("42", "<|channel|>analysis<|message|>maybe 41<|end|><|start|>assistant<|channel|>final<|message|>**42**<|return|>", 1),
    ("$\\frac{1}{2}$", "We have $x = \\frac{2}{4}$, so the answer is $\\boxed{0.5}$.", 1), ("\\boxed{3}", "\\boxed{4}", 0),
    ("Thus the area is \\boxed{12}.", "Final Answer: The final answer is 12. I hope it is correct.", 1),
    # missing sides
    (None, "1", 0), ("1", None, 0), ("", "", 0), ("1", "", 0), ("3", r"\boxed{", 0),
]

# A sample of public equivalence cases in math-verify's own test-suite style (Apache-2.0).
MATH_VERIFY_STYLE = [
    ("-10/9", "-\\frac{10}{9}", 1), ("7425000", "7,425,000", 1), ("1000", "1 000", 1), ("1000.99", "1000,99", 1),
    ("0.4", ".4", 1), ("1000.99", "$1,000.99", 1), ("2", "AZYUK2A", 0), ("$[0,9)$", "$[0,1)$", 0), ("$(0,9)$", "$[0,9)$", 0),
    ("$9$", "Answer \\[ 9 \\]", 1), ("$10$", "Answer \\( (9+1) \\)", 1), ("$1/3$", "$\\frac13 $", 1), ("$1$", "$\\frac3{3} $", 1),
    ("$\\sqrt{3}$", "$\\sqrt3 $", 1), ("$1/3$", "$k = \\frac{1}{3}$", 1), ("$28\\%$", "28 percent", 1), ("$28\\%$", "$28$ %", 1),
    ("$x >= 5$", "Therefore $x \\geq 5$ is the solution.", 1), ("$x \\geq 5$", "The solution is $x \\leq 5$", 0),
    ("$x = 11$", "$x = 5+5+1 = 7 =11$", 1), ("$a +3z = 0$", "$0$", 0), ("$k=1$", "$1$", 1),
    ("$2x+4y-3=0$", "$y=-\\frac{1}{2}x+\\frac{3}{4}$", 1), ("$(3,1)$", "${1,3}$", 0), ("$(1,3)$", "${1,3}$", 1),
    ("$\\text{odd}$", "$odd$", 1), ("$\\text{Even}$", "$Even$", 1), ("$\\pm 2021$", "$2021$", 0), ("$\\pm 2021$", "${-2021, 2021}$", 1),
    ("$(p,q)=(3,2)$", "$(3,2)$", 1), ("$AB=4,CD=5$", "$\\boxed{4, 5}$", 1), ("$21,16$ or $11$", "$21,16,11$", 1),
    ("$19, 46, and 82$", "$19, 46, \\text{ and } 82$", 1), ("$19, 46, and 82$", "$21, 36, and 82$", 0),
    ("$\\frac{1}{12}$", "$0.0833333333333333$", 1), ("$(1,\\frac{9}{2})$", "$(1,4.5)$", 1), ("$2$", "$\\frac{1+\\sqrt{5}}{2}$", 0),
    ("$4$", "$4\\sqrt{2}$", 0), ("$1\\sqrt{19}$", "$1$", 0), ("$\\boxed{1}\\boxed{2}$", "$\\boxed{1,2}$", 1),
    ("\\(\\boxed{1}\\) and \\(\\boxed{-2}\\).", "$\\boxed{-2,1}$.", 1), ("$$(1, +\\infty)$$", "$$(1, +\\infty)$$", 1),
    ("$$-793 < a < 10$$", "$$(-793, 10)$$", 1), ("$$k \\ge 2$$", "$$\\boxed{k \\ge 2}$$", 1), ("$$667$$", "$$\\boxed{667}$$", 1),
]


@pytest.mark.parametrize("gold,pred,expected", EQUAL + MATH_VERIFY_STYLE)
def test_answers_equal(gold, pred, expected):
    assert G.answers_equal(gold, pred) == bool(expected)


def test_batch_equality_matches_single_calls():
    pairs = [(g, p) for g, p, _ in EQUAL + MATH_VERIFY_STYLE]
    G._clear_caches()
    assert G.answers_equal_many(pairs) == [bool(e) for _, _, e in EQUAL + MATH_VERIFY_STYLE]
    results = G.grade_many(pairs[:20])
    assert all(isinstance(r, G.GradeResult) for r in results)
    assert [r.equal for r in results] == [bool(e) for _, _, e in (EQUAL + MATH_VERIFY_STYLE)[:20]]


def test_grade_reports_keys_and_method():
    r = G.grade(r"\frac{1}{2}", "0.5")
    assert r == G.GradeResult(True, "num:1/2", "num:1/2", "key") and not r.unparsed
    r = G.grade("3", "4")
    assert (r.equal, r.method) == (False, "numeric")
    assert G.grade("1", "12:00").unparsed
    assert G.grade(None, "1").method == "missing"


OPAQUE_TEXTS = [r"\text{see step 22}", r"\text{22 apples}", r"\text{1/2 cup}", r"\text{2 pi}", r"\text{x 5}",
                r"\text{option 4}", r"\text{cannot be determined}", r"\text{2 sqrt 3}", r"\text{3 inf}",
                r"\text{50 percent}", r"\text{log 8}", r"\text{5 or 6}", r"\text{(5)}", r"\text{ab}", r"\text{pi}"]
OPAQUE_GOLDS = ["3", "22", "4", r"\frac{1}{2}", "0.5", "5", r"2\pi", r"\pi", r"2\sqrt{3}", "3i", "x", "5x", "x5",
                "ab", "(D)", "(1,2)", r"\{5,6\}", "[1,2]", r"\begin{pmatrix}1&2\end{pmatrix}", "e", "50"]


def test_text_answers_decided_without_math_verify_agree_with_it():
    # Text that math-verify can only read as one Symbol ("see step 3" -> seestep3) is unequal to
    # numbers and parsed answers without a math-verify call; words math-verify rewrites into math
    # (sqrt, inf, percent, or ...) and letters-only text (\text{ab} == ab) still go to it.
    shortcut = 0
    for text, gold in itertools.product(OPAQUE_TEXTS, OPAQUE_GOLDS):
        for g, p in ((gold, text), (text, gold)):
            r = G.grade(g, p)
            variants = [mathverify._mv_variants(x, keys._prepare(x)[1]) for x in (g, p)]
            assert r.equal == (r.method == "key" and r.gold_key == r.pred_key or mathverify._mv_verify(*variants) is True), (g, p, r)
            shortcut += r.method == "key" and not r.equal
    assert shortcut >= 100
    assert G.grade("410", r"\text{see step 22}").method == "key"
    assert G.grade("3", r"\text{2 sqrt 3}") == G.GradeResult(True, "num:3", "text:2 sqrt 3", "math_verify")
    assert G.grade("ab", r"\text{ab}").method == "math_verify"


def test_canonical_keys_batch_handles_none_duplicates_and_order():
    answers = ["1/2", None, "0.5", r"\sqrt{2}", "1/2", "", r"\sqrt{2}"]
    assert G.canonical_keys(answers) == [G.canonical_key(a) for a in answers]
    assert G.canonical_keys([]) == [] and G.answers_equal_many([]) == [] and G.extract_answers([]) == []


def test_large_symbolic_batch_fans_out_and_agrees():
    # More distinct symbolic answers than PARALLEL_MIN: the work is split over the workers.
    answers = [rf"\sqrt{{{n}}} + \frac{{\pi}}{{{n}}}" for n in range(2, 2 + 2 * G.PARALLEL_MIN)]
    G._clear_caches()
    keys = G.canonical_keys(answers)
    assert len(set(keys)) == len(keys) and all(k.startswith("sym:") for k in keys)
    G._clear_caches()
    assert [G.canonical_key(a) for a in answers[:5]] == keys[:5]
    pairs = [(a, a.replace(r"\frac{\pi}", r"\dfrac{\pi}")) for a in answers]
    assert all(G.answers_equal_many(pairs))


# ------------------------------------------------------------------------------ hostile inputs

HOSTILE = [
    "__import__('os').system('touch {canary}')",
    "$__import__('os').system('touch {canary}')$",
    r"\boxed{__import__('os').system('touch {canary}')}",
    "eval(\"__import__('os').system('touch {canary}')\")",
    r"9^{9^{9^{9}}}",
    r"10^{10^{10}}!",
    r"2^{1000000}",
    r"(10^{10})!",
    "100000!",
    "{" * 100_000 + "}" * 100_000,
    "1" * 1_000_000,
    "x" * 1_000_000,
    r"\boxed{" + "1" * 100,
    r"\boxed{",
    r"\boxed{" * 50_000,
    r"\sqrt{" * 5_000 + "2" + "}" * 5_000,
    "(" * 10_000 + ")" * 10_000,
    "1e999999",
    r"1.5\times10^{999999}",
    r"x^{x^{x^{x}}}",
    "We get $9^{9^{9^{9}}}$ in the end, believe me, this is long prose here.",
    "\x00\x01\x02 \\boxed{\x00}",
]


@pytest.mark.parametrize("template", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_inputs_return_within_the_bound(template, tmp_path, short_bound):
    canary = tmp_path / "pwned"
    text = template.replace("{canary}", str(canary))
    calls = [  # (call, items it grades: each item is bounded)
        (lambda: G.extract_answer(text), 1),
        (lambda: G.canonical_key(text), 1),
        (lambda: G.answers_equal(text, "1"), 1),
        (lambda: G.answers_equal("$1$", "The answer is " + text), 1),
        (lambda: G.answers_equal_many([(text, "2"), ("2", text)]), 2),
    ]
    for call, items in calls:
        assert_bounded(call, items)
    assert not canary.exists()
    assert not Path("/tmp/pwned").exists()


def test_stuck_worker_is_killed_and_replaced(default_bound):
    # math-verify parses the tower inside prose (no answer of ours to refuse): the worker must
    # be killed at the bound and the next call must still work.
    text = "We get $9^{9^{9^{9}}}$ in the end, believe me, this is long prose here."
    r = assert_bounded(lambda: G.grade(text, "$3^{4}$ and some more words to keep it prose only"), 1)
    assert r.equal is False and r.verdict is None and r.undecided == "timeout"
    assert G.answers_equal(r"\sqrt{8}", r"2\sqrt{2}")
    assert G.answers_equal("$(1,\\frac{9}{2})$", "$(1,4.5)$")


def test_timeout_setting_is_respected(monkeypatch):
    monkeypatch.setattr(G, "TIMEOUT_S", 0.3)
    text = "We get $9^{9^{9^{9}}}$ and more prose here so that nothing is extracted from it."
    assert assert_bounded(lambda: G.answers_equal(text, "$1$ with prose words that are not an answer"), 1) is False


def test_timeout_env_var():
    env = dict(os.environ, REASONLITE_GRADER_TIMEOUT="0.25")
    out = subprocess.run([sys.executable, "-c", "from evaluation import grading as G; print(G.TIMEOUT_S)"],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=True)
    assert float(out.stdout) == 0.25


def _zygote_children() -> list[int]:
    pool = sandbox._POOL
    if pool is None:
        return []
    zpid = pool.zygote.proc.pid
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == zpid and fields[0] != "Z":
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are Linux-only")
def test_no_process_or_thread_leaks(default_bound):
    threads = threading.active_count()
    text = "We get $9^{9^{9^{9}}}$ in the end, believe me, this is long prose here."
    for _ in range(2):  # each of these kills a stuck worker
        G.grade(text, "$5$ plus enough words to be prose, not an answer")
    G.answers_equal_many([(rf"\sqrt{{{n}}}", rf"\sqrt{{{n + 1}}}") for n in range(100)])
    time.sleep(0.2)
    assert len(_zygote_children()) <= G.MAX_WORKERS
    assert threading.active_count() == threads
    pool = sandbox._POOL
    pids = pool.worker_pids() + [pool.zygote.proc.pid]
    G.shutdown()
    deadline = time.monotonic() + 10
    left = pids
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    assert left == []
    assert G.answers_equal("1/2", r"\frac{2}{4}")  # restarts on demand
    assert G.answers_equal(r"\sqrt{8}", r"2\sqrt{2}")


# ------------------------------------------------------------------------------ concurrency

CONCURRENT = [
    (r"\frac{1}{2}", "0.5", True), (r"\sqrt{8}", r"2\sqrt{2}", True), ("x^2+2x+1", "(x+1)^2", True), ("3", "4", False),
    (r"\{1,2\}", "2, 1", True), (r"\frac{\pi}{2}", r"\pi/2", True), ("$x^2-1$", "$(x-1)(x+1)$", True),
    ("x < 5", "x > 5", False), (r"9^{9^{9^{9}}}", "1", False), (r"\text{odd}", "odd", True),
]


def _equal(pair):
    return G.answers_equal(*pair)


def test_from_threads():
    G._clear_caches()
    before = threading.active_count()
    pairs = [(g, p) for g, p, _ in CONCURRENT] * 2
    with ThreadPoolExecutor(max_workers=6) as ex:
        results = list(ex.map(_equal, pairs))
    assert results == [e for _, _, e in CONCURRENT] * 2
    assert threading.active_count() == before
    with ThreadPoolExecutor(max_workers=3) as ex:
        keys = list(ex.map(G.canonical_keys, [["1/2", r"\sqrt{2}"], ["0.5", "x+1"], [r"\frac12", "1+x"]]))
    assert keys[0][0] == keys[1][0] == keys[2][0] and keys[1][1] == keys[2][1]


def test_from_a_multiprocessing_pool():
    # Pool workers are daemonic: the grader runs inline there, bounded by its input limits.
    pairs = [(g, p) for g, p, _ in CONCURRENT]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_equal, pairs)
        keys = pool.map(G.canonical_key, ["1/2", r"\sqrt{8}", "B"])
    assert results == [e for _, _, e in CONCURRENT]
    assert keys == ["num:1/2", G.canonical_key(r"2\sqrt{2}"), "choice:B"]


def test_inline_mode_is_equivalent(monkeypatch):
    monkeypatch.setattr(G, "ISOLATION", "inline")
    G._clear_caches()
    pairs = [(g, p) for g, p, _ in CONCURRENT]
    start = time.monotonic()
    assert G.answers_equal_many(pairs) == [e for _, _, e in CONCURRENT]
    assert time.monotonic() - start < 30
    assert G.canonical_key(r"10^{10^{10}}!").startswith("str:")


# ------------------------------------------------------------------------------ fast paths

FAST_FORMS = [
    r"2\sqrt{2}", r"\sqrt{8}", r"-\sqrt{3}", r"\frac{\sqrt{3}}{2}", r"-\frac{3\sqrt{2}}{4}", r"\frac{1}{2}\sqrt{3}",
    r"\frac{2}{\sqrt{6}}", r"\sqrt{12}/6", r"\sqrt4", r"\pi", r"-\pi", r"\frac{5\pi}{3}", r"\frac{5}{3}\pi", r"5\pi/3",
    r"-\frac{\pi}{2}", r"3\cdot\sqrt{5}", r"\frac{4}{\sqrt{8}}", r"\frac{3}{\sqrt{3}}", r"0\pi", r"\{1, 2\}",
    r"\{2, 1, 2\}", "1, 2", "3, -1, 1/2", r"(1, 2)", r"(2, 1)", r"(1, 2, 3)", r"[1, 2)", r"(1, 2]", r"(-\infty, 3]",
    r"[2, \infty)", r"(-\infty, \infty)", r"(0.5, 1.5)", r"\{-\frac{1}{2}, 3\}",
]


@pytest.mark.parametrize("answer", FAST_FORMS)
def test_sympy_free_keys_equal_sympy_keys(answer):
    # The fast paths must produce exactly the key the symbolic path gives the same text.
    fast = keys._fast_info(answer)
    assert fast is not None
    slow = parse._symbolic_info(answer)
    assert fast.key == slow.key
    assert fast.elems == slow.elems or slow.elems is None
    if fast.probe and slow.probe:
        assert abs(fast.probe[0] - slow.probe[0]) <= 1e-9 * max(1.0, abs(slow.probe[0]))


def test_sympy_free_keys_equal_sympy_keys_random():
    import random

    rng = random.Random(7)
    fast_count = total = 0
    for _ in range(150):
        a, b, c, sign = rng.randint(1, 60), rng.randint(2, 500), rng.randint(1, 40), rng.choice(["", "-"])
        for text in (rf"{sign}{a}\sqrt{{{b}}}", rf"{sign}\frac{{{a}\sqrt{{{b}}}}}{{{c}}}", rf"{sign}\frac{{{a}}}{{\sqrt{{{b}}}}}",
                     rf"{sign}\frac{{{a}\pi}}{{{c}}}", rf"\{{{sign}{a}, {b}, {c}/{a}\}}", rf"[{sign}{a}, {b})", rf"({a}, {b}, {c})"):
            fast, total = keys._fast_info(text), total + 1
            if fast is not None:  # None: an empty interval, left to sympy
                fast_count += 1
                assert fast.key == parse._symbolic_info(text).key, text
    assert fast_count > 0.9 * total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are Linux-only")
def test_dead_zygote_is_replaced():
    import signal

    G.canonical_key("x^3 + 7")  # make sure the pool exists
    old = sandbox._POOL.zygote.proc
    os.kill(old.pid, signal.SIGKILL)
    old.wait(timeout=10)
    G._clear_caches()
    assert G.canonical_key("x^3 + 8").startswith("sym:")
    assert sandbox._POOL.zygote.proc is not old and sandbox._INLINE_REASON is None


# ------------------------------------------------------------------------------ three outcomes

F_SUM, F_SUM_SWAPPED = r"F_n = \sum_{k=0}^{n-1} F_k F_{n-k-1}", r"F_n = \sum_{k=0}^{n-1} F_{n-k-1} F_k"
PROSE_TOWER = "We get $9^{9^{9^{9}}}$ in the end, believe me, this is long prose here."

OUTCOMES = [  # (gold, pred, outcome of grade and of grade_many)
    (r"\frac{1}{2}", "0.5", "equal"),
    ("3", "4", "not_equal"),
    (r"\sqrt{8}", r"2\sqrt{3}", "not_equal"),
    (None, "1", "not_equal"),  # a missing answer is not a correct one
    (r"9^{9^{9^{9}}}", "1", "refused"),  # too expensive to evaluate at all
    ("12:00", "1:00", "unparseable"),  # neither we nor math-verify read math in it
    ("@@@", "###", "unparseable"),
    (r"\frac{1}{0}", "1", "unparseable"),
    (PROSE_TOWER, "$3^{4}$ and some more words to keep it prose only", "timeout"),
]


@pytest.mark.parametrize("gold,pred,outcome", OUTCOMES)
def test_three_outcomes_with_a_reason(gold, pred, outcome):
    for r in (G.grade(gold, pred), G.grade_many([(gold, pred)])[0]):
        assert r.outcome == outcome, r
        assert r.verdict == {"equal": True, "not_equal": False}.get(outcome)
        assert (r.undecided in G.UNDECIDED_REASONS) == (outcome in G.UNDECIDED_REASONS)
        assert r.equal is (outcome == "equal")  # answers_equal's bool: undecided is False
    assert G.answers_equal(gold, pred) is (outcome == "equal")


def test_a_timeout_is_undecided_never_remembered_and_a_larger_budget_decides(monkeypatch):
    # The swapped-factor sum costs math-verify ~0.2-0.8 s of CPU (it sums numerically).
    G._clear_caches()
    monkeypatch.setattr(G, "TIMEOUT_S", 0.02)
    for r in (G.grade(F_SUM, F_SUM_SWAPPED), G.grade_many([(F_SUM, F_SUM_SWAPPED)])[0]):
        assert (r.verdict, r.undecided) == (None, "timeout")
    assert G.canonical_key(F_SUM).startswith("str:")  # its key timed out too: the fallback
    monkeypatch.setattr(G, "TIMEOUT_S", 10.0)
    for r in (G.grade(F_SUM, F_SUM_SWAPPED), G.grade_many([(F_SUM, F_SUM_SWAPPED)])[0]):
        assert (r.verdict, r.undecided) == (True, None)
    assert G.canonical_key(F_SUM).startswith("sym:Sum")


def test_undecided_verdicts_reach_sql_as_null(tmp_path):
    import duckdb

    from warehouse.dbt_plugin import register_grader

    conn = duckdb.connect(str(tmp_path / "g.duckdb"))
    register_grader(conn)
    rows = conn.execute(
        "SELECT answers_equal(g, p), grade_outcome(g, p) FROM (VALUES ('1/2', '0.5'), ('3', '4'), "
        "('12:00', '1:00'), ('9^{9^{9^{9}}}', '1'), (NULL, '1')) AS t(g, p)"
    ).fetchall()
    assert rows == [(True, "equal"), (False, "not_equal"), (None, "unparseable"), (None, "refused"), (None, None)]


# ------------------------------------------------------------------------------ hard negatives (#16)
# A false "equal" keeps a wrong solution as training data: each class below was one, at its root.

HARD_NEGATIVES = {
    "function_is_not_a_name": [(r"\sin(x)=\frac12", r"\cos(x)=\frac12"), (r"\log(x) = 2", r"\ln(x) = 2")],
    "equation_is_not_an_assignment": [("y = 2x+1", "x = 2x+1"), ("x = x^2", "x = 1")],
    "constants_are_not_units": [(r"2\mathrm{e}", "2"), (r"3\text{i}", "3"), (r"\frac{1}{2}\mathrm{e}", r"\frac12")],
    "tiny_numbers_are_relative": [(r"6.67\times10^{-11}", r"6.68\times10^{-11}"), (r"6.67\times10^{-11}", "0"),
                                  (r"10^{-9}", r"2\cdot10^{-9}"), ("0.0000001", "0.0000002")],
    "no_committed_answer": [("2", "We tried 2 but it fails, so it is impossible to determine."),
                            ("7", "Maybe 7 or maybe 8, there is no way to tell from the statement given.")],
    "different_names": [("y=2", "x=2"), ("y = 2x+1", "x = 2x+1"), ("a=1, b=2", "x=1, y=2"),
                        (r"\alpha = \frac{\pi}{2}", r"\beta = \frac{\pi}{2}"), ("x = 1, x = 2", "y = 1, y = 2")],
    "percent_is_kept": [(r"\frac{1}{2}\%", "0.5"), (r"\frac{1}{2}\%", r"\frac12"), (r"0.5\%", "0.5"), (r"50\%", "5000"),
                        (r"x = \frac{1}{2}\%", r"\frac12")],
    "rounded_is_not_exact": [("0.33", r"\frac13"), ("3.14", r"\pi"), ("1.41", r"\sqrt2"), ("2.67", "8/3"),
                             (r"\begin{pmatrix}\frac{1}{3}\\ \frac{1}{5}\end{pmatrix}", r"\begin{pmatrix}0.33\\0.2\end{pmatrix}")],
    "our_parse_overrules_math_verify": [("x^2+1=0", "x^2+2=0"), (r"1-\frac{1}{\mathrm{e}}", r"1+\frac{1}{\mathrm{e}}"), ("(1,2)", r"\{1,2\}"), ("a=1, b=2", "(2,1)"),
                                        ("(1, 2, 3)", r"\{1, 2, 3\}")],
}
HARD_POSITIVES = [  # what the fixes must keep
    ("x = 3", "3"), ("y = 2x + 3", "2x+3"), (r"\theta = \frac{\pi}{2}", r"\frac{\pi}{2}"), (r"5\text{ m}", "5"),
    (r"6.67\times10^{-11}", "6.67e-11"), ("1/3", "0.333333"), ("1000", "999.9999999"), (r"\{1,2\}", "2, 1"),
    ("x^2-1=0", "1-x^2=0"), ("2", "So the answer is 2."), (r"e", r"\mathrm{e}"),
    ("x=2", "2"), ("2", r"\boxed{x = 2}"), ("b = 2, a = 1", "(1, 2)"), ("x = 2", "x=2"), (r"50\%", "50"),
    (r"50\%", "0.5"), (r"\frac12\%", "0.005"), (r"x = 50\%", "50"), (r"1.5\%", "1.5"), (r"\pi", "3.1415926"),
]
ROUNDED = [("0.33", r"\frac13"), ("3.14", r"\pi"), ("1.41", r"\sqrt2"), ("2.67", "8/3"), ("0.333", "1/3"),
           (r"\frac{\sqrt{3}}{2}", "0.866"), (r"\begin{pmatrix}\frac{1}{3}\\ \frac{1}{5}\end{pmatrix}", r"\begin{pmatrix}0.33\\0.2\end{pmatrix}")]


@pytest.mark.parametrize("gold,pred", [p for pairs in HARD_NEGATIVES.values() for p in pairs],
                         ids=[f"{k}{i}" for k, pairs in HARD_NEGATIVES.items() for i in range(len(pairs))])
def test_hard_negatives_are_not_equal(gold, pred):
    for g, p in ((gold, pred), (pred, gold)):
        assert G.grade(g, p).equal is False, (g, p, G.grade(g, p))
        assert G.grade_many([(g, p)])[0].equal is False
    if G.extract_answer(pred) is not None:
        ka, kb = G.canonical_keys([gold, pred])
        assert ka != kb  # keys: votes must not merge them either


@pytest.mark.parametrize("gold,pred", HARD_POSITIVES)
def test_hard_positives_stay_equal(gold, pred):
    assert G.answers_equal(gold, pred) and G.answers_equal_many([(gold, pred)]) == [True]


@pytest.mark.parametrize("gold,pred", ROUNDED)
def test_rounded_decimals_match_exact_answers_only_when_declared(gold, pred, monkeypatch):
    # A declared policy (settings.ROUNDED_DECIMALS_MATCH_EXACT), off by default: a label is exact.
    assert G.ROUNDED_DECIMALS_MATCH_EXACT is False
    for g, p in ((gold, pred), (pred, gold)):
        assert G.grade(g, p).equal is False and G.grade_many([(g, p)])[0].equal is False
    monkeypatch.setattr(G, "ROUNDED_DECIMALS_MATCH_EXACT", True)  # no cache clearing: verdicts are kept per policy
    for g, p in ((gold, pred), (pred, gold)):
        assert G.grade(g, p).equal is True and G.grade_many([(g, p)])[0].equal is True


# ------------------------------------------------------ upstream's scoring (the paper's protocol)

# (gold, whole response, upstream verdict, the step that found it, strict verdict)
UPSTREAM_CASES = [
    # Ran out of tokens inside <think>, after boxing the answer: upstream reads it, strict does not.
    ("42", "<think>\nSo 6 * 7 = \\boxed{42}. Let me double-check that", True, "boxed", False),
    # Boxed only in the thinking, the final text says nothing checkable.
    ("7", "<think>we get \\boxed{7}</think>\n\nDone, as shown above.", True, "boxed", False),
    # Upstream takes the very last box, in the thinking or not: a wrong late box is wrong there...
    ("12", "<think>first \\boxed{12}, then I changed my mind: \\boxed{13}", False, "math_verify", False),
    # ...and equality is the grader's: \frac12 is 0.5.
    ("0.5", "<think>it is \\boxed{\\frac{1}{2}}", True, "boxed", False),
    # "The answer is: X" on the last line, no box.
    ("15", "<think>adding up</think>\nThe answer is: 15", True, "answer_is", True),
    # A wrong box, then the right "The answer is:" line: upstream's steps are alternatives.
    ("9", "<think>maybe \\boxed{8}</think>\nThe answer is: 9", True, "answer_is", True),
    # Nothing to read.
    ("3", "<think>I am not sure how to start this problem", False, "no_answer", False),
]


@pytest.mark.parametrize("gold,response,upstream,step,strict", UPSTREAM_CASES)
def test_upstream_scoring_reads_the_whole_response(gold, response, upstream, step, strict):
    result = G.grade_upstream(gold, response)
    assert (result.equal, result.method, result.undecided) == (upstream, step, None)
    assert G.grade_upstream_many([(gold, response)])[0] == result
    # The strict scoring (the eval marts: extract, then compare) is unchanged: the answer after the
    # reasoning, or none.
    answer = G.extract_answer(response)
    assert (answer is not None and G.answers_equal(gold, answer)) is strict


def test_upstream_extraction_follows_upstreams_rules():
    read = G.extract_answers_upstream
    assert read("<think>\\boxed{1} and \\boxed{2}") == {"boxed": "2", "answer_is": None}
    assert read("\\boxed{\\frac{a}{b}} nested braces") == {"boxed": "\\frac{a}{b}", "answer_is": None}
    # Only the very last \boxed counts: unbalanced or without a brace, there is no boxed answer.
    assert read("\\boxed{3} then \\boxed{4")["boxed"] is None
    assert read("\\boxed{3} then \\boxed 4")["boxed"] is None
    # "The answer is: " (case and colon as upstream's regex) running to the end of the response.
    assert read("x\nThe answer is: 17")["answer_is"] == "17"
    assert read("The answer is: 17\nbut wait")["answer_is"] is None
    assert read("the answer is: 17")["answer_is"] is None
    assert read("The answer is 17")["answer_is"] is None
    assert read(None) == {"boxed": None, "answer_is": None}


def test_upstream_math_verify_step_reads_the_whole_response():
    # No box, no "The answer is:" line: math-verify over the whole response finds the last answer.
    result = G.grade_upstream("5", "<think>x + 2 = 7, so the final answer is $5$")
    assert (result.equal, result.method) == (True, "math_verify")
    assert G.grade_upstream("5", "<think>x + 2 = 7, so the final answer is $6$").equal is False
    missing = G.grade_upstream(None, "\\boxed{5}")
    assert (missing.equal, missing.method) == (False, "missing")
