"""math-verify glue: what it is shown (a bare answer wrapped in ``$...$``), its parses remembered
per worker, and its verdict with three outcomes (equal, not equal, nothing read as math)."""

from __future__ import annotations

import re

from . import settings
from .common import _LRU, _UNPARSEABLE

_MV_PARSED = _LRU(settings.MV_PARSE_CACHE_SIZE)


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


def _mv_verify_response(gold: str, response: str):
    """Upstream's last scoring step: math-verify over the whole response, as upstream calls it
    (``verify(parse(gold), parse(response))``, upstream.py). True, False, or ``_UNPARSEABLE`` when it
    read no math in the response. The gold parse is remembered; a response is parsed once."""
    import math_verify.grader
    import math_verify.parser
    from math_verify import parse, verify

    math_verify.grader.TIMEOUT_WARNING_SHOWN = math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    parsed = parse(response, parsing_timeout=None)
    if verify(_mv_parse(gold), parsed, timeout_seconds=None):
        return True
    return False if _mv_read_math(parsed) else _UNPARSEABLE


_DELIMITED_RE = re.compile(r"\$|\\\(|\\\[|\\boxed|\\fbox")
_NUMERIC_RE = re.compile(r"[^\w\\]{0,3}[+-]?\d[\d.,\s]*(?:%|\s*[A-Za-z\u00b2\u00b3\u20ac]{1,12})?[.\s]*")


def _mv_variants(raw: str, how: str) -> list[str]:
    """What math-verify is shown. It finds LaTeX only inside delimiters and reads undelimited
    text as plain numbers ("x < 5" as 5), so a bare answer is wrapped in ``$...$``; a bare
    plain number keeps its raw form as a second try (``1,22`` is a decimal comma there)."""
    if how != "bare" or _DELIMITED_RE.search(raw) or len(raw) > settings.MAX_ANSWER_CHARS:
        return [_for_verify(raw)]
    wrapped = f"${raw.strip()}$"
    return [wrapped, raw] if _NUMERIC_RE.fullmatch(raw.strip()) else [wrapped]


def _for_verify(raw: str) -> str:
    return raw if len(raw) <= settings.MAX_VERIFY_CHARS else raw[-settings.MAX_VERIFY_CHARS:]
