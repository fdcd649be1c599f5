"""The decision rules: equal keys, numeric tolerance, structural and probe-point disagreements,
text math-verify can only read as a Symbol, then math-verify; three outcomes (equal, not equal,
undecided with a reason); the verdict cache and the public verdict API."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from . import settings
from .common import _LRU, _REFUSED, _TIMED_OUT, _UNPARSEABLE
from .keys import _Info, _infos, _num_info, _prepare, _without_names, _without_percent, is_fallback_key
from .mathverify import _DELIMITED_RE, _mv_variants
from .parse import _explosive
from .sandbox import _CpuBudget, _run_bounded

_VERDICT_CACHE = _LRU(settings.CACHE_SIZE)


UNDECIDED_REASONS = ("timeout", "refused", "unparseable")


@dataclass(frozen=True)
class GradeResult:
    """A verdict and how it was reached. ``method``: ``key`` (equal keys, or different letters /
    words), ``numeric`` (exact numbers or decimal tolerance), ``structure`` (sets, tuples,
    intervals of different numbers, a set against a tuple, two different equations), ``probe``
    (expressions that differ at a point), ``math_verify``, ``no_answer`` (the prediction commits
    to no answer: not equal), ``missing`` (a side is None: not equal), or for an undecided pair its
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


_RELATIVE = Fraction(1, 10_000)  # numbers that round alike must also agree to 4 significant digits


def _close(x, y, y_rounded: bool) -> bool:
    """x == y up to 6 decimal places (math-verify's rule), or -- only under
    settings.ROUNDED_DECIMALS_MATCH_EXACT -- y is x rounded as written."""
    if not (isinstance(x, Fraction) and isinstance(y, Fraction)):
        return x == y  # infinities, interval flags, matrix shape
    if _round_places(x, settings.FLOAT_PLACES) == _round_places(y, settings.FLOAT_PLACES) and (
            abs(x - y) <= _RELATIVE * max(abs(x), abs(y))):
        return True  # (relative too: 6.67e-11 is not 6.68e-11, nor 0, though all round to 0)
    k = _dec_places(y) if y_rounded and settings.ROUNDED_DECIMALS_MATCH_EXACT else None
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
    if g.names or p.names:
        if g.names and p.names and g.names != p.names:  # y = 2 is not x = 2
            return (False, "structure") if confident else (None, "")
        return _decide(_without_names(g), _without_names(p), confident)  # x = 2 for 2: its value
    if g.refused or p.refused:
        return None, ""  # refused inputs: math-verify's rules decide
    if g.pct or p.pct:
        return _decide_percent(g, p, confident)
    if _approx_same(g, p):
        return True, "numeric"
    if not confident:
        return None, ""
    kinds = {g.kind, p.kind}
    if kinds == {"num"}:
        return False, "numeric"  # two exact values that our tolerance rule keeps apart
    for x, y in ((g, p), (p, g)):  # a decimal for a constant that our tolerance rule keeps apart
        if x.kind == "num" and x.decimal and _constant_value(y) is not None:
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
    if g.elems and p.elems and _different_collections(g, p):
        return False, "structure"
    if g.key.startswith("sym:Equality(") and p.key.startswith("sym:Equality("):
        return False, "structure"  # one equation each, different even after scaling: not the same
    return None, ""


def _decide_percent(g: _Info, p: _Info, confident: bool) -> tuple[bool | None, str]:
    """Percentages. Two of them compare as their numbers. ``p%`` against a bare number n is equal
    when n is p/100 (the fraction of one, math-verify's reading: 0.5 for 50%) or when n is p itself
    (the percentage stated without its sign, the benchmarks' habit: 50 for 50%) -- but not when
    n is a proper fraction (0 < |n| < 1), which reads as a fraction of one: 1/2 is 50%, never 1/2%.
    Other kinds (an expression with a percent sign) are left to math-verify."""
    if g.pct and p.pct:
        return _decide(_without_percent(g), _without_percent(p), confident)
    pct, bare = (g, p) if g.pct else (p, g)
    if pct.kind != "num" or bare.kind != "num":
        return None, ""
    readings = [_num_info(pct.value / 100, pct.decimal)]
    if not 0 < abs(bare.value) < 1:
        readings.append(_num_info(pct.value, pct.decimal))
    if any(r.key == bare.key or _approx_same(r, bare) for r in readings):
        return True, "numeric"
    return (False, "numeric") if confident else (None, "")


