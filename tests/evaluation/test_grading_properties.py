"""Property tests for evaluation.grading (hypothesis): surface forms of one value share a key,
equal keys imply equal answers, keys are idempotent and deterministic, equality is symmetric on
numbers, and nothing raises on arbitrary text."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluation import grading as G


@pytest.fixture(scope="module", autouse=True)
def _generous_bound():
    # verdicts must not depend on machine load; the time bound has its own tests
    saved, G.TIMEOUT_S = G.TIMEOUT_S, 10.0
    yield
    G.TIMEOUT_S = saved

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

fractions = st.builds(Fraction, st.integers(-500, 500), st.integers(1, 60))


def _terminating(v: Fraction) -> str | None:
    d = v.denominator
    for k in range(7):
        if 10 ** k % d == 0:
            whole = abs(v.numerator) * 10 ** k // d
            digits = str(whole).rjust(k + 1, "0")
            text = digits[:-k] + "." + digits[-k:] if k else digits
            return ("-" if v < 0 else "") + text
    return None


def surface_forms(v: Fraction) -> list[str]:
    """Ways people write the rational v."""
    p, q = v.numerator, v.denominator
    sign = "-" if v < 0 else ""
    forms = [f"{p}/{q}", rf"\frac{{{p}}}{{{q}}}", rf"{sign}\dfrac{{{abs(p)}}}{{{q}}}", rf"\tfrac{{{p}}}{{{q}}}",
             rf"\frac{{{2 * p}}}{{{2 * q}}}", rf"\boxed{{{p}/{q}}}", f"${p}/{q}$",
             rf"The answer is $\frac{{{p}}}{{{q}}}$."]
    if q == 1:
        forms += [str(p), f"{p}.0", rf"\text{{{p}}}", f"{p:,}"]
    dec = _terminating(v)
    if dec is not None:
        forms += [dec, dec + ("0" if "." in dec else ".0"), rf"\boxed{{{dec}}}"]
    if q > 1 and abs(p) > q and v > 0:
        forms.append(rf"{p // q}\frac{{{p % q}}}{{{q}}}")  # mixed number
    return forms


@SETTINGS
@given(fractions, st.data())
def test_surface_forms_of_a_rational_share_its_key(v, data):
    forms = surface_forms(v)
    a, b = data.draw(st.sampled_from(forms)), data.draw(st.sampled_from(forms))
    expected = f"num:{v.numerator}" if v.denominator == 1 else f"num:{v.numerator}/{v.denominator}"
    assert G.canonical_keys([a, b]) == [expected, expected]


@SETTINGS
@given(fractions, fractions)
def test_different_rationals_get_different_keys_and_are_unequal(u, v):
    ku, kv = G.canonical_keys([rf"\frac{{{u.numerator}}}{{{u.denominator}}}", f"{v.numerator}/{v.denominator}"])
    assert (ku == kv) == (u == v)
    assert G.answers_equal(f"{u.numerator}/{u.denominator}", f"{v.numerator}/{v.denominator}") == (u == v)


# answers of many kinds, several surface forms each, so that equal keys happen often
SYMBOLIC = [
    [r"\sqrt{8}", r"2\sqrt{2}"], [r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"], [r"\frac{\pi}{3}", r"\pi/3"],
    ["x^2+2x+1", "(x+1)^2"], [r"\{1, 2\}", "2, 1"], ["[0, 1)", r"x \in [0,1)"], [r"(1, 2, 3)", r"\left(1,2,3\right)"],
    [r"x \le 3", r"3 \ge x"], [r"\text{odd}", "odd"], ["B", r"\text{(B)}"], [r"1 \pm \sqrt{3}", r"1+\sqrt{3}, 1-\sqrt{3}"],
    [r"50\%", "50 percent"], ["x = 3", r"\boxed{x=3}"], ["3+4i", "4i+3"], [r"\begin{pmatrix}1&0\\0&1\end{pmatrix}", r"\begin{bmatrix}1&0\\0&1\end{bmatrix}"],
    ["12:00"], ["no solution", r"\text{No solution}"], [r"90^\circ", "90"], ["e^{2}", "e^2"],
]
answers = st.one_of(
    st.sampled_from([a for group in SYMBOLIC for a in group]),
    fractions.map(lambda v: surface_forms(v)[0]),
    fractions.flatmap(lambda v: st.sampled_from(surface_forms(v))),
)


@FEW
@given(answers, answers)
def test_equal_keys_imply_equal_answers(a, b):
    ka, kb = G.canonical_keys([a, b])
    if ka is not None and ka == kb:
        assert G.answers_equal(a, b) and G.answers_equal(b, a)


@SETTINGS
@given(fractions.flatmap(lambda v: st.sampled_from(surface_forms(v))), fractions.map(lambda v: surface_forms(v)[1]))
def test_equality_is_symmetric_on_numbers(a, b):
    assert G.answers_equal(a, b) == G.answers_equal(b, a)


@SETTINGS
@given(answers)
def test_keys_are_idempotent_and_deterministic(a):
    key = G.canonical_key(a)
    extracted = G.extract_answer(a)
    if extracted is not None:
        assert G.extract_answer(extracted) == extracted
        assert G.canonical_key(extracted) == key
    G._clear_caches()
    assert G.canonical_key(a) == key


@SETTINGS
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_arbitrary_text_never_raises(text):
    key = G.canonical_key(text)
    assert key is None or isinstance(key, str)
    extracted = G.extract_answer(text)
    assert extracted is None or isinstance(extracted, str)
    assert G.answers_equal(text, text) in (True, False)


latexish = st.text(alphabet="0123456789+-*/^_{}()[]\\,.=<>xyabc !%$", max_size=40)


@FEW
@given(latexish, latexish)
def test_latex_like_noise_is_handled(a, b):
    ka, kb = G.canonical_keys([a, b])
    assert all(k is None or isinstance(k, str) for k in (ka, kb))
    verdict = G.answers_equal(a, b)
    assert verdict in (True, False)
    if ka is not None and ka == kb:
        assert verdict
