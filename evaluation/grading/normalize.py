"""Cleaning answer text: what an answer means stays, decoration goes (``$``, ``\\left``, units,
``^\\circ``, trailing punctuation); brace and separator helpers; the assignment split (``x = 3``
-> the value ``3`` and the name ``x``, which keys keep) and the percent split. Shared by
extraction and keys; idempotent."""

from __future__ import annotations

import re

from . import settings

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


_UNITS = (
    r"(?:square\s+|sq\.?\s+|cubic\s+)?(?:units?|cm|mm|km|m|in|inches|inch|ft|feet|foot|yards?|yd|"
    r"miles?|mi|meters?|metres?|centimeters?|kilometers?|kg|g|grams?|kilograms?|lbs?|pounds?|oz|"
    r"ounces?|seconds?|sec|s|minutes?|min|hours?|hrs?|h|days?|weeks?|months?|years?|dollars?|"
    r"cents?|degrees?|deg|radians?|rad|mph|km/h|liters?|litres?|l|ml|gallons?|yuan|euros?|"
    r"people|persons?|students?|ways?|times|apples?|cookies?|marbles?|balls?|coins?)"
)
_UNIT_TAIL_RE = re.compile(
    # (\mathrm{e} and \text{i} after a number are the constants e and i, not units)
    r"(?<=[\d}).])(?:\s*\\(?:text|mbox|textnormal|mathrm|textbf|rm)\s*\{\s*(?![eEi]\s*\})[A-Za-z][A-Za-z\s./]*\}"
    r"|\s+" + _UNITS + r"\b)(?:\s*\^\s*\{?\s*[23]\s*\}?|[²³])?\s*$",
    re.IGNORECASE,
)
# A name being assigned: a letter or word (\alpha, x_1, f(x), |AB|), never a function of the
# answer itself (\sin(x) = 1/2 is an equation in x, not "1/2").
_FUNCTION_NAMES = r"(?:arc)?(?:sin|cos|tan|cot|sec|csc)h?|log|ln|lg|exp|det|max|min|gcd|lcm|lim|sqrt|frac"
_ASSIGN_LHS = (
    r"(?:(?!\\?(?:" + _FUNCTION_NAMES + r")\b)\\?[A-Za-z]+|\|[A-Za-z]+\|)(?:_(?:\{[A-Za-z0-9]+\}|[A-Za-z0-9]))?(?:\([A-Za-z,\s]*\))?'*"
    r"|\(\s*[A-Za-z](?:_(?:\{\w+\}|\w))?(?:\s*,\s*[A-Za-z](?:_(?:\{\w+\}|\w))?)+\s*\)"
)
_ASSIGN_RE = re.compile(r"^\s*(" + _ASSIGN_LHS + r")\s*=(?![=<>])\s*(.+)$", re.DOTALL)
# A worked computation with numbers only (3 \times 8 = 24, 1/2 + 1/4 = 3/4): its answer is the last side.
_COMPUTATION_RE = re.compile(r"(?:[\d\s+\-*/^().{}]|\\(?:times|cdot|div|frac|dfrac|tfrac|left|right|,))+")
_AND_RE = re.compile(
    r"\s*(?:,\s*)?(?:\\(?:text|textbf|mathrm|mbox)\s*\{\s*(?:and|or)\s*\}|\s(?:and|or)\s)\s*",
    re.IGNORECASE,
)
_WRAP_RE = re.compile(r"^\\(?:text|textbf|textnormal|mathrm|mbox|mathbf|textit|emph)\s*\{([^{}]*)\}$")
_CLEAN_SUBS = [
    # \mathrm{e}, \text{i}: the constants, written upright (never a unit to strip, here or in latex2sympy)
    (re.compile(r"\\(?:mathrm|text|textrm|rm|operatorname)\s*\{\s*([ei])\s*\}"), r"\1"),
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
        from .extract import _last_boxes  # (extract uses cleaning too)

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
    return " ".join(s.split())


_NAME_TUPLE_RE = re.compile(r"\(\s*(.+?)\s*\)")


def _split_assignment(s: str) -> tuple[str, tuple[str, ...]]:
    """(value, names assigned): ``x = 3`` -> (``3``, (x,)); ``x = 1 + 2 = 3`` -> (``3``, (x,));
    ``b = 2, a = 1`` and ``(a, b) = (1, 2)`` -> (``(1, 2)``, (a, b)), values in name order;
    ``p = -1, p = 2`` -> (``-1, 2``, (p,)); a computation in numbers only, ``3 \\times 8 = 24``, states its
    last side (``24``, no names). Anything else, an equation such as ``x = 2x + 1``
    included, is its own value with no names. The names stay part of what the answer says:
    ``y = 2`` is not ``x = 2``."""
    if "=" not in s:
        return s, ()
    sides = _split_top(s, "=")
    if len(sides) > 1 and all(re.search(r"\d", side) and _COMPUTATION_RE.fullmatch(side.strip()) for side in sides):
        return sides[-1].strip(), ()
    pairs = []
    for p in _split_top(s, ",;"):
        m = _ASSIGN_RE.match(p)
        if not m or any(c in m.group(2) for c in "<>") or "\\le" in m.group(2) or "\\ge" in m.group(2):
            return s, ()
        name, value = m.group(1).replace(" ", ""), _split_top(m.group(2), "=")[-1].strip()
        if re.fullmatch(r"[A-Za-z]", name) and re.search(r"(?<![A-Za-z\\])" + name + r"(?![A-Za-z])", value):
            return s, ()  # x = 2x + 1: an equation in x, not a value for it
        pairs.append((name, value))
    if len(pairs) == 1:
        name, value = pairs[0]
        tuple_names = _NAME_TUPLE_RE.fullmatch(name)
        if not tuple_names:
            return value, (name,)
        names = tuple(tuple_names.group(1).split(","))  # (a, b) = (1, 2): one value per name
        values = _split_top(value[1:-1]) if value[:1] == "(" and value[-1:] == ")" else []
        if len(values) != len(names) or len(set(names)) != len(names):
            return value, names
        pairs = list(zip(names, (v.strip() for v in values), strict=True))
    names = tuple(sorted({n for n, _ in pairs}))
    if len(names) == 1:  # p = -1, p = 15/8: a set of values
        return ", ".join(v for _, v in pairs), names
    if len(names) == len(pairs):  # distinct unknowns: a tuple in name order
        return "(" + ", ".join(v for _, v in sorted(pairs)) + ")", names
    return s, ()


def _clean(s: str) -> str:
    """Surface normalization shared by extraction and keys; idempotent."""
    s = s.strip()
    if len(s) > 5 * settings.MAX_ANSWER_CHARS:
        return " ".join(s.split())  # too long to be an answer: no regex work
    for _ in range(4):
        t = _clean_once(s)
        if t == s:
            break
        s = t
    return s


_PCT_RE = re.compile(r"^(.*?)\s*(?:%|percent(?:age)?|pct)$", re.IGNORECASE | re.DOTALL)


def _split_pct(s: str) -> tuple[str, bool]:
    m = _PCT_RE.match(s)
    return (m.group(1).strip(), True) if m and m.group(1).strip() else (s, False)
