"""Answer extraction: the answer a solution commits to (last ``\\boxed{}``, Harmony final channel,
``<think>`` ignored, "final answer is ..." markers, a short bare answer) and how it was found."""

from __future__ import annotations

import re

from . import settings
from .normalize import _brace_pairs, _clean

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
    skip = max(0, len(t) - settings.MAX_SCAN_CHARS)  # a final answer lives near the end
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
    t = t[-settings.MAX_SCAN_CHARS:]
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
    if not ans or len(ans) > settings.MAX_ANSWER_CHARS:
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
    boxed = _last_boxes(t) or ("\\boxed" in t[-settings.MAX_SCAN_CHARS:] and ("", 0, False))
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
    punctuation, units and ``^\\circ``; a leading ``x =`` stays (keys keep the names).
    """
    return _extract(text)[0]


def extract_answers(texts) -> list[str | None]:
    texts = list(texts)
    found = {t: extract_answer(t) for t in dict.fromkeys(t for t in texts if isinstance(t, str))}
    return [found.get(t) if isinstance(t, str) else None for t in texts]
