"""Prompt rendering: the exact text a model sees, built by the model's own chat template or by
openai-harmony, never by gluing special tokens together here.

Formats:

* ``harmony`` (gpt-oss): system message with ``Reasoning: low|medium|high``. Rendered by the
  tokenizer's own chat template (``reasoning_effort=``) when the model folder has the gpt-oss
  template, otherwise by the openai-harmony package.
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


class PromptRenderer:
    """Turns a problem (or a ready list of messages) into the model input for one run."""

    def __init__(self, config: GenerationConfig, tokenizer: Any | None):
        self.config = config
        self.tokenizer = tokenizer
        self.format = resolve_format(config.prompt.format, tokenizer, config.tokenizer or config.model)
        level = config.reasoning_level
        if self.format == "harmony":
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
        if self._use_library:
            return Rendered(render_harmony_with_library(messages, self.reasoning_level), messages, False)
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **self.template_kwargs()
        )
        return Rendered(text, messages, add_special_tokens=False)

    def skip_special_tokens(self) -> bool:
        # Harmony channel markers are special tokens: keep them so split_reasoning can read channels.
        return self.format != "harmony"


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
