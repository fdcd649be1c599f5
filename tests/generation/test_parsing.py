"""split_reasoning: the one parser for Harmony channels, <think> tags and plain text."""

from __future__ import annotations

import pytest

from generation.parsing import split_reasoning, split_reasoning_skipped_harmony

HARMONY = (
    "<|channel|>analysis<|message|>We add 1 and 2.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>The answer is \\boxed{3}.<|return|>"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HARMONY, ("We add 1 and 2.", "The answer is \\boxed{3}.")),
        # Prompt ended with "<|start|>assistant"; completion truncated inside the analysis channel.
        ("<|channel|>analysis<|message|>Still thinking", ("Still thinking", None)),
        # Tool preamble on the commentary channel is reasoning, not answer.
        (
            "<|channel|>commentary to=functions.calc <|constrain|>json<|message|>{\"x\":1}<|call|>"
            "<|start|>assistant<|channel|>final<|message|>2<|return|>",
            ('{"x":1}', "2"),
        ),
        ("<think>\nLet me see.\n</think>\n\nIt is 4.", ("Let me see.", "It is 4.")),
        # <think> opened by the chat template in the prompt, closed in the completion.
        ("Let me see.</think>It is 4.", ("Let me see.", "It is 4.")),
        ("<think>cut off", ("cut off", None)),
        ("<think></think>Just 4.", (None, "Just 4.")),
        # gpt-oss decoded with special tokens skipped (vLLM default, upstream's stored text).
        ("analysisWe add.assistantfinalThe answer is 3", ("We add.", "The answer is 3")),
        ("The answer is 5.", (None, "The answer is 5.")),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_split_reasoning(text, expected):
    assert split_reasoning(text) == expected


def test_skipped_harmony_truncated_only_when_asked():
    # Plain text that starts with "analysis" is not reasoning unless the run is known to be gpt-oss.
    assert split_reasoning("analysis of the problem") == (None, "analysis of the problem")
    assert split_reasoning_skipped_harmony("analysis of the problem") == ("of the problem", None)
    assert split_reasoning_skipped_harmony("Plain.") == (None, "Plain.")


def test_plain_text_cut_off_by_max_tokens_has_no_final():
    """generation/README: a completion cut off before its answer has final NULL; plain text has no
    marker where the answer starts, so a plain completion stopped by max_tokens has none."""
    assert split_reasoning("So the answer is \\boxed{4", "length") == (None, None)
    assert split_reasoning("So the answer is \\boxed{4}.", "stop") == (None, "So the answer is \\boxed{4}.")
    # Reasoning formats already say where the answer starts: a final part that began is kept.
    assert split_reasoning("<think>a</think>The answer is 4", "length") == ("a", "The answer is 4")
    assert split_reasoning("<think>still thinking", "length") == ("still thinking", None)
    assert split_reasoning_skipped_harmony("Plain but cut", "length") == (None, None)
