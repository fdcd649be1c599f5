"""Generation run configuration: YAML file + dotted ``--set key=value`` overrides, validated up front.

Every key is declared in a dataclass below, so a typo (``sampling.temprature``) is an error that
names the key and suggests the closest one, before any model is loaded. Paths may use the
placeholders ``${models_dir}``, ``${checkpoints_dir}``, ``${lake}`` and ``${env:NAME}``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from warehouse import lake
from warehouse.errors import UserError

# Kept as a plain marker so braces in LaTeX (\boxed{}) need no escaping: "{problem}" is replaced
# literally, nothing else in the template is interpreted.
DEFAULT_TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."
PROBLEM_MARKER = "{problem}"

BACKENDS = ("vllm", "openai", "transformers")
PURPOSES = ("teacher", "eval", "judge")
FORMATS = ("auto", "harmony", "harmony_upstream", "think", "chat", "raw")
REASONING_LEVELS = ("low", "medium", "high", "off")
SEED_POLICIES = ("per_sample", "sample_idx", "none")
OPENAI_APIS = ("completions", "chat")


@dataclass
class PromptConfig:
    # auto: Harmony for gpt-oss, <think> for templates that have it, else the plain chat template;
    # harmony_upstream: upstream ReasonLite's hand-built gpt-oss prompt (the paper's teacher runs).
    format: str = "auto"
    template: str = DEFAULT_TEMPLATE
    system: str | None = None
    # Extra keyword arguments for the tokenizer's chat template.
    chat_template_kwargs: dict = field(default_factory=dict)


@dataclass
class ProblemsConfig:
    sources: list = field(default_factory=list)  # empty: every source
    ids: list = field(default_factory=list)  # explicit problem ids (optional)
    limit: int | None = None  # first N of the selection, in a stable order (before sharding)
    filter: str | None = None  # a DuckDB boolean expression over the `problems` view


@dataclass
class SamplingConfig:
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    # per_sample: sample k of a problem always gets seed base(problem)+k (reproducible, resumable);
    # sample_idx: sample k of every problem gets seed + k, as upstream ReasonLite sends it (teacher:
    # seed 0, utils/mode_handler.py:108, the "_k" of its index; eval: 42 + k, eval/eval.py:610);
    # none: engine randomness, nothing recorded.
    seed_policy: str = "per_sample"


@dataclass
class VLLMConfig:
    max_model_len: int | None = None  # default: the model's; a longer one is clamped to it (see vllm_backend)
    # On GPUs: the share of device memory vLLM may take (vLLM's default 0.9 when unset). The CPU build
    # reads it as a share of NUMA node 0, whose size changes while a machine runs, so on the CPU the
    # KV cache is sized in bytes instead: kv_cache_gib, or computed from the run (vllm_backend).
    gpu_memory_utilization: float | None = None
    kv_cache_gib: float | None = None  # an explicit KV cache size (vLLM kv_cache_memory_bytes), CPU or GPU
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    enable_prefix_caching: bool = True
    # Problems handed to the engine per call; each call's outputs are written before the next.
    batch_problems: int = 512
    extra: dict = field(default_factory=dict)  # more keyword arguments for vllm.LLM
    # Environment variables set while the engine runs, e.g. the final eval preset's
    # VLLM_ALLOW_LONG_MAX_MODEL_LEN: 1 (a context beyond the model's own, as upstream eval/start.py:20).
    env: dict = field(default_factory=dict)


@dataclass
class OpenAIConfig:
    endpoints: list = field(default_factory=list)  # base URLs ending in /v1
    api: str = "completions"  # completions: we render the prompt; chat: the server does
    served_model: str | None = None  # model name on the servers (default: first of /v1/models)
    concurrency: int = 64  # requests in flight over all endpoints
    timeout_s: float = 600.0  # per request
    max_retries: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    connect_timeout_s: float = 10.0
    api_key_env: str | None = None  # name of the env var holding the key (the key is never stored)
    extra_body: dict = field(default_factory=dict)


@dataclass
class TransformersConfig:
    device: str = "auto"  # auto: cuda if available, else cpu
    dtype: str = "auto"
    batch_size: int = 8  # sequences per generate() call
    max_model_len: int | None = None  # default: the model's max_position_embeddings
    # torch CPU threads; default: OMP_NUM_THREADS if set, else 1 on machines of <= 4 cores (many
    # times faster there than one thread per core, see generation/README.md), else torch's choice.
    threads: int | None = None


@dataclass
class GenerationConfig:
    run_id: str = ""
    model: str = ""
    backend: str = "vllm"
    purpose: str = "teacher"
    tokenizer: str | None = None  # default: the model folder
    reasoning_level: str | None = None
    samples: int = 1
    prompt: PromptConfig = field(default_factory=PromptConfig)
    problems: ProblemsConfig = field(default_factory=ProblemsConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    flush_rows: int = 256  # rows per Parquet part (bounded memory; what a kill can lose)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    transformers: TransformersConfig = field(default_factory=TransformersConfig)
    source_file: str | None = field(default=None, metadata={"internal": True})

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("source_file", None)
        return data

    def fingerprint(self) -> dict:
        """What decides the samples' distribution: a resumed run must not change any of it."""
        return {
            "model": self.model,
            "reasoning_level": self.reasoning_level,
            "prompt": dataclasses.asdict(self.prompt),
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_tokens": self.sampling.max_tokens,
            "seed": self.sampling.seed,
            "seed_policy": self.sampling.seed_policy,
        }

    @property
    def where(self) -> str:
        return self.source_file or "config"


