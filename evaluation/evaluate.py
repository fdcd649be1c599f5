"""`reasonlite evaluate`: sample a model on benchmarks with the generation engine, score in dbt.

The flow, per benchmark (aime24, amc23, ...):

1. the benchmark is ingested as problems with ``source = <name>`` (idempotent);
2. a generation run with purpose ``eval`` samples ``n`` solutions per problem. Its run id,
   ``eval-<model>-<benchmark>-<hash>``, hashes what decides the samples (model, prompt, sampling,
   seed), so running the same command again resumes the run instead of starting over, and a larger
   ``--n`` or ``--limit`` extends it. One engine serves every benchmark of the call;
3. ``dbt run`` builds the evaluation marts (eval_samples, eval_scores, eval_budget_curve) with the
   same grader as curation, and the scores are printed from ``eval_scores``.

Defaults are upstream's protocol: the presets in ``generation/configs/eval_*.yaml`` (Turbo: T 0.6,
top_p 0.95, 32K tokens; final: T 1.0, top_p 0.98, 64K context with VLLM_ALLOW_LONG_MAX_MODEL_LEN=1),
16 samples per problem, the bare problem as the prompt. Without ``--preset`` the checkpoint's
training record (``reasonlite_training.json``, written by ``reasonlite train``) picks the preset:
stage 1 -> turbo, stage 2 -> final; a model without a record gets turbo, said in one line. The
marts score every sample twice (column ``scoring``): upstream's way and this grader's stricter way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from evaluation.benchmarks import ingest_benchmark, parse_names
from warehouse import lake
from warehouse.errors import UserError

CONFIG_DIR = lake.PACKAGE_DIR.parent / "generation" / "configs"
PRESETS = {"turbo": CONFIG_DIR / "eval_turbo.yaml", "final": CONFIG_DIR / "eval_final.yaml"}
DEFAULT_PRESET = "turbo"  # a model without a training record: a base model is evaluated as upstream's Turbo
# The record's stage name (stage1, tiny_stage2, ...) decides; a stage named otherwise, the stratum it trained on.
STAGE_PRESETS = {"1": "turbo", "2": "final"}
STRATUM_PRESETS = {"short_cot": "turbo", "long_cot": "final"}
# The dbt nodes `evaluate` builds: the eval marts and everything they read.
EVAL_MARTS = ("eval_samples", "eval_scores", "eval_budget_curve")
PRINTED = (("avg@n", "avg_at_n"), ("pass@1", "pass_at_1"), ("pass@8", "pass_at_8"), ("pass@16", "pass_at_16"),
           ("maj@n", "maj_at_n"), ("s.e.", "std_err"), ("no-ans", "no_answer_rate"), ("trunc", "truncation_rate"))


@dataclass
class EvalOptions:
    model: str
    benchmarks: str | list[str]  # "aime24,amc23" or a list
    preset: str | None = None  # None: from the checkpoint's training record (choose_preset)
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    backend: str | None = None
    benchmark_dir: str | None = None
    limit: int | None = None
    name: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    kv_cache_gib: float | None = None
    overrides: list[str] = field(default_factory=list)
    score: bool = True
    progress: bool = True


@dataclass
class EvalResult:
    run_ids: dict[str, str]  # benchmark -> run id
    samples_written: int = 0
    errors: int = 0
    scores: list[dict] = field(default_factory=list)
    dbt_ok: bool = True
    dbt_failures: list[str] = field(default_factory=list)


def model_slug(model: str) -> str:
    """A run-id-safe short name for a model path or served name."""
    path = model.rstrip("/")
    parts = [p for p in path.split("/") if p]
    name = parts[-1] if parts else "model"
    if re.fullmatch(r"checkpoint-\d+", name) and len(parts) > 1:
        name = f"{parts[-2]}-{name}"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    return slug[:60]


def run_id_for(config, slug: str, benchmark: str) -> str:
    """eval-<model>-<benchmark>-<hash of what decides the samples' distribution>."""
    digest = hashlib.sha256(json.dumps(config.fingerprint(), sort_keys=True, default=str).encode()).hexdigest()
    return f"eval-{slug}-{benchmark}-{digest[:10]}"