def _different_collections(g: _Info, p: _Info) -> bool:
    """A set against a tuple or interval (``\\{1,2\\}`` vs ``(1,2)``), or a tuple against an
    interval whose endpoints are not its elements in order (``(2,1)`` vs ``(1,2)``). A bare list
    (``1, 2``) may be either, so it is left to math-verify."""
    families = {_family(g), _family(p)}
    if families in ({"set", "tuple"}, {"set", "interval"}):
        return "list" not in (g.kind, p.kind)
    if families == {"tuple", "interval"}:
        t, i = (g, p) if g.kind == "tuple" else (p, g)
        return tuple(t.elems) != tuple(i.elems[:2])
    return False


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


def grade_many(pairs: list[tuple[str | None, str | None]]) -> list[GradeResult]:
    """Batch grading: dedupes pairs, caches verdicts, fans symbolic work out to workers. Each
    item (a key, a math-verify call) gets settings.TIMEOUT_S of worker CPU."""
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
        cached = _VERDICT_CACHE.get(_cache_key(pair)) if len(g) + len(p) < 4000 else None
        if cached is not None:
            verdicts[pair] = cached
            continue
        (ga, ghow), (pa, phow) = prepared[g], prepared[p]
        verdict, how = _decide(infos.get(ga), infos.get(pa), ghow in _CONFIDENT and phow in _CONFIDENT)
        if verdict is not None:
            verdicts[pair] = result(pair, verdict, how)
        elif (ghow != "none" and _explosive(ga)) or (phow != "none" and _explosive(pa)):
            verdicts[pair] = result(pair, False, "refused")  # would only burn the budget
        # Prose with no answer and no math in it: math-verify would pick any number out of it
        # ("we tried 2 but it fails" is not an answer 2), so it is not asked.
        elif phow == "none" and not _DELIMITED_RE.search(p):
            verdicts[pair] = result(pair, False, "no_answer")  # a solution that commits to no answer
        elif ghow == "none" and not _DELIMITED_RE.search(g):
            verdicts[pair] = result(pair, False, "math_verify", _UNPARSEABLE)  # a label that is no answer
        else:
            pending.append(pair)
    # Latency order: math-verify's verdict waits for our full symbolic keys where it said no (they
    # may say yes) and where it said yes on answers our quick parser could not read (they may show
    # a difference, which overrules it, as in the batch order).
    late = {}
    mv = _run_bounded("verify", [tuple(_mv_variants(x, prepared[x][1]) for x in pair) for pair in pending], budget)
    for pair, res in zip(pending, mv, strict=True):
        unread = any(i is None for i in pair_infos(pair))
        if latency and res not in (_TIMED_OUT, _REFUSED) and (res is not True or unread):
            late[pair] = res
        else:
            verdicts[pair] = result(pair, res is True, "math_verify", res)
    if late:
        need = [a for a in dict.fromkeys(prepared[x][0] for pair in late for x in pair) if infos.get(a) is None]
        infos.update(zip(need, _infos(need, budget), strict=True))
        for pair, res in late.items():
            confident = prepared[pair[0]][1] in _CONFIDENT and prepared[pair[1]][1] in _CONFIDENT
            verdict, how = _decide(*pair_infos(pair), confident and res is True)
            if res is True:
                verdicts[pair] = result(pair, False, how) if verdict is False else result(pair, True, "math_verify")
            else:
                verdicts[pair] = result(pair, verdict, how) if verdict else result(pair, False, "math_verify", res)
    for pair, r in verdicts.items():
        if r.undecided != "timeout" and r.method != "missing" and len(pair[0] or "") + len(pair[1] or "") < 4000:
            _VERDICT_CACHE.put(_cache_key(pair), r)
    return [verdicts[pair] for pair in pairs]


def _cache_key(pair: tuple) -> tuple:
    return (*pair, settings.ROUNDED_DECIMALS_MATCH_EXACT)  # the one setting a verdict depends on


def grade(gold: str | None, pred: str | None) -> GradeResult:
    """One pair, within settings.TIMEOUT_S of worker CPU for all its stages together."""
    return _grade_many([(gold, pred)], _CpuBudget(settings.TIMEOUT_S), latency=True)[0]


def answers_equal(gold: str | None, pred: str | None) -> bool:
    """Is ``pred`` a correct answer for ``gold``? (keys equal OR math-verify, see module doc).
    False when undecided (a time-out, a refused or an unreadable side): ``grade`` says which."""
    return grade(gold, pred).equal


def answers_equal_many(pairs: list[tuple[str | None, str | None]]) -> list[bool]:
    """Bools, as ``answers_equal``; ``grade_many`` tells undecided pairs apart."""
    return [r.equal for r in grade_many(pairs)]
