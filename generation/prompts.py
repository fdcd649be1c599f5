"""Prompt rendering: the exact text a model sees, built by the model's own chat template or by
openai-harmony; the one exception is ``harmony_upstream``, which reproduces upstream's hand-built string.

Formats:

* ``harmony`` (gpt-oss): system message with ``Reasoning: low|medium|high``. Rendered by the
  tokenizer's own chat template (``reasoning_effort=``) when the model folder has the gpt-oss
  template, otherwise by the openai-harmony package.
* ``harmony_upstream`` (gpt-oss, the paper's teacher runs): upstream ReasonLite's own Harmony text,
  character for character (``render_harmony_upstream``); needs no tokenizer.
* ``think`` (Qwen3-style): the chat template with ``enable_thinking`` (``reasoning_level: off``
  turns it off).
* ``chat``: the tokenizer's chat template as is.
* ``raw``: the user text itself (base models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from generation.config import GenerationConfig, render_user_text
from warehouse.errors import UserError

Messages = list[dict[str, str]]


@dataclass
class Rendered:
    text: str  # what is stored in generations.prompt
    messages: Messages
    add_special_tokens: bool  # False when the chat template already put BOS etc. in the text


def is_harmony_template(template: str | None) -> bool:
    # gpt-oss templates frame every message as <|start|>role<|message|>…<|end|>.
    return bool(template) and "<|start|>" in template and "<|message|>" in template


def _model_type(model_dir: str | None) -> str | None:
    if not model_dir:
        return None
    path = Path(model_dir) / "config.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError):
        return None


def resolve_format(requested: str, tokenizer: Any | None, model_dir: str | None = None) -> str:
    if requested != "auto":
        return requested
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if is_harmony_template(template) or _model_type(model_dir) == "gpt_oss":
        return "harmony"
    if template and "<think>" in template:
        return "think"
    if template:
        return "chat"
    return "raw"


@lru_cache(maxsize=1)
def _harmony_encoding():
    from openai_harmony import HarmonyEncodingName, HarmonyError, load_harmony_encoding

    try:
        return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    except HarmonyError as err:
        raise UserError(
            "harmony prompt: the tokenizer has no gpt-oss chat template and openai-harmony cannot load "
            f"its vocabulary ({err}); point tokenizer: at the gpt-oss model folder, or set "
            "TIKTOKEN_ENCODINGS_BASE to a folder holding o200k_base.tiktoken"
        ) from None


def render_harmony_with_library(messages: Messages, reasoning_level: str) -> str:
    """Render with openai-harmony (system: reasoning effort; system prompt → developer instructions)."""
    from openai_harmony import (
        Conversation,
        DeveloperContent,
        Message,
        ReasoningEffort,
        Role,
        SystemContent,
    )

    encoding = _harmony_encoding()
    effort = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}
    harmony_messages = [
        Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_reasoning_effort(effort[reasoning_level]))
    ]
    for message in messages:
        role, content = message["role"], message["content"]
        if role in ("system", "developer"):
            harmony_messages.append(
                Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions(content))
            )
        elif role == "user":
            harmony_messages.append(Message.from_role_and_content(Role.USER, content))
        elif role == "assistant":
            harmony_messages.append(Message.from_role_and_content(Role.ASSISTANT, content).with_channel("final"))
        else:
            raise UserError(f"harmony prompt: unsupported message role {role!r}")
    tokens = encoding.render_conversation_for_completion(Conversation.from_messages(harmony_messages), Role.ASSISTANT)
    return encoding.decode_utf8(tokens)


# Upstream AMD-AGI/ReasonLite builds the teacher's Harmony prompt by hand (utils/mode_handler.py:84-95,
# `_wrap_gpt_oss_system_prompt`): lower-case "reasoning:", a fixed knowledge cutoff and date, an empty
# developer message, and the user text between two newlines. The reasoning level is what makes short
# vs long CoT, so the paper's runs render exactly this text (never the chat template's variant).
UPSTREAM_HARMONY_SYSTEM = (
    "You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n"
    "Current date: 2025-08-12\n"
    "\n"
    "reasoning: {reasoning_level}\n"
    "\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
)


def render_harmony_upstream(user_text: str, reasoning_level: str) -> str:
    """Upstream's teacher prompt for one user message (see UPSTREAM_HARMONY_SYSTEM)."""
    system = UPSTREAM_HARMONY_SYSTEM.replace("{reasoning_level}", reasoning_level)
    return (
        f"<|start|>system<|message|>{system}<|end|>"
        "<|start|>developer<|message|><|end|>"
        f"<|start|>user<|message|>\n{user_text}\n<|end|>"
        "<|start|>assistant"
    )