def training_record(model: str) -> tuple[dict, Path] | None:
    """The record `reasonlite train` writes into the checkpoint folder it trains (a trainer's
    ``checkpoint-N`` folder reads its run folder's), and where it was found; None without one."""
    from training.train import LINEAGE_FILE

    folder = Path(model).expanduser()
    folders = [folder] + ([folder.parent] if re.fullmatch(r"checkpoint-\d+", folder.name) else [])
    for candidate in folders:
        path = candidate / LINEAGE_FILE
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"{path}: not a readable training record ({err}); give --preset turbo|final") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}: expected one JSON object, got {type(record).__name__}; give --preset turbo|final")
        return record, path
    return None


def choose_preset(model: str) -> tuple[str, str]:
    """(preset, one line saying why) for a model evaluated without --preset."""
    found = training_record(model)
    if found is None:
        return DEFAULT_PRESET, (f"{model}: no training record (a base model?): preset {DEFAULT_PRESET}; "
                                "give --preset final for a stage-2 model")
    record, path = found
    stage = str(record.get("stage") or "")
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    stratum = config["data"].get("config") if isinstance(config.get("data"), dict) else None
    number = re.search(r"stage[_-]?([12])$", stage, re.IGNORECASE)
    if number:
        preset, because = STAGE_PRESETS[number.group(1)], f"stage {stage}"
    else:
        preset, because = STRATUM_PRESETS.get(stratum), f"stage {stage or '?'} trained on {stratum}"
    if preset is None:
        raise UserError(f"{path}: stage {stage!r} (data {stratum!r}) is neither stage 1 nor stage 2; "
                        "give --preset turbo|final")
    return preset, f"{model}: {because} ({path.name}): preset {preset}"


