"""Math answer grading: answer extraction, canonical keys and equivalence.

The parts, one module each: ``extract`` (the answer a solution commits to), ``normalize``
(cleaning answer text), ``keys`` (what an answer is, its canonical key, the sympy-free fast
paths), ``parse`` (the symbolic side: mini-parser, latex2sympy, canonical forms, refusals),
``mathverify`` (math-verify glue), ``decide`` (the decision rules and the verdict API),
``sandbox`` (worker processes under a CPU budget), ``settings`` (the knobs), ``common``
(shared helpers). Names with a leading underscore are internal to the package.

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

  Qualifiers, never dropped: a percentage is its number's key + ``%`` (``50\\%`` -> ``num:50%``);
  a value assigned to names is the value's key + `` @`` + the names (``x = 2`` -> ``num:2 @x``,
  ``b = 2, a = 1`` and ``(a, b) = (1, 2)`` -> the tuple's key + `` @a,b``). So ``y = 2`` and
  ``x = 2`` never share a key, nor ``\\frac12\\%`` and ``0.5`` (votes do not merge them). The
  decision rules relate them to bare answers: ``x = 2`` equals ``2`` (its value; two answers
  naming different variables are not equal); ``p\\%`` equals ``p/100`` (the fraction of one:
  ``0.5`` for ``50\\%``) and equals ``p`` itself (the benchmarks' habit: ``50`` for ``50\\%``)
  unless that bare number is a proper fraction (0 < |n| < 1), which reads only as a fraction of
  one: ``\\frac12\\%`` equals ``0.005``, never ``\\frac12``. An equation (``x = 2x + 1``) names
  nothing: it is keyed whole.
* ``answers_equal(gold, pred)`` / ``answers_equal_many(pairs)`` and ``grade`` / ``grade_many``
  (which also report keys and how the verdict was reached). A side may be a bare answer, LaTeX
  in ``$...$`` or a whole solution (its answer is extracted first). The verdict is: equal keys,
  OR math-verify's ``verify(parse(gold), parse(pred))``; decidable disagreements (two different
  exact numbers, two different letters, expressions that differ at probe points, ...) answer
  False without calling math-verify; so are a number, or anything we parsed, against text that
  math-verify can only read as one Symbol (``\\text{see step 3}``). Numeric tolerance: when a
  decimal is involved, numbers are equal if they agree after rounding to 6 decimal places
  (math-verify's rule) and to 4 significant digits. A decimal rounded to fewer places is another
  number (``0.33`` is not ``1/3``, ``3.14`` not ``\\pi``): a label is exact. The policy
  ``ROUNDED_DECIMALS_MATCH_EXACT`` (env ``REASONLITE_GRADER_ROUNDED_DECIMALS=1``, default off)
  accepts a decimal with >= 2 places that is the exact value rounded as written; curation and
  evaluation both grade through the SQL functions with the default.

Upstream's scoring (``upstream``, the paper's evaluation protocol): ``grade_upstream(gold, response)``
/ ``grade_upstream_many(pairs)`` read the whole response as AMD-AGI/ReasonLite's eval does -- the last
``\\boxed{}`` anywhere (reasoning included), then "The answer is: ..." on the last line, then
math-verify over the whole response -- and compare with this grader's equivalence;
``extract_answers_upstream(response)`` shows what the first two steps read. ``extract_answer``
and ``grade`` are unchanged by it (the strict scoring: a solution still inside ``<think>``
commits to nothing).

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

import sys
import types

from . import settings
from .decide import UNDECIDED_REASONS, GradeResult, answers_equal, answers_equal_many, grade, grade_many
from .extract import extract_answer, extract_answers
from .keys import canonical_key, canonical_keys, is_fallback_key, is_unparsed_key, key_kind
from .sandbox import shutdown, worker_cpu_seconds
from .upstream import extract_answers_upstream, grade_upstream, grade_upstream_many

__all__ = [
    "GradeResult", "TIMEOUT_S", "UNDECIDED_REASONS", "WALL_SAFETY_S", "answers_equal", "answers_equal_many",
    "canonical_key", "canonical_keys", "extract_answer", "extract_answers", "extract_answers_upstream", "grade",
    "grade_many", "grade_upstream", "grade_upstream_many",
    "is_fallback_key", "is_unparsed_key", "key_kind", "shutdown", "worker_cpu_seconds",
]

_SETTINGS = frozenset(name for name in vars(settings) if name.isupper())


def _clear_caches() -> None:
    """For tests and benchmarks: forget cached keys, verdicts and math-verify parses."""
    from . import decide, keys, mathverify

    keys._INFO_CACHE.clear()
    decide._VERDICT_CACHE.clear()
    mathverify._MV_PARSED.clear()


class _Package(types.ModuleType):
    """``grading.TIMEOUT_S`` (and the other knobs) read and write ``grading.settings``, where
    every part reads them at call time, so ``grading.TIMEOUT_S = 5`` works as it always did
    (properties: data descriptors, so pytest's monkeypatch restores them too)."""


def _setting(name: str) -> property:
    return property(lambda self: getattr(settings, name), lambda self, value: setattr(settings, name, value))


for _name in _SETTINGS:
    setattr(_Package, _name, _setting(_name))


sys.modules[__name__].__class__ = _Package
