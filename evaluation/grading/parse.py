"""The symbolic side, run inside a sandboxed worker: what may not reach sympy (exponent towers,
huge factorials, deep nesting), our recursive-descent LaTeX mini-parser, latex2sympy as the
fallback, canonical forms of expressions, relations, sets, tuples, intervals and matrices, probe
values, and the ``_Info`` of a parsed answer. Nothing is ever evaluated as Python."""

from __future__ import annotations

import math
import re
import zlib
from fractions import Fraction

from . import settings
from .common import _Bail, _Refuse
from .keys import _Info, _num_info, _str_info
from .normalize import _brace_depth

_NESTED_POW_RE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*[\w.]+\s*\^|\^\s*\([^()]*\^")
_BIG_EXP_RE = re.compile(r"\^\s*\{?\s*[+-]?\s*\d{5,}")
_BIG_FACT_RE = re.compile(r"\d{4,}\s*!|[)}\]]\s*!")


def _explosive(s: str) -> bool:
    """Answers whose evaluation could take unbounded time or memory (checked before sympy)."""
    return len(s) > settings.MAX_ANSWER_CHARS or s.count("(") > 200 or _risky(s)


def _risky(s: str) -> bool:
    """Exponent towers, huge exponents or factorials, deep nesting anywhere in the text."""
    if _brace_depth(s) > settings.MAX_BRACE_DEPTH or _NESTED_POW_RE.search(s) or _BIG_EXP_RE.search(s):
        return True
    m = _BIG_FACT_RE.search(s)
    return bool(m) and not re.search(r"(?<!\\)\b[a-zA-Z]\b", re.sub(r"\\[A-Za-z]+", " ", s))


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
                if abs(b) not in (0, 1) and abs(ex) * math.log10(max(abs(b.p), b.q)) > settings.MAX_RESULT_DIGITS:
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