def _preset_data(preset: str) -> tuple[dict, str]:
    path = PRESETS.get(preset)
    if path is None:
        raise UserError(f"--preset: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    try:
        return yaml.safe_load(path.read_text()) or {}, str(path)
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot read the evaluation preset ({err})") from None


def build_config(options: EvalOptions, benchmark: str):
    """The generation config of one benchmark's eval run: preset, then options, then --set."""
    from generation.config import config_from_dict

    data, where = _preset_data(options.preset or choose_preset(options.model)[0])
    model = options.model
    if Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    data.update(model=model, purpose="eval", run_id="eval-pending")
    if options.backend:
        data["backend"] = options.backend
    if options.n is not None:
        data["samples"] = options.n
    problems = data.setdefault("problems", {})
    problems.update(sources=[benchmark], ids=[], filter=None, limit=options.limit)
    sampling = data.setdefault("sampling", {})
    for key in ("temperature", "top_p", "max_tokens", "seed"):
        value = getattr(options, key)
        if value is not None:
            sampling[key] = value
    if options.max_model_len is not None:
        data.setdefault("vllm", {})["max_model_len"] = options.max_model_len
        data.setdefault("transformers", {})["max_model_len"] = options.max_model_len
    if options.gpu_memory_utilization is not None:
        data.setdefault("vllm", {})["gpu_memory_utilization"] = options.gpu_memory_utilization
    if options.kv_cache_gib is not None:
        data.setdefault("vllm", {})["kv_cache_gib"] = options.kv_cache_gib
    config = config_from_dict(data, where, options.overrides)
    if config.purpose != "eval":
        raise UserError(f"{where}: purpose: an evaluation run has purpose 'eval', not {config.purpose!r}")
    if not any(o.split("=", 1)[0].strip() == "run_id" for o in options.overrides):
        config.run_id = run_id_for(config, options.name or model_slug(config.model), benchmark)
    elif len(parse_names(options.benchmarks, options.benchmark_dir)) > 1:
        raise UserError("--set run_id=...: one run id cannot serve several benchmarks; drop it or give one benchmark")
    return config


def _pending(config) -> int:
    """Samples of the run still to generate (0 when a rerun finds it complete)."""
    from generation.runner import _todo_for_problems  # the same count `reasonlite generate --dry-run` prints
    from warehouse import db

    con = db.connect(marts=False)
    try:
        todo, _, _ = _todo_for_problems(con, config, (0, 1))
    finally:
        con.close()
    return sum(len(missing) for _, missing in todo)


def generate(options: EvalOptions, log=print) -> EvalResult:
    """Steps 1-2: ingest the benchmarks and run (or resume) one eval run per benchmark."""
    from generation.backends import make_backend
    from generation.cli import ensure_local_model
    from generation.prompts import load_tokenizer
    from generation.runner import preflight, run_generation

    names = parse_names(options.benchmarks, options.benchmark_dir)
    why = None
    if options.preset is None:
        preset, why = choose_preset(options.model)
        options = dataclasses.replace(options, preset=preset)
    configs = {name: build_config(options, name) for name in names}
    for config in configs.values():
        # The model is checked (or converted) before anything is ingested: a typo costs no work.
        ensure_local_model(config)
        preflight(config)
    for name in names:
        report = ingest_benchmark(name, options.benchmark_dir)
        if report.rows_written:
            log(f"{name}: ingested {report.rows_written} problems (source {name})")
    if why:
        log(why)  # after the checks: a bad input stays a one-line error
    result = EvalResult(run_ids={name: c.run_id for name, c in configs.items()})

    engine = None
    try:
        for name, config in configs.items():
            pending = _pending(config)
            log(f"{name}: run {config.run_id}: {pending} samples to generate "
                f"(n={config.samples}, T={config.sampling.temperature}, top_p={config.sampling.top_p}, "
                f"max_tokens={config.sampling.max_tokens})")
            if pending and engine is None:
                # One engine for all benchmarks: vLLM starts once per process. The transformers
                # backend reads its stop and pad tokens from the tokenizer when it starts.
                tokenizer = load_tokenizer(config, required=config.backend != "openai")
                engine = make_backend(config, None, tokenizer)
                engine.start()
            summary = run_generation(config, engine=engine, progress=options.progress)
            result.samples_written += summary.samples_written
            result.errors += summary.errors
    finally:
        if engine is not None:
            engine.close()
    return result


def score(run_ids: list[str]) -> tuple[list[dict], bool, list[str]]:
    """Step 3: build the eval marts (and what they read) and return eval_scores for ``run_ids``."""
    import duckdb

    from warehouse import db
    from warehouse.curate import curate

    built = curate(select=[f"+{m}" for m in EVAL_MARTS], test=False, quiet=True)
    con = db.connect(read_only=True)
    try:
        placeholders = ", ".join("?" for _ in run_ids)
        # upstream (the paper's scoring) before strict
        cursor = con.execute(f"SELECT * FROM eval_scores WHERE run_id IN ({placeholders}) "
                             "ORDER BY benchmark, scoring DESC", list(run_ids))
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    except duckdb.Error:  # the mart is missing when the build failed
        rows = []
    finally:
        con.close()
    return rows, built.success, built.failures


def evaluate(options: EvalOptions, log=print) -> EvalResult:
    result = generate(options, log)
    if options.score:
        result.scores, result.dbt_ok, result.dbt_failures = score(list(result.run_ids.values()))
    return result


def format_scores(rows: list[dict]) -> str:
    def pct(v):
        return "—" if v is None else f"{100 * v:.1f}"

    header = ["benchmark", "scoring", "model", "problems", "n"] + [h for h, _ in PRINTED] + ["tokens", "run"]
    table = [header]
    for r in rows:
        table.append([r["benchmark"], r["scoring"], r["model_name"] or "?", str(r["n_problems"]), str(r["n"])]
                     + [pct(r.get(col)) for _, col in PRINTED]
                     + ["—" if r["mean_completion_tokens"] is None else f"{r['mean_completion_tokens']:.0f}", r["run_id"]])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)


if __name__ == "__main__":  # pragma: no cover - `python -m evaluation.evaluate ...` = `reasonlite evaluate`
    from warehouse.cli import main

    sys.exit(main(["evaluate", *sys.argv[1:]]))
