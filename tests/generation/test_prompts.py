"""Prompt rendering through the tokenizer's own chat template (Harmony, <think>, plain chat)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from generation.config import config_from_dict
from generation.prompts import PromptRenderer, _harmony_encoding
from warehouse.errors import UserError

# Minimal templates in the shape of gpt-oss's and Qwen3's (written for these tests): what matters is
# that the renderer passes reasoning_effort / enable_thinking to the model's own template.
HARMONY_TEMPLATE = (
    "{%- if reasoning_effort is not defined %}{%- set reasoning_effort = 'medium' %}{%- endif %}"
    "<|start|>system<|message|>Reasoning: {{ reasoning_effort }}\n\n"
    "# Valid channels: analysis, commentary, final.<|end|>"
    "{%- for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{%- endfor %}"
    "{%- if add_generation_prompt %}<|start|>assistant{%- endif %}"
)
THINK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def _config(**extra):
    return config_from_dict({"run_id": "r", "model": "m", **extra})


def test_plain_chat_template(tokenizer):
    renderer = PromptRenderer(_config(), tokenizer)
    assert renderer.format == "chat"
    rendered = renderer.render("What is 1+1?")
    assert rendered.text == tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}."}],
        add_generation_prompt=True, tokenize=False)
    assert rendered.text.endswith("<|im_start|>assistant\n") and not rendered.add_special_tokens
    with_system = PromptRenderer(_config(prompt={"system": "Be brief."}), tokenizer).render("Q")
    assert "<|im_start|>system\nBe brief.<|im_end|>" in with_system.text


@pytest.mark.parametrize("level", ["medium", "high"])
def test_harmony_via_tokenizer_template(tokenizer, level):
    tokenizer = _with_template(tokenizer, HARMONY_TEMPLATE)
    renderer = PromptRenderer(_config(reasoning_level=level), tokenizer)
    assert renderer.format == "harmony" and renderer.skip_special_tokens() is False
    text = renderer.render("Find x.").text
    assert f"Reasoning: {level}\n" in text and text.endswith("<|start|>assistant")
    assert "<|start|>user<|message|>Find x.\nPlease reason step by step" in text


def test_harmony_defaults_to_medium_and_refuses_off(tokenizer):
    tokenizer = _with_template(tokenizer, HARMONY_TEMPLATE)
    assert "Reasoning: medium" in PromptRenderer(_config(), tokenizer).render("Q").text
    with pytest.raises(UserError, match="reasoning_level: gpt-oss has no 'off'"):
        PromptRenderer(_config(reasoning_level="off"), tokenizer)


def test_think_template_and_switch(tokenizer):
    tokenizer = _with_template(tokenizer, THINK_TEMPLATE)
    on = PromptRenderer(_config(), tokenizer)
    assert on.format == "think" and on.render("Q").text.endswith("<|im_start|>assistant\n")
    off = PromptRenderer(_config(reasoning_level="off"), tokenizer)
    assert off.render("Q").text.endswith("<think>\n\n</think>\n\n")


def test_raw_format_and_messages(tokenizer):
    renderer = PromptRenderer(_config(prompt={"format": "raw", "template": "Q: {problem}\nA:"}), tokenizer)
    rendered = renderer.render("2+2?")
    assert rendered.text == "Q: 2+2?\nA:" and rendered.add_special_tokens
    chat = PromptRenderer(_config(), tokenizer)
    messages = [{"role": "user", "content": "Judge this."}]
    assert "Judge this.<|im_end|>" in chat.render(messages).text  # explicit messages are used as given


def test_harmony_without_template_uses_openai_harmony_or_says_why(tokenizer):
    config = _config(prompt={"format": "harmony"}, reasoning_level="high")
    try:
        _harmony_encoding.cache_clear()
        _harmony_encoding()
    except UserError:
        # Offline without o200k_base: a clear error before any work, naming both ways out.
        with pytest.raises(UserError, match="TIKTOKEN_ENCODINGS_BASE"):
            PromptRenderer(config, None)
        return
    text = PromptRenderer(config, None).render("Find x.").text
    assert "Reasoning: high" in text and text.endswith("<|start|>assistant")


def _with_template(tokenizer, template):
    import copy

    clone = copy.deepcopy(tokenizer)
    clone.chat_template = template
    return clone


# Upstream's teacher prompt, written out from AMD-AGI/ReasonLite's code: utils/mode_handler.py:84-95
# (`_wrap_gpt_oss_system_prompt`: the system text, "reasoning: {reasoning_level}", the empty developer
# message, "\n{prompt}\n" as the user message) around utils/prompt_func.py:27 (`infer_prompt`: the
# problem + "\nPlease reason step by step, and put your final answer within \\boxed{}.").
UPSTREAM_MEDIUM_REFERENCE = """<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06
Current date: 2025-08-12

