"""Math answer grading: answer extraction, canonical keys and equivalence.

Public, stable API (see the "The grader" section of DESIGN.md):

* ``extract_answer(text)`` / ``extract_answers(texts)`` -- the answer a solution commits to.
* ``canonical_key(answer)`` / ``canonical_keys(answers)`` -- a deterministic string key; equivalent
  answers share it wherever that is decidable. Key families (the prefix is ``key_kind``):

  ``num:p`` / ``num:p/q``  exact rationals (integers, decimals, fractions, mixed numbers, 1.5e3 ...)
  ``choice:B``             multiple-choice letters A-J (``(B)``, ``\\text{(B)}``)
  ``text:odd``             plain words (``\\text{odd}`` == ``odd``), lower-cased
  ``sym:<srepr>``          anything sympy parsed: the srepr of a canonical form (radicals, pi, e, i,
                           sets sorted, tuples, intervals and unions, matrices, relations)
  ``str:<normalized>``     unparseable (or refused as too large) -- ``is_fallback_key`` flags it;
                           answers over ``MAX_ANSWER_CHARS`` become ``str:#<sha256>``.

  Percentages: ``50\\%`` has the key of ``50`` (the percent sign is dropped). Graders state a
  percentage answer as its number far more often than as a fraction of one; ``answers_equal``
  still accepts ``0.5`` for ``50\\%`` (math-verify's rule), only the key ignores that reading.
* ``answers_equal(gold, pred)`` / ``answers_equal_many(pairs)`` and ``grade`` / ``grade_many``
  (which also report keys and how the verdict was reached). A side may be a bare answer, LaTeX
  in ``$...$`` or a whole solution (its answer is extracted first). The verdict is: equal keys,
  OR math-verify's ``verify(parse(gold), parse(pred))``; decidable disagreements (two different
  exact numbers, two different letters, expressions that differ at probe points, ...) answer
  False without calling math-verify; so are a number, or anything we parsed, against text that
  math-verify can only read as one Symbol (``\\text{see step 3}``). Numeric tolerance: when a
  decimal is involved, numbers are equal if they agree after rounding to 6 decimal places
  (math-verify's rule), or if a decimal with >= 2 places is the other exact value rounded to that
  many places (``0.33`` ~ ``1/3``).

Three outcomes: ``grade`` / ``grade_many`` say equal, not equal, or *undecided* with a reason
(``GradeResult.undecided``): ``timeout`` (a stage ran out of its CPU budget: retry with a larger
one), ``refused`` (an answer too expensive to evaluate at all) or ``unparseable`` (neither our
parser nor math-verify could read a side, so nothing was compared). ``GradeResult.verdict`` is
True / False / None. ``answers_equal`` keeps its bool contract: an undecided pair is False there
(not "equal" is the safe answer for a score or a training set); use ``grade`` to tell the two
apart. A "not equal" is never the product of a time-out.

Budget: ``TIMEOUT_S`` (env ``REASONLITE_GRADER_TIMEOUT``, default 1 s) is CPU time of the worker
process, per item in the batch functions and per call (all stages together) for
``answers_equal``/``grade`` -- not wall-clock, so a verdict does not change when other jobs load
the machine; a busy machine only makes it slower. The worker stops itself at the budget (SIGPROF
from a CPU-time itimer); the caller kills a worker whose CPU time runs past the budget inside C
code, and -- the outer safety net against a hung worker, the only wall-clock limit --
one that takes ``WALL_SAFETY_S`` of wall time on one item. Worker start-up and waiting for a free
worker cost no worker CPU and are not counted. A timed-out item is never cached.

Safety: model text is never evaluated. Our own parser only builds sympy objects from a
whitelisted token grammar; anything else goes to latex2sympy (an ANTLR grammar, no eval) and
math-verify (whose plain-expression path gives sympy's ``parse_expr`` only what its regex lets
through: digits, dots, spaces and operators -- never a name), and those run in killable worker
processes under the CPU budget. Inputs that could explode (exponent towers, huge factorials, deep
nesting, very long answers) are refused before sympy sees them. Inside daemonic multiprocessing
workers, where worker processes are unavailable (not Linux) or with
``REASONLITE_GRADER_ISOLATION=inline``, the same work runs in-process: guarded by those limits,
and an item that used more than its budget of the thread's CPU time counts as timed out.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import math
import multiprocessing
import os
import re
import sys
import threading
import time
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction

__all__ = [
    "GradeResult", "TIMEOUT_S", "UNDECIDED_REASONS", "WALL_SAFETY_S", "answers_equal", "answers_equal_many", "canonical_key",
    "canonical_keys", "extract_answer", "extract_answers", "grade", "grade_many",
    "is_fallback_key", "is_unparsed_key", "key_kind", "shutdown",
]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- settings


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


TIMEOUT_S: float = _env_float("REASONLITE_GRADER_TIMEOUT", 1.0)  # worker CPU seconds per call / item
WALL_SAFETY_S: float = _env_float("REASONLITE_GRADER_WALL_SAFETY", 60.0)  # a hung worker, not a slow one
ISOLATION: str = os.environ.get("REASONLITE_GRADER_ISOLATION", "process")  # "process" | "inline"
MAX_ANSWER_CHARS = 1000  # longer answers are keyed by hash and never parsed
MAX_BRACE_DEPTH = 30
MAX_VERIFY_CHARS = 20_000  # math-verify sees at most the tail of a solution
MAX_SCAN_CHARS = 100_000  # boxes and "answer is" markers are looked for in the tail
MAX_RESULT_DIGITS = 10_000  # refuse numbers whose exact value would be larger
CACHE_SIZE = 100_000  # entries per cache (keys by answer string, verdicts by pair)
MV_PARSE_CACHE_SIZE = 20_000  # math-verify parses kept per worker process
PARALLEL_MIN = 48  # symbolic items in one batch before fanning out to several workers
MAX_WORKERS = max(1, min(8, os.cpu_count() or 1))
FLOAT_PLACES = 6


# ----------------------------------------------------------------------------- small helpers


class _LRU:
    """Thread-safe bounded LRU keyed by strings (or tuples of strings)."""

    def __init__(self, size: int):
        self._d: OrderedDict = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, k, default=None):
        with self._lock:
            if k in self._d:
                self._d.move_to_end(k)
                return self._d[k]
        return default

    def put(self, k, v) -> None:
        with self._lock:
            self._d[k] = v
            self._d.move_to_end(k)
            if len(self._d) > self._size:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


def _brace_depth(s: str) -> int:
    depth = best = 0
    for ch in s:
        if ch == "{":
            depth += 1
            best = max(best, depth)
        elif ch == "}":
            depth -= 1
    return best


def _brace_pairs(s: str) -> dict[int, int]:
    """Index of each '{' -> index of its matching '}' (escaped braces ignored); one linear pass."""
    pairs, stack, i, n = {}, [], 0, len(s)
    while i < n:
        ch = s[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _split_top(s: str, seps: str = ",") -> list[str]:
    """Split on separators that are not inside (), [], {} (``\\{`` counts as a bracket too)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in seps and depth == 0:
            parts.append(s[start:i])
            start = i + 1
        i += 1
    parts.append(s[start:])
    return parts


# ----------------------------------------------------------------------------- extraction

_HARMONY_FINAL = "<|channel|>final<|message|>"
_HARMONY_STOPS = ("<|end|>", "<|return|>", "<|call|>", "<|start|>", "<|channel|>")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*(\{)|\\boxed[ \t]+([^\s${}\\]+)")
# What may sit between several boxes that together form one answer (\boxed{1}, \boxed{2}).
_BOX_JOIN_RE = re.compile(
    r"(?:\s|[,;&$]|\\[,;:! ]|\\q?quad|\\\\|\\[\[\]()]|\band\b|\bor\b"
    r"|\\(?:text|textbf|mathrm|mbox)\s*\{\s*(?:,|and|or)?\s*\})*",
    re.IGNORECASE,
)
_MARKER_RE = re.compile(
    r"(?:final\s+answer|the\s+answer|\banswer)\s*(?:\*\*)?\s*(?:is\b|:|=)?\s*(?:\*\*)?\s*:?",
    re.IGNORECASE,
)
_FINAL_RE = re.compile(r"final\s+answer|answer\s+is", re.IGNORECASE)
_HOPE_RE = re.compile(r"\.?\s*I hope it is correct.*$", re.IGNORECASE | re.DOTALL)
_MATH_SEG_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")


def _strip_reasoning(text: str) -> str | None:
    """Drop reasoning: keep the Harmony final channel, or what follows ``</think>``."""
    k = text.rfind(_HARMONY_FINAL)
    if k >= 0:
        t = text[k + len(_HARMONY_FINAL):]
        cuts = [i for i in (t.find(s) for s in _HARMONY_STOPS) if i >= 0]
        return t[: min(cuts)] if cuts else t
    if "<|channel|>" in text:
        return None  # Harmony output that never reached its final channel
    k = text.rfind("</think>")
    if k >= 0:
        return text[k + len("</think>"):]
    k = text.find("<think>")
    return text[:k] if k >= 0 else text  # unterminated reasoning never commits to an answer


def _last_boxes(t: str) -> tuple[str, int, bool] | None:
    """(joined content of the last box group, end index of its last box in ``t``, whether it
    is the only group)."""
    if "\\boxed" not in t and "\\fbox" not in t:
        return None
    skip = max(0, len(t) - MAX_SCAN_CHARS)  # a final answer lives near the end
    t = t[skip:]
    pairs = _brace_pairs(t)
    boxes, pos = [], 0
    for m in _BOX_RE.finditer(t):
        if m.start() < pos:
            continue  # nested inside the previous box
        if m.group(1):
            end = pairs.get(m.start(1))
            if end is None:
                continue  # unbalanced \boxed{ : ignore it
            boxes.append((m.start(), end + 1, t[m.end(1):end]))
            pos = end + 1
        else:
            boxes.append((m.start(), m.end(), m.group(2)))
            pos = m.end()
    if not boxes:
        return None
    group = [boxes[-1]]
    for b in reversed(boxes[:-1]):
        between = t[b[1]:group[0][0]]
        if len(between) > 60 or not _BOX_JOIN_RE.fullmatch(between):
            break
        group.insert(0, b)
    parts = [_clean(b[2]) for b in group]
    return ", ".join(p for p in parts if p), skip + group[-1][1], len(group) == len(boxes)


def _after_marker(t: str) -> tuple[str, str] | None:
    """(answer, how) after the last "answer" marker; how is 'final' for "final answer ..." /
    "answer is ..." (unambiguous, as for math-verify) and 'marker' otherwise."""
    t = t[-MAX_SCAN_CHARS:]
    matches = list(_MARKER_RE.finditer(t))
    if not matches:
        return None
    m = matches[-1]
    rest = _HOPE_RE.sub("", t[m.end():]).strip()
    lines = [ln.strip(" *") for ln in rest.splitlines() if ln.strip(" *")]
    if not lines:
        return None
    line = lines[0]
    if len(_WORD_RE.findall(_MATH_SEG_RE.sub(" ", line))) > 2:  # prose after the marker
        segs = [next(g for g in sm.groups() if g is not None) for sm in _MATH_SEG_RE.finditer(line)]
        lead = re.match(r"[-+]?\d[\d.,/]*(?![\w^])", line)
        if " is " in line:
            line = line.rsplit(" is ", 1)[1]  # "the largest $n$ is 34" -> "34"
        elif segs:
            line = segs[-1]
        elif lead:
            line = lead.group()  # "12 apples and some more words" -> "12"
    ans = _clean(line)
    if not ans or len(ans) > MAX_ANSWER_CHARS:
        return None
    return ans, "final" if _FINAL_RE.search(m.group()) else "marker"


def _looks_bare(t: str) -> bool:
    """A short answer rather than prose: at most two plain words outside math."""
    s = t.strip()
    if not s or len(s) > 300:
        return False
    outside = _MATH_SEG_RE.sub(" ", s)
    if "\n" in outside.strip():
        return False
    outside = re.sub(r"\\(?:text|textbf|mathrm|mbox|textnormal)\s*\{[^{}]*\}", " ", outside)
    return len(_WORD_RE.findall(outside)) <= 2


def _extract(text) -> tuple[str | None, str]:
    """(answer, how): how is 'boxed', 'final', 'bare', 'boxes', 'marker' or 'none'; the first
    three are unambiguous enough for negative verdicts without math-verify."""
    if not isinstance(text, str):
        return None, "none"
    t = _strip_reasoning(text)
    if t is None:
        return None, "none"
    boxed = _last_boxes(t) or ("\\boxed" in t[-MAX_SCAN_CHARS:] and ("", 0, False))
    if boxed and boxed[0]:
        # A "final answer is ..." after the last box is the later commitment (math-verify
        # also ranks it above boxes).
        tail = t[boxed[1]:]
        found = _after_marker(tail) if _FINAL_RE.search(tail) else None
        return found or (boxed[0], "boxed" if boxed[2] else "boxes")  # boxes: earlier ones too
    found = _after_marker(t)
    if found:
        return found
    if _looks_bare(t) and not boxed:  # an unbalanced \boxed{ commits to nothing
        ans = _clean(t)
        if ans:
            return ans, "bare"
    return None, "none"


def extract_answer(text: str | None) -> str | None:
    """The answer a solution commits to, cleaned (``None`` if it commits to none).

    Last ``\\boxed{}``/``\\fbox{}`` (several boxes joined by ``,``/``and`` on one line give
    "1, 2"); Harmony final channel; ``<think>`` blocks ignored; "final answer is ..." style
    markers; otherwise a short bare answer. Cleaning strips ``$``, ``\\(..\\)``, trailing
    punctuation, units, ``^\\circ`` and a leading ``x =``.
    """
    return _extract(text)[0]


def extract_answers(texts) -> list[str | None]:
    texts = list(texts)
    found = {t: extract_answer(t) for t in dict.fromkeys(t for t in texts if isinstance(t, str))}
    return [found.get(t) if isinstance(t, str) else None for t in texts]


# ----------------------------------------------------------------------------- cleaning

_UNITS = (
    r"(?:square\s+|sq\.?\s+|cubic\s+)?(?:units?|cm|mm|km|m|in|inches|inch|ft|feet|foot|yards?|yd|"
    r"miles?|mi|meters?|metres?|centimeters?|kilometers?|kg|g|grams?|kilograms?|lbs?|pounds?|oz|"
    r"ounces?|seconds?|sec|s|minutes?|min|hours?|hrs?|h|days?|weeks?|months?|years?|dollars?|"
    r"cents?|degrees?|deg|radians?|rad|mph|km/h|liters?|litres?|l|ml|gallons?|yuan|euros?|"
    r"people|persons?|students?|ways?|times|apples?|cookies?|marbles?|balls?|coins?)"
)
_UNIT_TAIL_RE = re.compile(
    r"(?<=[\d}).])(?:\s*\\(?:text|mbox|textnormal|mathrm|textbf|rm)\s*\{\s*[A-Za-z][A-Za-z\s./]*\}"
    r"|\s+" + _UNITS + r"\b)(?:\s*\^\s*\{?\s*[23]\s*\}?|[²³])?\s*$",
    re.IGNORECASE,
)
_ASSIGN_LHS = (
    r"(?:\\?[A-Za-z]+|\|[A-Za-z]+\|)(?:_(?:\{[A-Za-z0-9]+\}|[A-Za-z0-9]))?(?:\([A-Za-z,\s]*\))?'*"
    r"|\(\s*[A-Za-z](?:_(?:\{\w+\}|\w))?(?:\s*,\s*[A-Za-z](?:_(?:\{\w+\}|\w))?)+\s*\)"
)
_ASSIGN_RE = re.compile(r"^\s*(" + _ASSIGN_LHS + r")\s*=(?![=<>])\s*(.+)$", re.DOTALL)
_AND_RE = re.compile(
    r"\s*(?:,\s*)?(?:\\(?:text|textbf|mathrm|mbox)\s*\{\s*(?:and|or)\s*\}|\s(?:and|or)\s)\s*",
    re.IGNORECASE,
)
_WRAP_RE = re.compile(r"^\\(?:text|textbf|textnormal|mathrm|mbox|mathbf|textit|emph)\s*\{([^{}]*)\}$")
_CLEAN_SUBS = [
    (re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)\s*(?=[()\[\]|.]|\\[{}|])"), ""),
    (re.compile(r"\\(?:left|right)\s*\."), ""),
    (re.compile(r"\\(?:displaystyle|textstyle|limits|hfill)\b"), ""),
    (re.compile(r"\s*(?<!\\)\\!\s*"), ""),  # 11,\! 111 is a thousands separator
    (re.compile(r"(?<!\\)\\[,;: ]|~"), " "),
    (re.compile(r"\\q?quad\b"), " "),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\[dtc]frac\b"), r"\\frac"),
    (re.compile(r"\\[dt]binom\b"), r"\\binom"),
    (re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°|\\degree\b|\\circ\s*$"), ""),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\varnothing\b"), r"\\emptyset"),
    (re.compile(r"^\*\*|\*\*$"), ""),  # markdown bold around an answer
    (re.compile(r"\\\$"), ""),
    (re.compile(r"(?<!\\)\\[\[\]()]"), " "),
    (re.compile(r"\$"), " "),
]


def _clean_once(s: str) -> str:
    for rx, rep in _CLEAN_SUBS:
        s = rx.sub(rep, s)
    s = s.strip()
    if s.startswith(("\\boxed", "\\fbox")):
        inner = (_last_boxes(s) or ("", 0, True))[0]
        if inner and re.fullmatch(r"\\(?:boxed|fbox)\s*\{.*\}", s, re.DOTALL):
            s = inner
    m = _WRAP_RE.match(s)
    if m and re.fullmatch(r"[A-Za-z]|[+-]?[\d.,]+|\(?[A-J]\)?", m.group(1).strip()):
        s = m.group(1).strip()  # \text{E}, \text{13}: the content itself is the answer
    s = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", s)  # "x \in [1,2]" -> "[1,2]"
    s = _AND_RE.sub(", ", s)
    s = re.sub(r"[.,;:]+$", "", s.rstrip()).strip()
    s = _UNIT_TAIL_RE.sub("", s).strip()
    s = _strip_assignments(s)
    return " ".join(s.split())


def _strip_assignments(s: str) -> str:
    """``x = 3`` -> ``3``; ``x = 1 + 2 = 3`` -> ``3``; ``a = 1, b = 2`` -> ``(1, 2)`` ordered by name."""
    if "=" not in s:
        return s
    parts = _split_top(s, ",;")
    pairs = []
    for p in parts:
        m = _ASSIGN_RE.match(p)
        if not m or any(c in m.group(2) for c in "<>") or "\\le" in m.group(2) or "\\ge" in m.group(2):
            return s
        pairs.append((m.group(1).replace(" ", "").lower(), _split_top(m.group(2), "=")[-1].strip()))
    if len(pairs) == 1:
        return pairs[0][1]
    names = {n for n, _ in pairs}
    if len(names) == 1:  # p = -1, p = 15/8: a set of values
        return ", ".join(v for _, v in pairs)
    if len(names) == len(pairs):  # distinct unknowns: a tuple in name order
        return "(" + ", ".join(v for _, v in sorted(pairs)) + ")"
    return s


def _clean(s: str) -> str:
    """Surface normalization shared by extraction and keys; idempotent."""
    s = s.strip()
    if len(s) > 5 * MAX_ANSWER_CHARS:
        return " ".join(s.split())  # too long to be an answer: no regex work
    for _ in range(4):
        t = _clean_once(s)
        if t == s:
            break
        s = t
    return s


# ----------------------------------------------------------------------------- answer info


@dataclass(frozen=True)
class _Info:
    """What grading needs to know about one answer string (picklable, cached)."""

    key: str | None
    kind: str  # num choice text expr set list tuple interval matrix other str timeout none
    value: Fraction | None = None  # num
    decimal: bool = False  # written with a decimal point: tolerance applies
    pct: bool = False
    probe: tuple | None = None  # complex values at fixed points (num / scalar expressions)
    elems: tuple | None = None  # exact values: (v,) for num; elements / endpoints / shape + entries
    refused: bool = False  # judged too expensive to parse


_NONE_INFO = _Info(None, "none")
_NUM_RE = re.compile(r"([+-])?\s*([1-9]\d{0,2}(?:,\d{3})+|[1-9]\d{0,2}(?: \d{3})+|\d+)?(?:\.(\d+))?")
_SLASH_RE = re.compile(r"([+-])?\s*\(?\s*(\d+)\s*\)?\s*/\s*\(?\s*(\d+)\s*\)?")
_FRAC_RE = re.compile(
    r"([+-])?\s*(\d+\s*)?\\frac\s*(?:\{\s*([+-]?)\s*(\d+)\s*\}|(\d))\s*(?:\{\s*([+-]?)\s*(\d+)\s*\}|(\d))"
)
_SCI_RE = re.compile(
    r"([+-]?\s*\d+(?:\.\d+)?)\s*(?:(?:\\times|\\cdot|\*|×)\s*10\s*\^\s*\{?\s*([+-]?\d{1,7})\s*\}?|[eE]([+-]?\d{1,7}))"
)
_PCT_RE = re.compile(r"^(.*?)\s*(?:%|percent(?:age)?|pct)$", re.IGNORECASE | re.DOTALL)
_CHOICE_RE = re.compile(r"\(?([A-J])\)?\.?|\(([A-J])\)\s+\S.*", re.DOTALL)
_TEXT_RE = re.compile(r"[A-Za-z][A-Za-z' -]*")
_SHORT_WORDS = {"odd", "yes", "no", "all", "none", "nil", "true", "false", "even", "neither", "both"}


def _num_info(value: Fraction, decimal: bool = False) -> _Info:
    key = f"num:{value.numerator}" if value.denominator == 1 else f"num:{value.numerator}/{value.denominator}"
    v = complex(float(value)) if abs(value) < 1e300 else None
    return _Info(key, "num", value, decimal, probe=(v, v) if v is not None else None, elems=(value,))


def _fast_number(s: str) -> tuple[Fraction, bool] | None:
    """Exact value of plain numerals, fractions, mixed numbers, scientific notation."""
    if len(s) > 4000:
        return None
    m = _NUM_RE.fullmatch(s)
    if m and (m.group(2) or m.group(3)):
        digits = re.sub(r"[, ]", "", m.group(2) or "0")
        frac = m.group(3) or ""
        v = Fraction(int(digits + frac), 10 ** len(frac))
        return (-v if m.group(1) == "-" else v), bool(m.group(3))
    m = _SLASH_RE.fullmatch(s)
    if m and int(m.group(3)) != 0:
        v = Fraction(int(m.group(2)), int(m.group(3)))
        return (-v if m.group(1) == "-" else v), False
    m = _FRAC_RE.fullmatch(s)
    if m:
        num = int(m.group(4) or m.group(5)) * (-1 if m.group(3) == "-" else 1)
        den = int(m.group(7) or m.group(8)) * (-1 if m.group(6) == "-" else 1)
        if den == 0:
            return None
        v = Fraction(num, den)
        if m.group(2):  # 2\frac{1}{2} is a mixed number (latex2sympy reads it so too)
            if num < 0 or den < 0:
                return None
            v += int(m.group(2))
        return (-v if m.group(1) == "-" else v), False
    m = _SCI_RE.fullmatch(s)
    if m:
        mant = m.group(1).replace(" ", "")
        if abs(int(m.group(2) or m.group(3))) > 400:
            raise _Refuse
        return Fraction(mant) * Fraction(10) ** int(m.group(2) or m.group(3)), True
    return None


def _unwrap_text(s: str) -> tuple[str, bool]:
    m = _WRAP_RE.match(s)
    return (m.group(1).strip(), True) if m else (s, False)


def _fast_info(s: str) -> _Info | None:
    """Info for answers decidable without sympy; ``None`` means "needs the symbolic parser"."""
    if not s:
        return _NONE_INFO
    if len(s) > MAX_ANSWER_CHARS:
        return _str_info(s, refused=True)
    inner, wrapped = _unwrap_text(s)
    try:
        num = _fast_number(s)
    except _Refuse:
        return _str_info(s, refused=True)
    if num is not None:
        return _num_info(*num)
    m = _CHOICE_RE.fullmatch(inner)
    if m:
        return _Info("choice:" + (m.group(1) or m.group(2)), "choice")
    if _TEXT_RE.fullmatch(inner):
        words = inner.lower().split()
        if wrapped or len(words) > 1 or len(inner) >= 4 or inner.lower() in _SHORT_WORDS:
            return _Info("text:" + " ".join(words), "text")
    if wrapped and not re.search(r"[\\{}^_=]", inner):
        return _Info("text:" + " ".join(inner.lower().split()), "text")
    return _fast_surd(s) or _fast_collection(s)


# The commonest non-rational answers, r*sqrt(n) and r*pi, and sets / tuples / intervals of
# plain numbers, keyed without sympy. The keys are exactly the srepr sympy gives the same
# values (tests compare the two paths), so every surface form still meets in one key.
_SQRT = r"\\sqrt\s*(?:\{\s*(?P<rad>\d{1,7})\s*\}|(?P<rad1>\d))"
_SURD_RES = [re.compile(r"(?P<sign>[+-])?\s*" + body) for body in (
    r"(?P<a>\d{1,7})?\s*(?:\\cdot\s*)?(?:" + _SQRT + r"|(?P<pi>\\pi))(?:\s*/\s*(?P<c>\d{1,7}))?",
    r"\\frac\s*\{\s*(?P<a>\d{1,7})?\s*(?:" + _SQRT + r"|(?P<pi>\\pi))\s*\}\s*\{\s*(?P<c>\d{1,7})\s*\}",
    r"\\frac\s*\{\s*(?P<a>\d{1,7})\s*\}\s*\{\s*(?P<c>\d{1,7})\s*\}\s*(?:" + _SQRT + r"|(?P<pi>\\pi))",
    r"\\frac\s*\{\s*(?P<a>\d{1,7})\s*\}\s*\{\s*" + _SQRT + r"\s*\}(?P<inv>)",
)]


def _srepr_rational(v: Fraction) -> str:
    return f"Integer({v.numerator})" if v.denominator == 1 else f"Rational({v.numerator}, {v.denominator})"


def _srepr_times(c: Fraction, atom: str) -> str:
    """srepr of c * atom as sympy prints it (a negative coefficient shows as -1 times |c|)."""
    if c == 1:
        return atom
    if c == -1:
        return f"Mul(Integer(-1), {atom})"
    if c < 0:
        return f"Mul(Integer(-1), {_srepr_rational(-c)}, {atom})"
    return f"Mul({_srepr_rational(c)}, {atom})"


def _fast_surd(s: str) -> _Info | None:
    for rx in _SURD_RES:
        m = rx.fullmatch(s)
        if m:
            break
    else:
        return None
    g = m.groupdict()
    a, c = int(g["a"] or 1), int(g.get("c") or 1)
    if c == 0:
        return None
    coef = Fraction(-a if g["sign"] == "-" else a, c)
    if g.get("pi"):
        v = complex(float(coef) * math.pi)
        return _Info("sym:" + _srepr_times(coef, "pi"), "expr", probe=(v, v)) if coef else _num_info(coef)
    n, k, d = int(g["rad"] or g["rad1"]), 1, 2
    while d * d <= n:  # n = k^2 * m with m squarefree
        while n % (d * d) == 0:
            n //= d * d
            k *= d
        d += 1
    coef *= k
    if g.get("inv") is not None:  # a / (k sqrt(m)) = a sqrt(m) / (k^2 m) ... with coef = a * k here
        if n == 0:
            return None
        coef = Fraction(coef.numerator, k * k * n)
    if n in (0, 1) or coef == 0:
        return _num_info(coef * n)
    v = complex(float(coef) * math.sqrt(n))
    return _Info("sym:" + _srepr_times(coef, f"Pow(Integer({n}), Rational(1, 2))"), "expr", probe=(v, v))


_INF_RE = re.compile(r"([+-])?\s*\\infty")


def _fast_collection(s: str) -> _Info | None:
    """\\{1, 2\\}, 1, 2, (1, 2, 3), [1, 2), (-\\infty, 3] of plain numbers, read as latex2sympy
    reads them (a 2-tuple (a, b) with a < b is an open interval)."""
    braced = s.startswith("\\{") and s.endswith("\\}")
    opener, closer = s[:1], s[-1:]
    if braced:
        body, kind = s[2:-2], "set"
    elif opener in "([" and closer in ")]":
        body, kind = s[1:-1], "tuple"
    else:
        body, kind = s, "list"
    parts = [x.strip() for x in body.split(",")]
    if any(not x for x in parts) or (kind == "list" and len(parts) < 2):
        return None if body.strip() or kind != "set" else _Info("sym:EmptySet", "other")
    vals, decimal = [], False
    for x in parts:
        inf = _INF_RE.fullmatch(x)
        try:
            num = None if inf else _fast_number(x)
        except _Refuse:
            return None
        if inf and kind == "tuple" and len(parts) == 2:
            vals.append(-math.inf if inf.group(1) == "-" else math.inf)
        elif num is None:
            return None
        else:
            vals.append(num[0])
            decimal |= num[1]

    def rep(v):
        return ("-oo" if v < 0 else "oo") if isinstance(v, float) else _srepr_rational(v)

    if kind in ("set", "list"):
        if any(isinstance(v, float) for v in vals):
            return None
        uniq = sorted(set(vals))
        return _Info(f"sym:FiniteSet({', '.join(map(rep, uniq))})", kind, decimal=decimal, elems=tuple(uniq))
    lo, ro = opener == "(", closer == ")"
    if len(vals) > 2 or (len(vals) == 2 and lo and ro and vals[1] <= vals[0]):
        if len(vals) == 1 or any(isinstance(v, float) for v in vals) or not (lo and ro):
            return None
        return _Info(f"sym:Tuple({', '.join(map(rep, vals))})", "tuple", decimal=decimal, elems=tuple(vals))
    if len(vals) != 2 or vals[1] <= vals[0]:
        return None  # one element, or an empty / degenerate interval: leave it to sympy
    lo, ro = lo or vals[0] == -math.inf, ro or vals[1] == math.inf
    key = f"sym:Interval({rep(vals[0])}, {rep(vals[1])}, {str(lo).lower()}, {str(ro).lower()})"
    return _Info(key, "interval", decimal=decimal, elems=(vals[0], vals[1], lo, ro))


def _split_pct(s: str) -> tuple[str, bool]:
    m = _PCT_RE.match(s)
    return (m.group(1).strip(), True) if m and m.group(1).strip() else (s, False)


def _str_info(s: str, refused: bool = False) -> _Info:
    if len(s) > MAX_ANSWER_CHARS:
        return _Info("str:#" + hashlib.sha256(s.encode("utf-8", "replace")).hexdigest(), "str", refused=True)
    return _Info("str:" + s.replace(" ", ""), "str", refused=refused)


_NESTED_POW_RE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*[\w.]+\s*\^|\^\s*\([^()]*\^")
_BIG_EXP_RE = re.compile(r"\^\s*\{?\s*[+-]?\s*\d{5,}")
_BIG_FACT_RE = re.compile(r"\d{4,}\s*!|[)}\]]\s*!")


def _explosive(s: str) -> bool:
    """Answers whose evaluation could take unbounded time or memory (checked before sympy)."""
    return len(s) > MAX_ANSWER_CHARS or s.count("(") > 200 or _risky(s)


def _risky(s: str) -> bool:
    """Exponent towers, huge exponents or factorials, deep nesting anywhere in the text."""
    if _brace_depth(s) > MAX_BRACE_DEPTH or _NESTED_POW_RE.search(s) or _BIG_EXP_RE.search(s):
        return True
    m = _BIG_FACT_RE.search(s)
    return bool(m) and not re.search(r"(?<!\\)\b[a-zA-Z]\b", re.sub(r"\\[A-Za-z]+", " ", s))


# ----------------------------------------------------------------------------- symbolic side
# Everything below until the worker pool runs inside the bounded executor (a worker process).


class _Bail(Exception):
    """Outside the mini-parser's grammar: let latex2sympy try."""


class _Refuse(Exception):
    """Too expensive to evaluate: key as an unparsed string."""


_TOK_RE = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|(\\[A-Za-z]+|\\[{}])|([A-Za-z])|(\S))")


class _Mini:
    """Recursive-descent parser for common answer LaTeX (numbers, + - * / ^, \\frac, \\sqrt,
    \\pi, e, i, \\infty, single-letter variables, implicit products, comma lists, tuples,
    intervals, \\{sets\\}, \\cup) with latex2sympy's reading of them, ~10x faster than its
    ANTLR grammar. It builds sympy objects with constructors only: nothing is evaluated."""

    OPS_MUL = {"*", "\\cdot", "\\times"}
    OPS_DIV = {"/", "\\div"}

    def __init__(self, s: str):
        import sympy

        self.sp = sympy
        self.toks: list[tuple[str, str]] = []
        for m in _TOK_RE.finditer(s):
            num, cmd, let, other = m.groups()
            self.toks.append(("n", num) if num else ("c", cmd) if cmd else ("l", let) if let else ("o", other))
        if len(self.toks) > 300:
            raise _Bail
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else ("", "")

    def take(self, val=None):
        t = self.peek()
        if val is not None and t[1] != val:
            raise _Bail
        self.i += 1
        return t

    def parse(self):
        items = self.items(self.union)
        if self.i != len(self.toks):
            raise _Bail
        return items[0] if len(items) == 1 else self.sp.FiniteSet(*items)

    def items(self, item) -> list:
        out = [item()]
        while self.peek()[1] == ",":
            self.take()
            out.append(item())
        return out

    def union(self):
        e = self.expr()
        while self.peek()[1] == "\\cup":
            self.take()
            e = self.sp.Union(e, self.expr())
        return e

    def interval(self, opener: str):
        """(a, b) / [a, b) / (a, b, c): latex2sympy's rules (an empty interval is a tuple)."""
        sp = self.sp
        items = self.items(self.expr)
        close = self.take()[1]
        if close not in (")", "]") or (opener == "[" and len(items) != 2):
            raise _Bail
        if len(items) == 1:
            if close != ")":
                raise _Bail
            return items[0]
        lo, ro = opener == "(", close == ")"
        if len(items) > 2:
            if not (lo and ro):
                raise _Bail
            return sp.Tuple(*items)
        a, b = items
        if not all(x.is_number and x.is_extended_real for x in (a, b)):
            raise _Bail  # symbolic endpoints: leave the reading to latex2sympy
        if (lo and ro and b <= a) or (not lo and not ro and b < a):
            return sp.Tuple(a, b)
        return sp.Interval(a, b, lo, ro)

    def expr(self):
        e = self.term()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            t = self.term()
            e = e + t if op == "+" else e - t
        return e

    def starts_atom(self, t) -> bool:
        return t[0] in ("l", "n") or t[1] in ("(", "{", "\\frac", "\\sqrt", "\\pi")

    def term(self):
        e = self.unary()
        while True:
            t = self.peek()
            if t[1] in self.OPS_MUL:
                self.take()
                e = e * self.unary()
            elif t[1] in self.OPS_DIV:
                self.take()
                d = self.unary()
                if d == 0 or self.starts_atom(self.peek()):
                    raise _Bail  # 1/2x is ambiguous: leave it to latex2sympy
                e = e / d
            elif self.starts_atom(t) and t[0] != "n":  # implicit product: 2\sqrt{3}, 3x, (a)(b)
                e = e * self.power()
            else:
                return e

    def unary(self):
        t = self.peek()[1]
        if t in ("-", "+"):
            self.take()
            v = self.unary()
            return -v if t == "-" else v
        return self.power()

    def power(self):
        b = self.atom()
        if self.peek()[1] == "^":
            self.take()
            b = self._pow(b, self.group())
            if self.peek()[1] == "^":
                raise _Bail
        if self.peek()[1] == "!":
            self.take()
            if (b.is_Integer and not 0 <= b <= 1000) or (b.is_number and not b.is_Integer):
                raise _Refuse
            b = self.sp.factorial(b)
        return b

    def _pow(self, b, ex):
        if ex.is_Rational:
            if b.is_Rational:
                if abs(b) not in (0, 1) and abs(ex) * math.log10(max(abs(b.p), b.q)) > MAX_RESULT_DIGITS:
                    raise _Refuse
            elif abs(ex) > 60:
                raise _Refuse  # expanding (x+1)^1000 or (1+sqrt2)^5000 is not worth it
        return self.sp.Pow(b, ex)

    def group(self):
        """Argument of \\frac / \\sqrt / ^: ``{expr}`` or one token (``\\frac12``, ``x^2``)."""
        t = self.peek()
        if t[1] == "{":
            self.take()
            e = self.expr()
            self.take("}")
            return e
        if t[0] == "n" and len(t[1]) > 1 and "." not in t[1]:
            self.toks[self.i] = ("n", t[1][1:])  # \frac12 -> 1, 2
            return self.sp.Integer(int(t[1][0]))
        if t[0] in ("n", "l") or t[1] == "\\pi":
            return self.atom()
        raise _Bail

    def atom(self):
        sp = self.sp
        kind, v = self.take()
        if kind == "n":
            return sp.Rational(v) if "." in v else sp.Integer(int(v))
        if kind == "l":
            if self.peek()[1] == "(":
                raise _Bail  # f(x): a function application, not a product
            return sp.E if v == "e" else sp.I if v == "i" else sp.Symbol(v.lower())
        if v == "\\pi":
            return sp.pi
        if v == "\\infty":
            return sp.oo
        if v in ("(", "["):
            return self.interval(v)
        if v == "\\{":
            if self.peek()[1] == "\\}":
                self.take()
                return sp.EmptySet
            items = self.items(self.expr)
            self.take("\\}")
            return sp.FiniteSet(*items)
        if v == "{":
            e = self.expr()
            self.take("}")
            return e
        if v == "\\frac":
            n = self.group()
            d = self.group()
            if d == 0:
                raise _Bail
            return n / d
        if v == "\\sqrt":
            if self.peek()[1] == "[":
                self.take()
                idx = self.expr()
                self.take("]")
                if not (idx.is_Integer and 2 <= idx <= 100):
                    raise _Bail
                return sp.root(self.group(), idx)
            return sp.sqrt(self.group())
        raise _Bail


def _latex_parse(s: str):
    """latex2sympy (ANTLR grammar, no eval) with math-verify's normalization."""
    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig, latex2sympy, normalize_latex
    from math_verify.grader import should_treat_as_complex

    cfg = NormalizationConfig(basic_latex=True, units=True, malformed_operators=True, nits=True,
                              boxed="all", equations=False)
    n = normalize_latex(s, config=cfg)
    return latex2sympy(n, is_real=not should_treat_as_complex(n), convert_degrees=False, normalization_config=None)


def _plain(obj):
    """Assumption-free lower-case symbols, ``i`` -> I, floats -> exact decimals, no UnevaluatedExpr."""
    import sympy as sp

    if isinstance(obj, sp.MatrixBase):
        obj = sp.ImmutableMatrix(obj)
    if not isinstance(obj, sp.Basic):
        raise _Bail
    obj = obj.replace(lambda x: isinstance(x, sp.UnevaluatedExpr), lambda x: x.args[0])
    reps = {}
    for s in obj.atoms(sp.Symbol):
        reps[s] = sp.I if s.name == "i" else sp.Symbol(s.name.lower())
    for f in obj.atoms(sp.Float):
        reps[f] = sp.Rational(str(f))
    return obj.xreplace(reps) if reps else obj


def _too_big(e) -> bool:
    """Too large to expand: many nodes, or a sum raised to a high power."""
    import sympy as sp

    for n, node in enumerate(sp.preorder_traversal(e)):
        if n > 300 or (node.is_Pow and node.exp.is_Integer and abs(node.exp) > 20 and not node.base.is_number):
            return True
    return False


def _canon_scalar(e):
    import sympy as sp

    if not isinstance(e, sp.Expr):
        return _canon_any(e)
    if e.is_Atom or e.has(sp.Integral, sp.Sum, sp.Product, sp.Limit, sp.Derivative) or _too_big(e):
        return e
    e = e.doit()  # latex2sympy leaves 2^{10} unevaluated; explosive inputs never get here
    if e.free_symbols:
        if e.is_polynomial():
            return sp.expand(e)
        return sp.cancel(e) if e.is_rational_function() else sp.expand(e)
    e = sp.expand(e)
    if any(p.exp.is_negative and p.base.is_Add for p in e.atoms(sp.Pow)):
        e = sp.expand(sp.radsimp(e))  # 1/(1+sqrt2) == sqrt2 - 1
    return e


def _canon_rel(r):
    """One form per relation: ``0 < d`` / ``0 <= d`` / ``d = 0`` / ``d != 0`` with d scaled."""
    import sympy as sp

    lhs, rhs = r.lhs, r.rhs
    if not (isinstance(lhs, sp.Expr) and isinstance(rhs, sp.Expr)):
        return r.func(_canon_any(lhs), _canon_any(rhs), evaluate=False)
    if isinstance(r, (sp.StrictGreaterThan, sp.GreaterThan)):
        r = r.reversed
    d = _canon_scalar(r.rhs - r.lhs)
    symmetric = isinstance(r, (sp.Equality, sp.Unequality))
    if d.free_symbols and not _too_big(d):
        try:
            lc = sp.Poly(d, *sorted(d.free_symbols, key=lambda s: s.name)).LC()
            if lc.is_number and lc != 0:
                d = sp.expand(d / (lc if symmetric else abs(lc)))
        except (sp.PolynomialError, ValueError, TypeError):
            if symmetric and d.could_extract_minus_sign():
                d = -d
    return r.func(sp.Integer(0), d, evaluate=False)


def _canon_any(o):
    import sympy as sp
    from sympy.core.relational import Relational

    if isinstance(o, sp.MatrixBase):
        return sp.ImmutableMatrix(o).applyfunc(_canon_scalar)
    if isinstance(o, sp.FiniteSet):
        return sp.FiniteSet(*[_canon_any(a) for a in o.args])
    if isinstance(o, sp.Tuple):
        return sp.Tuple(*[_canon_any(a) for a in o.args])
    if isinstance(o, sp.Interval):
        return sp.Interval(_canon_scalar(o.start), _canon_scalar(o.end), o.left_open, o.right_open)
    if isinstance(o, (sp.Union, sp.Intersection, sp.Complement)):
        return o.func(*[_canon_any(a) for a in o.args])
    if isinstance(o, Relational):
        return _canon_rel(o)
    if isinstance(o, sp.And) or type(o).__name__ == "And":
        return sp.And(*[_canon_any(a) for a in getattr(o, "_unsorted_args", o.args)], evaluate=False)
    if isinstance(o, sp.Expr):
        return _canon_scalar(o)
    return o


def _probe_point(syms, k: int) -> dict:
    import sympy as sp

    # Deterministic, name-derived, irrational-looking positive values (no hash randomization).
    return {s: sp.Float(0.37 + ((zlib.crc32(s.name.encode()) + 7919 * k) % 997) / 577.0, 20) for s in syms}


def _probe(e) -> tuple | None:
    """Values at two fixed points (constants: their value twice); None if not finite."""
    try:
        syms = sorted(e.free_symbols, key=lambda s: s.name)
        vals = []
        for k in (0, 1) if syms else (0,):
            v = complex(e.evalf(20, subs=_probe_point(syms, k)) if syms else e.evalf(20))
            if not (math.isfinite(v.real) and math.isfinite(v.imag)):
                return None
            vals.append(v)
        return (vals[0], vals[-1])
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError, RecursionError):
        return None


