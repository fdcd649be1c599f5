"""`reasonlite train`: one SFT stage from a YAML config, on one device or launched with accelerate.

With ``--gpus`` x ``--nodes`` > 1 this process does not train: it runs ``accelerate launch`` with the
shipped config for ``distributed`` (ddp, zero1, zero3), which starts one worker per GPU running this
same command; workers see ``LOCAL_RANK`` and train. For several nodes run the same command on every
node with ``MACHINE_RANK`` (0..N-1), ``MASTER_ADDR``, ``MASTER_PORT`` and one ``REASONLITE_RUN_ID``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from warehouse.errors import UserError


def in_distributed_worker() -> bool:
    return "LOCAL_RANK" in os.environ


def launch_command(cfg: dict, args, run_id: str) -> list[str]:
    """The `accelerate launch` command line that runs this stage on gpus x nodes processes."""
    from training.config import ACCELERATE_DIR

    config_file = ACCELERATE_DIR / f"{cfg['distributed']}.yaml"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(config_file),
        "--num_processes", str(args.gpus * args.nodes),
        "--num_machines", str(args.nodes),
    ]
    if args.nodes > 1:
        master = os.environ.get("MASTER_ADDR")
        if not master:
            raise UserError("--nodes > 1: set MASTER_ADDR (the rank-0 node's address) and MACHINE_RANK on every node")
        cmd += [
            "--machine_rank", os.environ.get("MACHINE_RANK", "0"),
            "--main_process_ip", master,
            "--main_process_port", os.environ.get("MASTER_PORT", "29500"),
        ]
    cmd += ["-m", "warehouse.cli", "train", "--config", cfg["config_path"], "--run-id", run_id,
            "--gpus", str(args.gpus), "--nodes", str(args.nodes)]
    for item in args.set or []:
        cmd += ["--set", item]
    return cmd


def _handle_train(args) -> int:
    from training.config import describe_batch, load_config

    cfg = load_config(args.config, args.set, gpus=args.gpus, nodes=args.nodes)
    world = args.gpus * args.nodes
    launched = os.environ.get("WORLD_SIZE")
    if in_distributed_worker() and launched and int(launched) != world:
        # The accumulation was derived for --gpus x --nodes; another process count would change the batch.
        raise UserError(f"train: this worker was launched with WORLD_SIZE={launched}, but --gpus {args.gpus} x "
                        f"--nodes {args.nodes} = {world}; launch it with `reasonlite train --gpus G --nodes N`")
    from training.train import preflight

    preflight(cfg)  # the checks the real run makes before it loads anything, also before a launch
    if not in_distributed_worker():
        print(f"train: {describe_batch(cfg)}", file=sys.stderr)
    run_id = args.run_id or os.environ.get("REASONLITE_RUN_ID")
    if world > 1 and not in_distributed_worker():
        if args.nodes > 1 and not run_id:
            raise UserError("--nodes > 1: set REASONLITE_RUN_ID to the same value on every node")
        if not run_id:
            from training.train import new_run_id

            run_id = new_run_id(cfg["stage"])
        cmd = launch_command(cfg, args, run_id)
        if args.dry_run:
            print(shlex.join(cmd))
            return 0
        print(f"train: launching {world} processes: {shlex.join(cmd)}", file=sys.stderr)
        return subprocess.call(cmd)
    if args.dry_run:
        print(json.dumps(cfg, indent=2, sort_keys=True, default=str))
        return 0
    from training.train import run

    run(cfg, run_id=run_id)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="supervised fine-tuning of one stage (TRL SFTTrainer) on the exported dataset",
        description="Train one SFT stage from a YAML config (training/configs/*.yaml) and record it in the "
        "lake's training_runs. Stage 2 configs start from '@stage1': the latest finished stage-1 run.",
    )
    p.add_argument("--config", required=True, help="YAML config, e.g. training/configs/stage1.yaml")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a config value (dotted keys, YAML values), e.g. --set model=/path --set sft.max_steps=5",
    )
    p.add_argument("--gpus", type=int, default=1, help="GPUs per node (>1 launches with accelerate)")
    p.add_argument("--nodes", type=int, default=1, help="nodes (>1 launches with accelerate; see MASTER_ADDR)")
    p.add_argument("--run-id", help="training run id (default: <stage>-<time>-<random>; or REASONLITE_RUN_ID)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config (or launch command) and stop")
    p.set_defaults(handler=_handle_train)