# ---------------------------------------------------------------------------------------- loading


def _known_keys(cls, prefix: str = "") -> list[str]:
    keys = []
    for f in fields(cls):
        if f.metadata.get("internal"):
            continue
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            keys += _known_keys(f.default_factory, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def unknown_key_error(where: str, key: str, known: Iterable[str], what: str = "config key") -> UserError:
    """The one "unknown key (did you mean ...?)" message, for config files and curate --vars alike."""
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UserError(f"{where}: unknown {what} {key!r}{hint}")


def _unknown_key_error(where: str, key: str, cls) -> UserError:
    return unknown_key_error(where, key, _known_keys(cls))


def _coerce(where: str, key: str, value: Any, hint: Any) -> Any:
    """Check one value against its declared type; ints are accepted where floats are expected."""
    origin = get_origin(hint)
    options = get_args(hint) if origin is not None else ()
    if value is None:
        if type(None) in options:
            return None
        raise UserError(f"{where}: {key}: must not be empty")
    base = next((o for o in options if o is not type(None)), hint) if options else hint
    base = get_origin(base) or base
    if base is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base is bool and isinstance(value, bool):
        return value
    if base is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if base is list:
        if isinstance(value, str):  # --set problems.sources=amc23,aime24
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return value
    if base is dict and isinstance(value, dict):
        return value
    raise UserError(f"{where}: {key}: expected {getattr(base, '__name__', base)}, got {value!r}")


def _build(cls, data: Any, where: str, prefix: str = ""):
    if not isinstance(data, dict):
        raise UserError(f"{where}: {prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
    kwargs = {}
    for key, value in data.items():
        if key not in by_name:
            raise _unknown_key_error(where, prefix + str(key), GenerationConfig)
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, where, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(where, prefix + key, value, hint)
    return cls(**kwargs)


def _set_dotted(data: dict, dotted: str, value: Any, where: str) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"{where}: --set {dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (numbers, booleans, lists), so --set samples=4 is an int."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set {text!r}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, dict | list) and not raw.strip().startswith(("[", "{")):
        value = raw  # "a: b" typed without brackets is a string, not a mapping
    return key, value


_PLACEHOLDER = re.compile(r"\$\{(env:)?([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_placeholders(text: str, where: str = "config") -> str:
    def sub(match: re.Match) -> str:
        if match.group(1):
            name = match.group(2)
            if name not in os.environ:
                raise UserError(f"{where}: ${{env:{name}}}: environment variable {name} is not set")
            return os.environ[name]
        name = match.group(2)
        places = {
            "models_dir": lake.models_dir,
            "checkpoints_dir": lake.checkpoints_dir,
            "lake": lake.lake_root,
            "exports_dir": lake.exports_dir,
        }
        if name not in places:
            raise UserError(f"{where}: unknown placeholder ${{{name}}} (known: {', '.join(places)}, env:NAME)")
        return str(places[name]())

    return _PLACEHOLDER.sub(sub, text)


def config_from_dict(data: dict, where: str = "config", overrides: list[str] | None = None) -> GenerationConfig:
    data = json.loads(json.dumps(data or {}))  # deep copy, plain types only
    for item in overrides or []:
        key, value = parse_override(item)
        _set_dotted(data, key, value, where)
    config = _build(GenerationConfig, data, where)
    config.source_file = where
    for attr in ("model", "tokenizer"):
        value = getattr(config, attr)
        if isinstance(value, str):
            setattr(config, attr, expand_placeholders(value, where))
    config.openai.endpoints = [expand_placeholders(str(e), where) for e in config.openai.endpoints]
    validate(config)
    return config


def load_config(path: str | Path, overrides: list[str] | None = None) -> GenerationConfig:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{at}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return config_from_dict(data, str(path), overrides)


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate(config: GenerationConfig) -> None:
    """Static checks, no I/O: values in range, choices known."""
    w = config.where

    def bad(key: str, why: str) -> UserError:
        return UserError(f"{w}: {key}: {why}")

    if not config.run_id:
        raise bad("run_id", "is required (e.g. --set run_id=teacher-medium-v1)")
    if not _RUN_ID.match(config.run_id):
        raise bad("run_id", f"{config.run_id!r} must be letters, digits, '.', '_' or '-'")
    if not config.model:
        raise bad("model", "is required (a local model folder or a served model name)")
    checks = [
        ("backend", config.backend, BACKENDS),
        ("purpose", config.purpose, PURPOSES),
        ("prompt.format", config.prompt.format, FORMATS),
        ("sampling.seed_policy", config.sampling.seed_policy, SEED_POLICIES),
        ("openai.api", config.openai.api, OPENAI_APIS),
    ]
    for key, value, choices in checks:
        if value not in choices:
            raise bad(key, f"{value!r} is not one of {', '.join(choices)}")
    if config.reasoning_level is not None and config.reasoning_level not in REASONING_LEVELS:
        raise bad("reasoning_level", f"{config.reasoning_level!r} is not one of {', '.join(REASONING_LEVELS)}")
    if config.samples < 1:
        raise bad("samples", "must be >= 1")
    s = config.sampling
    if s.temperature < 0:
        raise bad("sampling.temperature", "must be >= 0")
    if not 0 < s.top_p <= 1:
        raise bad("sampling.top_p", "must be in (0, 1]")
    if s.max_tokens < 1:
        raise bad("sampling.max_tokens", "must be >= 1")
    if config.flush_rows < 1:
        raise bad("flush_rows", "must be >= 1")
    if PROBLEM_MARKER not in config.prompt.template:
        raise bad("prompt.template", f"must contain {PROBLEM_MARKER} where the problem text goes")
    if config.problems.limit is not None and config.problems.limit < 0:
        raise bad("problems.limit", "must be >= 0")
    o = config.openai
    if config.backend == "openai":
        if not o.endpoints:
            raise bad("openai.endpoints", "the openai backend needs at least one base URL (http://host:port/v1)")
        for url in o.endpoints:
            if not re.match(r"^https?://[^/\s]+", str(url)):
                raise bad("openai.endpoints", f"{url!r} is not an http(s) URL")
    if o.concurrency < 1 or o.max_retries < 0 or o.timeout_s <= 0:
        raise bad("openai", "concurrency >= 1, max_retries >= 0 and timeout_s > 0 are required")
    v = config.vllm
    if v.gpu_memory_utilization is not None and not 0 < v.gpu_memory_utilization <= 1:
        raise bad("vllm.gpu_memory_utilization", "must be in (0, 1]")
    if v.kv_cache_gib is not None and not v.kv_cache_gib > 0:
        raise bad("vllm.kv_cache_gib", "must be > 0 (GiB)")
    if config.transformers.threads is not None and config.transformers.threads < 1:
        raise bad("transformers.threads", "must be >= 1")
    if config.vllm.batch_problems < 1 or config.transformers.batch_size < 1:
        raise bad("batch size", "vllm.batch_problems and transformers.batch_size must be >= 1")


def render_user_text(template: str, problem: str) -> str:
    return template.replace(PROBLEM_MARKER, problem)