def _exact_elems(c):
    import sympy as sp

    def one(x):
        if x.is_Rational:
            return Fraction(int(x.p), int(x.q))
        if x in (sp.oo, -sp.oo):
            return float(x)
        raise _Bail

    try:
        if isinstance(c, sp.Interval):
            return (one(c.start), one(c.end), bool(c.left_open), bool(c.right_open))
        if isinstance(c, sp.MatrixBase):
            return (c.rows, c.cols, *(one(x) for x in c))
        return tuple(one(x) for x in c.args)
    except _Bail:
        return None


def _symbolic_info(s: str, mini_only: bool = False) -> _Info | None:
    """Parse with the mini-parser, else latex2sympy (unless ``mini_only``: then None); then
    canonicalize. Runs bounded."""
    import sympy as sp
    from sympy.logic.boolalg import BooleanAtom

    if _explosive(s):
        return _str_info(s, refused=True)
    try:
        obj = _Mini(s).parse()
    except _Refuse:
        return _str_info(s, refused=True)
    except (_Bail, TypeError, ValueError, ZeroDivisionError):
        obj = None
    if obj is None and mini_only:
        return None
    if obj is None:
        try:
            obj = _latex_parse(s)
        except Exception:  # noqa: BLE001 - any parser failure means "unparseable"
            return _str_info(s)
    try:
        c = _canon_any(_plain(obj))
    except (_Bail, TypeError, ValueError, AttributeError, RecursionError):
        return _str_info(s)
    if not isinstance(c, sp.Basic) or c.has(sp.zoo, sp.nan) or isinstance(c, BooleanAtom):
        return _str_info(s)
    decimal = bool(re.search(r"\d\.\d|(?<!\d)\.\d", s))
    if isinstance(c, sp.Rational):
        return _num_info(Fraction(int(c.p), int(c.q)), decimal)
    key = "sym:" + sp.srepr(c)
    if isinstance(c, sp.FiniteSet):  # "list": a bare 1, 2 (which may be a decimal comma)
        kind = "set" if s.lstrip().startswith("\\{") else "list"
        return _Info(key, kind, decimal=decimal, elems=_exact_elems(c))
    if isinstance(c, sp.Tuple):
        return _Info(key, "tuple", decimal=decimal, elems=_exact_elems(c))
    if isinstance(c, sp.Interval):
        return _Info(key, "interval", decimal=decimal, elems=_exact_elems(c))
    if isinstance(c, sp.MatrixBase):
        return _Info(key, "matrix", decimal=decimal, elems=_exact_elems(c))
    if isinstance(c, sp.Expr):
        return _Info(key, "expr", decimal=decimal, probe=_probe(c))
    return _Info(key, "other", decimal=decimal)