reasoning: medium

# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|><|start|>developer<|message|><|end|><|start|>user<|message|>
Let $x$ satisfy $x^2 = 4$ and $x > 0$. Find {x}.
Please reason step by step, and put your final answer within \\boxed{}.
<|end|><|start|>assistant"""
REFERENCE_PROBLEM = "Let $x$ satisfy $x^2 = 4$ and $x > 0$. Find {x}."


@pytest.mark.parametrize("level", ["medium", "high", "low"])
def test_harmony_upstream_is_upstreams_prompt_character_for_character(level):
    """No tokenizer needed; braces and LaTeX in the problem pass through untouched."""
    renderer = PromptRenderer(_config(prompt={"format": "harmony_upstream"}, reasoning_level=level), None)
    rendered = renderer.render(REFERENCE_PROBLEM)
    assert rendered.text == UPSTREAM_MEDIUM_REFERENCE.replace("reasoning: medium", f"reasoning: {level}")
    # Tokenized as upstream's /v1/completions request is; Harmony channel markers kept in the output.
    assert rendered.add_special_tokens is True and renderer.skip_special_tokens() is False
    assert renderer.reasoning_level == level


def test_harmony_upstream_defaults_to_medium_and_differs_from_the_chat_template(tokenizer):
    upstream = PromptRenderer(_config(prompt={"format": "harmony_upstream"}), None).render(REFERENCE_PROBLEM).text
    assert upstream == UPSTREAM_MEDIUM_REFERENCE  # upstream's default level (mode_handler.py:101)
    ours = PromptRenderer(_config(reasoning_level="medium"), _with_template(tokenizer, HARMONY_TEMPLATE))
    assert ours.format == "harmony" and "Reasoning: medium" in ours.render(REFERENCE_PROBLEM).text
    assert "reasoning: medium" not in ours.render(REFERENCE_PROBLEM).text


def test_harmony_upstream_refuses_what_upstream_cannot_express():
    with pytest.raises(UserError, match="prompt.system: format harmony_upstream"):
        PromptRenderer(_config(prompt={"format": "harmony_upstream", "system": "Be brief."}), None)
    with pytest.raises(UserError, match="reasoning_level: gpt-oss has no 'off'"):
        PromptRenderer(_config(prompt={"format": "harmony_upstream"}, reasoning_level="off"), None)
    renderer = PromptRenderer(_config(prompt={"format": "harmony_upstream"}), None)
    judge_prompt = renderer.render([{"role": "user", "content": "Do these match?"}]).text
    assert "<|start|>user<|message|>\nDo these match?\n<|end|>" in judge_prompt
    with pytest.raises(UserError, match="harmony_upstream renders one user message"):
        renderer.render([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])


def test_paper_teacher_configs_render_upstreams_prompt():
    from generation.config import load_config
    from tests.generation.test_config import CONFIGS

    for level in ("medium", "high"):
        config = load_config(CONFIGS / f"teacher_gptoss120b_{level}.yaml")
        text = PromptRenderer(config, None).render(REFERENCE_PROBLEM).text
        assert text == UPSTREAM_MEDIUM_REFERENCE.replace("reasoning: medium", f"reasoning: {level}")
