"""Split a raw completion into (reasoning, final): the ONE parser every stage uses.

Three shapes of model output are understood:

* gpt-oss **Harmony** channels, with special tokens kept::

      <|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…<|return|>

  and the same text decoded with special tokens skipped (what vLLM returns by default and what
  upstream ReasonLite stored): ``analysis…assistantfinal…``.
* Qwen3 / DeepSeek style ``<think>…</think>`` (the opening tag may live in the prompt).
* plain text → ``(None, text)``.

A completion that stopped inside its reasoning (truncated by ``max_tokens``) has ``final=None``:
downstream filters must not mistake half a thought for an answer. Plain text has no marker where
the answer starts, so a plain completion cut off by ``max_tokens`` (``finish_reason = 'length'``)
has ``final=None`` as well.

Model text is only matched with regular expressions here; nothing is evaluated.
"""

from __future__ import annotations

import re

__all__ = ["split_reasoning", "split_reasoning_skipped_harmony", "is_harmony"]

# Harmony special tokens (openai-harmony / gpt-oss tokenizer).
_H_START, _H_CHANNEL, _H_MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
_H_STOPS = ("<|end|>", "<|return|>", "<|call|>")

# One Harmony message: optional header `<|start|>assistant`, the channel name with optional
# recipient / constraint (`commentary to=functions.x <|constrain|>json`), then the body.
_HARMONY_MESSAGE = re.compile(
    r"(?:<\|start\|>[^<]*)?<\|channel\|>(?P<channel>[A-Za-z_]+)(?P<header>[^<]*(?:<\|constrain\|>[^<]*)?)"
    r"<\|message\|>(?P<body>.*?)(?:<\|end\|>|<\|return\|>|<\|call\|>|(?=<\|start\|>)|\Z)",
    re.DOTALL,
)
# Special tokens skipped by the detokenizer: "analysis<reasoning>assistantfinal<answer>".
_SKIPPED_HARMONY = re.compile(r"^\s*analysis(?P<reasoning>.*?)assistant\s*final(?P<final>.*)\Z", re.DOTALL)
_SKIPPED_HARMONY_TRUNCATED = re.compile(r"^\s*analysis(?P<reasoning>.*)\Z", re.DOTALL)

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text or None


def is_harmony(text: str) -> bool:
    return _H_CHANNEL in text and _H_MESSAGE in text


def _split_harmony(text: str) -> tuple[str | None, str | None]:
    reasoning: list[str] = []
    finals: list[str] = []
    for match in _HARMONY_MESSAGE.finditer(text):
        channel = match.group("channel").lower()
        body = match.group("body")
        if channel == "final":
            finals.append(body)
        elif channel in ("analysis", "commentary"):
            # Tool calls and preambles are part of the thinking, not the answer.
            reasoning.append(body)
    # The prompt usually ends with "<|start|>assistant", so a completion may begin with a bare
    # "<|channel|>…"; both are covered by the optional header above.
    final = _clean(finals[-1]) if finals else None
    return _clean("\n\n".join(r.strip() for r in reasoning if r.strip())), final


def split_reasoning(text: str | None, finish_reason: str | None = None) -> tuple[str | None, str | None]:
    """Return ``(reasoning, final)`` for one completion.

    * Harmony: reasoning = analysis (and commentary) channels, final = last final channel.
    * ``<think>``: reasoning = inside the tags, final = text after ``</think>``.
    * plain text: ``(None, text)``, or ``(None, None)`` when ``finish_reason`` is ``length``.

    ``final`` is None when the completion stopped before its answer; empty parts become None.
    """
    if text is None:
        return None, None
    if is_harmony(text):
        return _split_harmony(text)
    if _THINK_CLOSE in text:
        head, _, tail = text.partition(_THINK_CLOSE)
        # The opening tag may be in the completion or already in the rendered prompt.
        _, opened, inner = head.partition(_THINK_OPEN)
        reasoning = inner if opened else head
        # A second think block (rare) stays in the answer text; we split on the first close only.
        return _clean(reasoning), _clean(tail)
    stripped = text.lstrip()
    if stripped.startswith(_THINK_OPEN):
        # Opened but never closed: truncated mid-thought.
        return _clean(stripped[len(_THINK_OPEN):]), None
    match = _SKIPPED_HARMONY.match(text)
    if match:
        return _clean(match.group("reasoning")), _clean(match.group("final"))
    return None, None if finish_reason == "length" else _clean(text)


def split_reasoning_skipped_harmony(text: str, finish_reason: str | None = None) -> tuple[str | None, str | None]:
    """Like :func:`split_reasoning`, for a gpt-oss completion decoded with special tokens skipped
    whose run is known to be Harmony: a truncated ``analysis…`` (no ``assistantfinal``) is all
    reasoning. Kept separate because plain text that happens to start with "analysis" must not be
    read as reasoning when the model is not gpt-oss.
    """
    if text is None or is_harmony(text) or _THINK_CLOSE in text or _SKIPPED_HARMONY.match(text):
        return split_reasoning(text, finish_reason)
    match = _SKIPPED_HARMONY_TRUNCATED.match(text)
    if match:
        return _clean(match.group("reasoning")), None
    return split_reasoning(text, finish_reason)