_MV_PARSED = _LRU(MV_PARSE_CACHE_SIZE)


def _mv_parse(s: str) -> list:
    """math-verify's ``parse``, remembered per worker: a gold answer recurs in many pairs, and
    parsing costs several times what ``verify`` does."""
    parsed = _MV_PARSED.get(s)
    if parsed is None:
        from math_verify import parse

        parsed = tuple(parse(s, parsing_timeout=None))  # sympy objects are immutable
        _MV_PARSED.put(s, parsed)
    return list(parsed)


def _mv_read_math(parsed: list) -> bool:
    """Whether math-verify read some math: a finite sympy object, not just the text back."""
    import sympy as sp

    return any(isinstance(x, sp.Basic) and not x.has(sp.zoo, sp.nan) for x in parsed)


def _mv_verify(golds: list[str], preds: list[str]):
    """math-verify on the first variant of each side, then on the last ones: True, False, or
    ``_UNPARSEABLE`` when, in every variant, it read no math on a side (only the text itself,
    or a division by zero) and so compared nothing. Its signal-based timeouts are off (we
    bound it ourselves)."""
    import math_verify.grader
    import math_verify.parser
    from math_verify import verify

    math_verify.grader.TIMEOUT_WARNING_SHOWN = math_verify.parser.TIMEOUT_WARNING_SHOWN = True

    def mv(g, p):
        parsed_gold, parsed_pred = _mv_parse(g), _mv_parse(p)
        if verify(parsed_gold, parsed_pred, timeout_seconds=None):
            return True  # (the same unread text on both sides is equal too)
        return False if _mv_read_math(parsed_gold) and _mv_read_math(parsed_pred) else None

    first = mv(golds[0], preds[0])
    if first:
        return True
    last = mv(golds[-1], preds[-1]) if (golds[-1], preds[-1]) != (golds[0], preds[0]) else None
    if last:
        return True
    return _UNPARSEABLE if first is None and last is None else False