HARMONY_FORMATS = ("harmony", "harmony_upstream")


class PromptRenderer:
    """Turns a problem (or a ready list of messages) into the model input for one run."""

    def __init__(self, config: GenerationConfig, tokenizer: Any | None):
        self.config = config
        self.tokenizer = tokenizer
        self.format = resolve_format(config.prompt.format, tokenizer, config.tokenizer or config.model)
        level = config.reasoning_level
        if self.format in HARMONY_FORMATS:
            if level == "off":
                raise UserError(f"{config.where}: reasoning_level: gpt-oss has no 'off'; use low, medium or high")
            self.reasoning_level = level or "medium"
        else:
            self.reasoning_level = level
        template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
        if self.format in ("think", "chat") and not template:
            raise UserError(
                f"{config.where}: prompt.format: {self.format!r} needs a tokenizer with a chat template "
                f"({config.tokenizer or config.model} has none); use format: raw"
            )
        if self.format == "harmony_upstream" and config.prompt.system:
            raise UserError(f"{config.where}: prompt.system: format harmony_upstream has upstream's fixed system "
                            "message and an empty developer message; remove prompt.system or use format: harmony")
        self._use_library = self.format == "harmony" and not is_harmony_template(template)
        if self._use_library:
            _harmony_encoding()  # fail now, before any work, if it cannot render

    def messages(self, item: str | Messages) -> Messages:
        if isinstance(item, str):
            messages: Messages = []
            if self.config.prompt.system:
                messages.append({"role": "system", "content": self.config.prompt.system})
            messages.append({"role": "user", "content": render_user_text(self.config.prompt.template, item)})
            return messages
        return [dict(m) for m in item]

    def template_kwargs(self) -> dict:
        kwargs = dict(self.config.prompt.chat_template_kwargs)
        if self.format == "harmony":
            kwargs.setdefault("reasoning_effort", self.reasoning_level)
        elif self.format == "think" and self.reasoning_level is not None:
            kwargs.setdefault("enable_thinking", self.reasoning_level != "off")
        return kwargs

    def render(self, item: str | Messages) -> Rendered:
        messages = self.messages(item)
        if self.format == "raw":
            text = "\n\n".join(m["content"] for m in messages)
            return Rendered(text, messages, add_special_tokens=True)
        if self.format == "harmony_upstream":
            if [m["role"] for m in messages] != ["user"]:
                raise UserError(f"{self.config.where}: prompt.format: harmony_upstream renders one user message, "
                                f"got roles {[m['role'] for m in messages]}")
            # add_special_tokens as upstream's /v1/completions request leaves it (vLLM's default), so the
            # token ids are upstream's whatever the tokenizer adds.
            return Rendered(render_harmony_upstream(messages[0]["content"], self.reasoning_level), messages, True)
        if self._use_library:
            return Rendered(render_harmony_with_library(messages, self.reasoning_level), messages, False)
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **self.template_kwargs()
        )
        return Rendered(text, messages, add_special_tokens=False)

    def skip_special_tokens(self) -> bool:
        # Harmony channel markers are special tokens: keep them so split_reasoning can read channels.
        return self.format not in HARMONY_FORMATS


def load_tokenizer(config: GenerationConfig, required: bool = True):
    """The HF tokenizer of the run's model (local folder or HF cache only; nothing is downloaded)."""
    name = config.tokenizer or config.model
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as err:
        if not required:
            return None
        what = "tokenizer" if config.tokenizer else "model"
        raise UserError(f"{config.where}: {what}: cannot load a tokenizer from {name!r} ({str(err).splitlines()[0]})") from None
