"""Canonical keys: what grading knows about one answer string (``_Info``: key, kind, exact value,
probe values, elements), the sympy-free fast paths (numbers, surds, pi, sets / tuples / intervals of
numbers) whose keys equal sympy's, the symbolic path through the sandbox, and the key cache."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, replace
from fractions import Fraction

from . import sandbox, settings
from .common import _LRU, _TIMED_OUT, _Refuse
from .extract import _extract
from .normalize import _WRAP_RE, _clean, _split_assignment, _split_pct

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
    names: tuple[str, ...] = ()  # the names a value was assigned to (x = 3): part of the key


_NONE_INFO = _Info(None, "none")
_NUM_RE = re.compile(r"([+-])?\s*([1-9]\d{0,2}(?:,\d{3})+|[1-9]\d{0,2}(?: \d{3})+|\d+)?(?:\.(\d+))?")
_SLASH_RE = re.compile(r"([+-])?\s*\(?\s*(\d+)\s*\)?\s*/\s*\(?\s*(\d+)\s*\)?")
_FRAC_RE = re.compile(
    r"([+-])?\s*(\d+\s*)?\\frac\s*(?:\{\s*([+-]?)\s*(\d+)\s*\}|(\d))\s*(?:\{\s*([+-]?)\s*(\d+)\s*\}|(\d))"
)
_SCI_RE = re.compile(
    r"([+-]?\s*\d+(?:\.\d+)?)\s*(?:(?:\\times|\\cdot|\*|×)\s*10\s*\^\s*\{?\s*([+-]?\d{1,7})\s*\}?|[eE]([+-]?\d{1,7}))"
)
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
    if len(s) > settings.MAX_ANSWER_CHARS:
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


def _str_info(s: str, refused: bool = False) -> _Info:
    if len(s) > settings.MAX_ANSWER_CHARS:
        return _Info("str:#" + hashlib.sha256(s.encode("utf-8", "replace")).hexdigest(), "str", refused=True)
    return _Info("str:" + s.replace(" ", ""), "str", refused=refused)


_INFO_CACHE = _LRU(settings.CACHE_SIZE)


def _prepare(answer: str) -> tuple[str, str]:
    """Answer text -> (cleaned answer, how it was found); a text that commits to no answer
    is taken whole, so every string has a key."""
    ans, how = _extract(answer)
    return (ans, how) if ans is not None else (_clean(answer), how)


_NAMES_MARK = " @"  # neither a cleaned answer (no spaces in str: keys) nor a srepr holds it


def _key_parts(answer: str) -> tuple[str, bool, tuple[str, ...]]:
    """Prepared answer -> (what is keyed, percent?, names assigned): ``x = 50\\%`` -> (50, True, (x,))."""
    value, names = _split_assignment(answer)
    core, pct = _split_pct(_clean(value) if names else value)
    return core, pct, names


def _qualified(info: _Info, pct: bool, names: tuple[str, ...]) -> _Info:
    """The key of the value, then ``%`` for a percentage and `` @x`` for the names it was assigned
    to: neither is dropped, so ``\\frac12\\%`` is not 0.5 and ``y = 2`` is not ``x = 2`` (the decision
    rules relate them to bare values)."""
    if info.key is None or not (pct or names):
        return info
    key = info.key + ("%" if pct else "") + (_NAMES_MARK + ",".join(names) if names else "")
    return replace(info, key=key, pct=pct, names=names)


def _without_names(info: _Info) -> _Info:
    """The value that was assigned (``x = 2`` -> ``2``; a percent sign stays)."""
    return replace(info, key=info.key[: info.key.rindex(_NAMES_MARK)], names=()) if info.names else info


def _without_percent(info: _Info) -> _Info:
    """The number of a percentage, without its sign (an answer without names)."""
    return replace(info, key=info.key[:-1], pct=False) if info.pct and not info.names else info


def _infos(answers: list, budget: sandbox._CpuBudget | None = None, symbolic: str = "full") -> list[_Info | None]:
    """Infos for many answer strings: cache, dedupe, fast path, then bounded symbolic work:
    ``full``, ``mini`` (our parser only) or ``none``; answers left undecided get None."""
    out: dict[str, _Info] = {}
    todo: dict[str, list[str]] = {}  # symbolic input -> answers waiting for it
    for a in dict.fromkeys(a for a in answers if isinstance(a, str)):
        info = _INFO_CACHE.get(a)
        if info is None:
            core, pct, names = _key_parts(_prepare(a)[0])
            info = _fast_info(core)
            if info is None:
                todo.setdefault(core, []).append(a)
                continue
            info = _qualified(info, pct, names)
            _INFO_CACHE.put(a, info)
        out[a] = info
    if todo and symbolic != "none":
        cores = list(todo)
        for core, res in zip(cores, sandbox._run_bounded("info", [(c, symbolic == "mini") for c in cores], budget), strict=True):
            if res is None and symbolic == "mini":
                continue
            info = res if isinstance(res, _Info) else _str_info(core)
            if res == _TIMED_OUT:
                info = replace(info, kind="timeout", refused=True)
            for a in todo[core]:
                out[a] = _qualified(info, *_key_parts(_prepare(a)[0])[1:])
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