_DELIMITED_RE = re.compile(r"\$|\\\(|\\\[|\\boxed|\\fbox")
_NUMERIC_RE = re.compile(r"[^\w\\]{0,3}[+-]?\d[\d.,\s]*(?:%|\s*[A-Za-z\u00b2\u00b3\u20ac]{1,12})?[.\s]*")


def _mv_variants(raw: str, how: str) -> list[str]:
    """What math-verify is shown. It finds LaTeX only inside delimiters and reads undelimited
    text as plain numbers ("x < 5" as 5), so a bare answer is wrapped in ``$...$``; a bare
    plain number keeps its raw form as a second try (``1,22`` is a decimal comma there)."""
    if how != "bare" or _DELIMITED_RE.search(raw) or len(raw) > MAX_ANSWER_CHARS:
        return [_for_verify(raw)]
    wrapped = f"${raw.strip()}$"
    return [wrapped, raw] if _NUMERIC_RE.fullmatch(raw.strip()) else [wrapped]


_OPS = {"info": _symbolic_info, "verify": _mv_verify}


# ----------------------------------------------------------------------------- bounded execution
# Workers are forked from a "zygote": a fresh interpreter (started with subprocess, so the
# caller's __main__ is never re-imported and daemonic processes may use it too) that imports
# sympy and math-verify once. Each item runs under a CPU-time budget: the worker stops itself
# (SIGPROF), the caller SIGKILLs one whose CPU time runs on inside C code, and a worker that
# timed out is replaced (~20 ms: its caches may hold half-built state). Workers talk to us over a
# Unix socket and prove themselves with a random token.

_TIMED_OUT = "__timed_out__"  # the item used up its CPU budget (or its worker died)
_REFUSED = "__refused__"  # not attempted: no kill switch for an input that could hang sympy
_UNPARSEABLE = "__unparseable__"  # math-verify found nothing to compare on a side
_WARMUP = [r"(x+1, y^2)", r"\begin{pmatrix}1&x\\3&4\end{pmatrix}", r"x^2+y^2=1", r"1<x\le 3", r"\sin^2 x+f(x)"]


class _CpuBudget:
    """A per-call budget of worker CPU seconds shared by the call's stages. Waiting for a free
    worker or for one to start costs none of it: load makes a call slower, never shorter."""

    def __init__(self, seconds: float):
        self._left = seconds
        self._lock = threading.Lock()

    def left(self) -> float:
        return self._left

    def spend(self, seconds: float) -> None:
        with self._lock:
            self._left -= seconds


def _item_budget(budget: _CpuBudget | None) -> float:
    return TIMEOUT_S if budget is None else min(TIMEOUT_S, budget.left())


_START_TIMEOUT_S = 60.0  # a cold zygote imports sympy + math-verify once
_CHUNK = 128
_POLL_S = 0.05  # how often the caller looks at a busy worker's CPU time
_KILL_GRACE_S = 0.25  # CPU past the budget before the caller kills (the worker stops itself first)
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class _OutOfCpu(BaseException):
    """Raised in a worker by SIGPROF when an item has used its CPU budget. A BaseException, so
    that no library's ``except Exception`` mistakes it for a parse failure."""


_ARMED = False  # SIGPROF raises only while an item runs


def _on_sigprof(signum, frame) -> None:
    if _ARMED:
        raise _OutOfCpu


def _run_item(op: str, args: tuple, budget_s: float):
    """One item under a CPU-time budget, in a worker: its result or ``_TIMED_OUT``."""
    import signal

    global _ARMED
    start = time.process_time()
    try:
        try:
            _ARMED = True
            signal.setitimer(signal.ITIMER_PROF, max(budget_s, 1e-3))
            res = _OPS[op](*args)
        finally:
            _ARMED = False
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _OutOfCpu:
        _ARMED = False
        signal.setitimer(signal.ITIMER_PROF, 0)
        return _TIMED_OUT
    except Exception:  # noqa: BLE001 - one bad item must not kill the batch
        res = None
    # A library that swallowed the signal still overran: the verdict must not depend on that.
    return _TIMED_OUT if time.process_time() - start >= budget_s else res


def _worker_main(conn) -> None:
    import signal

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    signal.signal(signal.SIGPROF, _on_sigprof)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        op, batch, budget_s = msg
        for args in batch:
            res = _run_item(op, args, budget_s)
            conn.send((res, time.process_time()))
            if res == _TIMED_OUT:
                return  # the caller forks a fresh worker for the rest


def _cpu_seconds(pid: int) -> float | None:
    """user + system CPU time of a process, from /proc (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def _zygote_main() -> None:
    import signal
    import socket
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    for s in _WARMUP:  # import the symbolic stack and warm ANTLR's caches before forking
        _symbolic_info(s)
    _mv_verify(["$x^2+y^2=1$"], ["$(1, 2)$"])
    for line in sys.stdin:
        address, token = line.split()
        if os.fork() == 0:
            try:
                os.close(0)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(bytes.fromhex(address))
                conn = Connection(sock.detach())
                conn.send_bytes(token.encode())
                conn.send((os.getpid(), time.process_time()))
                _worker_main(conn)
            finally:
                os._exit(0)


class _Zygote:
    def __init__(self):
        import subprocess

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, *[p for p in sys.path if p]]))
        code = f"import importlib; importlib.import_module({__name__!r})._zygote_main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        self.lock = threading.Lock()

    def spawn(self, address: bytes, token: str) -> None:
        with self.lock:
            self.proc.stdin.write(f"{address.hex()} {token}\n".encode())
            self.proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()


class _Worker:
    def __init__(self, zygote: _Zygote):
        import secrets
        import socket
        from multiprocessing.connection import Connection

        address = b"\0reasonlite-grader-" + secrets.token_hex(8).encode()  # Linux abstract socket
        token = secrets.token_hex(16)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
            srv.bind(address)
            srv.listen(1)
            srv.settimeout(0.2)
            zygote.spawn(address, token)
            start = time.monotonic()
            while True:
                try:
                    sock, _ = srv.accept()
                    break
                except TimeoutError:
                    if zygote.proc.poll() is not None or time.monotonic() - start > _START_TIMEOUT_S:
                        raise RuntimeError("grader worker did not start") from None
        sock.settimeout(None)
        self.conn = Connection(sock.detach())
        if not self.conn.poll(10) or self.conn.recv_bytes() != token.encode():
            self.conn.close()
            raise RuntimeError("grader worker failed its handshake")
        self.pid, self.cpu_s = self.conn.recv()  # cpu_s: its CPU time when it last reported

    def close(self, kill: bool = False) -> None:
        import signal

        try:
            if kill:
                os.kill(self.pid, signal.SIGKILL)
            else:
                self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.conn.close()


class _Pool:
    """Up to ``size`` warm worker processes, lent to one caller at a time."""

    def __init__(self, size: int):
        if __name__ == "__main__" or not sys.platform.startswith("linux"):
            raise RuntimeError("worker processes need Linux and an importable grader module")
        self.zygote = _Zygote()
        self.size = size
        self.sem = threading.BoundedSemaphore(size)
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.pid = os.getpid()
        self.cpu_seconds = 0.0  # worker CPU spent on items, for worker_cpu_seconds()

    def run(self, op: str, items: list[tuple], budget: _CpuBudget | None) -> list:
        results: list = []
        with self.sem:
            with self.lock:
                w = self.idle.pop() if self.idle else None
            try:
                while len(results) < len(items):
                    if _item_budget(budget) <= 0:
                        results += [_TIMED_OUT] * (len(items) - len(results))
                        break
                    if w is None:
                        w = _Worker(self.zygote)
                    # Under a per-call budget, one item at a time: each is sent what is left.
                    chunk = items[len(results): len(results) + (1 if budget is not None else _CHUNK)]
                    w.conn.send((op, chunk, _item_budget(budget)))
                    for _ in chunk:
                        res = self._wait(w, budget)
                        results.append(res)
                        if res == _TIMED_OUT:
                            w.close(kill=True)  # it stops itself after a timeout; be sure
                            w = None
                            break
            finally:
                if w is not None:
                    with self.lock:
                        self.idle.append(w)
        return results

    def _wait(self, w: _Worker, budget: _CpuBudget | None):
        """The worker's next result; ``_TIMED_OUT`` if its CPU time for the item runs past the
        budget (stuck in C code, where the worker's own signal cannot stop it), it dies, or it
        hangs for WALL_SAFETY_S."""
        limit = _item_budget(budget) + _KILL_GRACE_S
        started = time.monotonic()
        while not w.conn.poll(_POLL_S):
            cpu = _cpu_seconds(w.pid)
            if cpu is None or cpu - w.cpu_s > limit or time.monotonic() - started > WALL_SAFETY_S:
                if cpu is not None:
                    self._spent(budget, cpu - w.cpu_s)
                return _TIMED_OUT
        try:
            res, cpu = w.conn.recv()
        except (EOFError, OSError):
            return _TIMED_OUT  # it died on this item (out of memory, ...): a resource ran out
        self._spent(budget, cpu - w.cpu_s)
        w.cpu_s = cpu
        return res

    def _spent(self, budget: _CpuBudget | None, seconds: float) -> None:
        if budget is not None:
            budget.spend(seconds)
        with self.lock:
            self.cpu_seconds += seconds

    def worker_pids(self) -> list[int]:
        with self.lock:
            return [w.pid for w in self.idle]

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for w in idle:
            w.close()
        self.zygote.close()


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()
_INLINE_REASON: str | None = None


def _get_pool() -> _Pool | None:
    global _POOL
    if ISOLATION == "inline" or _INLINE_REASON:
        return None
    if multiprocessing.current_process().daemon:
        return None  # a pool worker already is the unit of parallelism: no processes of our own
    with _POOL_LOCK:
        if _POOL is not None and _POOL.pid == os.getpid() and _POOL.zygote.proc.poll() is not None:
            _POOL.close()  # the zygote died (OOM killer?): start afresh
            _POOL = None
        if _POOL is None or _POOL.pid != os.getpid():  # never reuse a parent's workers after fork
            _POOL = _Pool(MAX_WORKERS)
        return _POOL


def _run_bounded(op: str, args: list[tuple], budget: _CpuBudget | None = None) -> list:
    """``_OPS[op](*a)`` for each ``a``, each within TIMEOUT_S of CPU (and the call's budget)."""
    global _INLINE_REASON
    if not args:
        return []
    try:
        pool = _get_pool()
        if pool is not None:
            n = min(pool.size, len(args) // (PARALLEL_MIN // 2) or 1)
            if n <= 1:
                return pool.run(op, args, budget)
            chunks = [args[i::n] for i in range(n)]  # interleaved: equal work per worker
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix="grader") as ex:
                parts = list(ex.map(lambda c: pool.run(op, c, budget), chunks))
            out = [None] * len(args)
            for i, part in enumerate(parts):
                out[i::n] = part
            return out
    except (OSError, RuntimeError, ValueError) as e:
        _INLINE_REASON = repr(e)
        log.warning("grader: worker processes unavailable (%s); running inline", e)
    out = []
    for a in args:
        limit = _item_budget(budget)
        if limit <= 0:
            out.append(_TIMED_OUT)
        elif op == "verify" and any(_risky(x) for side in a for x in side):
            out.append(_REFUSED)  # inline there is no kill switch: skip what could hang sympy
        else:
            start = time.thread_time()  # this thread's CPU: other threads' work is not ours
            try:
                res = _OPS[op](*a)
            except Exception:  # noqa: BLE001
                res = None
            used = time.thread_time() - start
            if budget is not None:
                budget.spend(used)
            out.append(_TIMED_OUT if used >= limit else res)
    return out


def worker_cpu_seconds() -> float:
    """CPU seconds the current worker processes have spent on items (tests and benchmarks:
    the budget is CPU, so this is what a bound is checked against)."""
    pool = _POOL
    return pool.cpu_seconds if pool is not None and pool.pid == os.getpid() else 0.0


def shutdown() -> None:
    """Stop the zygote and worker processes (they restart on demand)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None and pool.pid == os.getpid():
        pool.close()


atexit.register(shutdown)


# ----------------------------------------------------------------------------- keys

_INFO_CACHE = _LRU(CACHE_SIZE)
_VERDICT_CACHE = _LRU(CACHE_SIZE)


def _prepare(answer: str) -> tuple[str, str]:
    """Answer text -> (cleaned answer, how it was found); a text that commits to no answer
    is taken whole, so every string has a key."""
    ans, how = _extract(answer)
    return (ans, how) if ans is not None else (_clean(answer), how)


def _infos(answers: list, budget: _CpuBudget | None = None, symbolic: str = "full") -> list[_Info | None]:
    """Infos for many answer strings: cache, dedupe, fast path, then bounded symbolic work:
    ``full``, ``mini`` (our parser only) or ``none``; answers left undecided get None."""
    out: dict[str, _Info] = {}
    todo: dict[str, list[str]] = {}  # symbolic input -> answers waiting for it
    for a in dict.fromkeys(a for a in answers if isinstance(a, str)):
        info = _INFO_CACHE.get(a)
        if info is None:
            core, pct = _split_pct(_prepare(a)[0])
            info = _fast_info(core)
            if info is None:
                todo.setdefault(core, []).append(a)
                continue
            if pct:
                info = replace(info, pct=True)
            _INFO_CACHE.put(a, info)
        out[a] = info
    if todo and symbolic != "none":
        cores = list(todo)
        for core, res in zip(cores, _run_bounded("info", [(c, symbolic == "mini") for c in cores], budget), strict=True):
            if res is None and symbolic == "mini":
                continue
            info = res if isinstance(res, _Info) else _str_info(core)
            if res == _TIMED_OUT:
                info = replace(info, kind="timeout", refused=True)
            for a in todo[core]:
                out[a] = replace(info, pct=True) if _split_pct(_prepare(a)[0])[1] else info
                if res != _TIMED_OUT:  # a larger budget may decide it: never remembered
                    _INFO_CACHE.put(a, out[a])
    return [out.get(a) if isinstance(a, str) else None for a in answers]


def canonical_key(answer: str | None) -> str | None:
    """Deterministic key; equivalent answers share it wherever decidable (see module doc)."""
    return canonical_keys([answer])[0]


def canonical_keys(answers: list[str | None]) -> list[str | None]:
    return [i.key if i is not None else None for i in _infos(list(answers))]


def key_kind(key: str | None) -> str | None:
    """'num', 'choice', 'text', 'sym' or 'str' (unparsed)."""
    return key.split(":", 1)[0] if key else None


def is_fallback_key(key: str | None) -> bool:
    """True for the normalized-string fallback keys of answers that could not be parsed."""
    return bool(key) and key.startswith("str:")


is_unparsed_key = is_fallback_key


# ----------------------------------------------------------------------------- equivalence


UNDECIDED_REASONS = ("timeout", "refused", "unparseable")


@dataclass(frozen=True)
class GradeResult:
    """A verdict and how it was reached. ``method``: ``key`` (equal keys, or different letters /
    words), ``numeric`` (exact numbers or decimal tolerance), ``structure`` (sets, tuples,
    intervals of different numbers), ``probe`` (expressions that differ at a point),
    ``math_verify``, ``missing`` (a side is None: not equal), or for an undecided pair its
    reason. ``undecided``: None, or why no verdict was reached (``UNDECIDED_REASONS``); then
    ``equal`` is False and ``verdict`` None. Keys are None where the verdict did not need them."""

    equal: bool
    gold_key: str | None
    pred_key: str | None
    method: str
    undecided: str | None = None

    @property
    def verdict(self) -> bool | None:
        """True (equal), False (not equal) or None (undecided)."""
        return None if self.undecided else self.equal

    @property
    def outcome(self) -> str:
        """``equal``, ``not_equal`` or the undecided reason (what the SQL stores)."""
        return self.undecided or ("equal" if self.equal else "not_equal")

    @property
    def unparsed(self) -> bool:
        return self.pred_key is None or is_fallback_key(self.pred_key)


def _round_places(v: Fraction, places: int) -> Fraction:
    q = abs(v) * 10 ** places
    r = Fraction(math.floor(q + Fraction(1, 2)), 10 ** places)
    return -r if v < 0 else r


def _dec_places(v: Fraction) -> int | None:
    """Places of v as a terminating decimal (None beyond 12)."""
    return next((k for k in range(13) if 10 ** k % v.denominator == 0), None)


def _close(x, y, y_rounded: bool) -> bool:
    """x == y up to 6 decimal places (math-verify's rule), or y is x rounded as written."""
    if not (isinstance(x, Fraction) and isinstance(y, Fraction)):
        return x == y  # infinities, interval flags, matrix shape
    if _round_places(x, FLOAT_PLACES) == _round_places(y, FLOAT_PLACES):
        return True
    k = _dec_places(y) if y_rounded else None
    return k is not None and k >= 2 and _round_places(x, k) == y  # 0.33 for 1/3


def _constant_value(i: _Info) -> Fraction | None:
    """The value of a real constant expression (sqrt(2), pi/4) from its probe."""
    if i.kind == "expr" and i.probe and i.probe[0] == i.probe[1] and abs(i.probe[0].imag) < 1e-12:
        return Fraction(i.probe[0].real)
    return None


def _family(i: _Info) -> str:
    return "set" if i.kind == "list" else i.kind


def _approx_same(g: _Info, p: _Info) -> bool:
    """Numerically the same when a decimal is involved: scalars, and element-wise for
    sets, tuples, intervals and matrices of numbers."""
    for x, y in ((g, p), (p, g)):  # a decimal for a constant: 1.41 for sqrt(2), 3.14159 for pi
        if x.kind == "num" and x.decimal and (v := _constant_value(y)) is not None:
            return _close(v, x.value, True)
    if not (g.decimal or p.decimal) or _family(g) != _family(p) or not g.elems or not p.elems:
        return False
    if len(g.elems) != len(p.elems):
        return False
    p_rounded, g_rounded = p.decimal and not g.decimal, g.decimal and not p.decimal
    return all(_close(a, b, p_rounded) or _close(b, a, g_rounded) for a, b in zip(g.elems, p.elems, strict=True))


def _decide(g: _Info | None, p: _Info | None, confident: bool) -> tuple[bool | None, str]:
    """Verdict from infos alone, or None when math-verify must decide. Positive verdicts are
    OR-ed improvements; negative ones only where the answer is decidable and both answers were
    extracted unambiguously (a box or a bare answer)."""
    if g is None or p is None or g.key is None or p.key is None:
        return None, ""
    if g.key == p.key:
        return True, "key"
    if g.pct or p.pct or g.refused or p.refused:
        return None, ""  # percent readings and refused inputs: math-verify's rules decide
    if _approx_same(g, p):
        return True, "numeric"
    if not confident:
        return None, ""
    kinds = {g.kind, p.kind}
    if kinds == {"num"}:
        if g.decimal or p.decimal:  # near-misses at the rounding edge go to math-verify
            return (False, "numeric") if abs(g.value - p.value) >= Fraction(2, 10 ** FLOAT_PLACES) else (None, "")
        return False, "numeric"
    if kinds == {"choice"} or kinds == {"text"}:
        return False, "key"
    if _opaque_text(g, p) or _opaque_text(p, g):
        return False, "key"
    for x, y in ((g, p), (p, g)):  # a number is not a set, tuple or interval of several numbers
        if x.kind == "num" and y.kind in ("set", "tuple", "interval") and y.elems and len(y.elems) >= 2:
            return False, "structure"
    if kinds <= {"num", "expr"} and g.probe and p.probe and not (g.decimal or p.decimal):
        scale = max(1.0, *(abs(v) for v in g.probe + p.probe))
        if any(abs(x - y) > 1e-6 * scale for x, y in zip(g.probe, p.probe, strict=True)):
            return False, "probe"  # differ at a point: not identically equal
        return None, ""
    if _family(g) == _family(p) and g.elems and p.elems and not (g.decimal or p.decimal) and g.elems != p.elems:
        return False, "structure"
    return None, ""


_CONFIDENT = ("boxed", "final", "bare")
_WORDS_WITH_DIGIT_RE = re.compile(r"(?=.*[a-z])(?=.*\d)[a-z\d' -]+")
_PARSED_KINDS = ("num", "choice", "expr", "set", "list", "tuple", "interval", "matrix")
_MV_REWRITTEN_WORDS = ("sqrt", "inf", "pct", "percent", "frac", "log")  # math-verify turns these into math


def _opaque_text(t: _Info, other: _Info) -> bool:
    """Text that math-verify can only read as one Symbol named by its characters ("see step 3"
    -> ``seestep3``), against an answer that cannot be that Symbol: a number (whose string has
    no letters) when the text has a letter; anything we parsed when the text mixes letters and
    digits (LaTeX names no variable so). Letters-only text stays with math-verify: ``\\text{ab}``
    equals ``ab``, and ``\\text{pi}`` prints as sympy's pi."""
    if t.kind != "text" or other.kind not in _PARSED_KINDS:
        return False
    words = t.key.split(":", 1)[1]
    if any(w in words for w in _MV_REWRITTEN_WORDS):
        return False
    if other.kind == "num":
        return any("a" <= c <= "z" for c in words)
    return bool(_WORDS_WITH_DIGIT_RE.fullmatch(words))


def _for_verify(raw: str) -> str:
    return raw if len(raw) <= MAX_VERIFY_CHARS else raw[-MAX_VERIFY_CHARS:]


def grade_many(pairs: list[tuple[str | None, str | None]]) -> list[GradeResult]:
    """Batch grading: dedupes pairs, caches verdicts, fans symbolic work out to workers. Each
    item (a key, a math-verify call) gets TIMEOUT_S of worker CPU."""
    return _grade_many(list(pairs), None)


def _timed_out(*infos: _Info | None) -> bool:
    return any(i is not None and i.kind == "timeout" for i in infos)


def _grade_many(pairs: list, budget: _CpuBudget | None, latency: bool = False) -> list[GradeResult]:
    """Batch order: keys for every distinct answer, decide what is decidable, math-verify the
    rest. Latency order (one pair): keys from our own parser only (milliseconds), math-verify,
    and only if it says no the full symbolic keys (whose positive verdicts are OR-ed in).
    A "not equal" needs every stage to have finished: where one ran out of budget, or could
    not be run, the pair is undecided instead."""
    prepared = {r: _prepare(r) for r in dict.fromkeys(x for pair in pairs for x in pair if isinstance(x, str))}
    uniq = list(dict.fromkeys(a for a, _ in prepared.values()))
    infos = dict(zip(uniq, _infos(uniq, budget, "mini" if latency else "full"), strict=True))

    def pair_infos(pair):
        return infos.get(prepared[pair[0]][0]), infos.get(prepared[pair[1]][0])

    def result(pair, verdict, how, mv=None):
        gi, pi = pair_infos(pair)
        keys = (gi.key if gi else None, pi.key if pi else None)
        if verdict:
            return GradeResult(True, *keys, how)
        undecided = (
            "timeout" if mv == _TIMED_OUT or _timed_out(gi, pi)
            else "refused" if how == "refused" or mv == _REFUSED
            else "unparseable" if mv is None and how == "math_verify" or mv == _UNPARSEABLE
            else None
        )
        return GradeResult(False, *keys, undecided or how, undecided)

    verdicts: dict[tuple, GradeResult] = {}
    pending: list[tuple] = []
    for pair in dict.fromkeys(pairs):
        g, p = pair
        if not (isinstance(g, str) and isinstance(p, str)):
            verdicts[pair] = GradeResult(False, None, None, "missing")
            continue
        cached = _VERDICT_CACHE.get(pair) if len(g) + len(p) < 4000 else None
        if cached is not None:
            verdicts[pair] = cached
            continue
        (ga, ghow), (pa, phow) = prepared[g], prepared[p]
        verdict, how = _decide(infos.get(ga), infos.get(pa), ghow in _CONFIDENT and phow in _CONFIDENT)
        if verdict is not None:
            verdicts[pair] = result(pair, verdict, how)
        elif (ghow != "none" and _explosive(ga)) or (phow != "none" and _explosive(pa)):
            verdicts[pair] = result(pair, False, "refused")  # would only burn the budget
        else:
            pending.append(pair)
    late = {}  # latency order: math-verify said no, our symbolic keys may still say yes
    mv = _run_bounded("verify", [tuple(_mv_variants(x, prepared[x][1]) for x in pair) for pair in pending], budget)
    for pair, res in zip(pending, mv, strict=True):
        if latency and res is not True and res not in (_TIMED_OUT, _REFUSED):
            late[pair] = res
        else:
            verdicts[pair] = result(pair, res is True, "math_verify", res)
    if late:
        need = [a for a in dict.fromkeys(prepared[x][0] for pair in late for x in pair) if infos.get(a) is None]
        infos.update(zip(need, _infos(need, budget), strict=True))
        for pair, res in late.items():
            verdict, how = _decide(*pair_infos(pair), False)
            verdicts[pair] = result(pair, verdict, how) if verdict else result(pair, False, "math_verify", res)
    for pair, r in verdicts.items():
        if r.undecided != "timeout" and r.method != "missing" and len(pair[0] or "") + len(pair[1] or "") < 4000:
            _VERDICT_CACHE.put(pair, r)
    return [verdicts[pair] for pair in pairs]


def grade(gold: str | None, pred: str | None) -> GradeResult:
    """One pair, within TIMEOUT_S of worker CPU for all its stages together."""
    return _grade_many([(gold, pred)], _CpuBudget(TIMEOUT_S), latency=True)[0]


def answers_equal(gold: str | None, pred: str | None) -> bool:
    """Is ``pred`` a correct answer for ``gold``? (keys equal OR math-verify, see module doc).
    False when undecided (a time-out, a refused or an unreadable side): ``grade`` says which."""
    return grade(gold, pred).equal


def answers_equal_many(pairs: list[tuple[str | None, str | None]]) -> list[bool]:
    """Bools, as ``answers_equal``; ``grade_many`` tells undecided pairs apart."""
    return [r.equal for r in grade_many(pairs)]


def _clear_caches() -> None:
    """For tests and benchmarks: forget cached keys and verdicts."""
    _INFO_CACHE.clear()
    _VERDICT_CACHE.clear()
    _MV_PARSED.clear()
