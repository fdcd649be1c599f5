"""Every command the READMEs show, walked as written, so documentation and behaviour cannot drift.

`documented_commands()` reads the shell blocks of README.md, generation/README.md and
dbt_project/README.md. Each command must match exactly one entry of WALK (and each entry a
command): a new example without a check fails `test_every_documented_command_is_walked`.

`test_readme_walkthrough` then runs them in order in a fresh lake, with the shipped SmolLM2-135M
on the CPU, and checks what each sentence promises. Two kinds of entries:

* run: the command as written (the sampling ones with `problems.limit` added so the walk takes
  minutes, not hours; nothing else changes);
* GPU-only (gpt-oss-120b, Qwen3 on 32 GPUs, the Hub): the command is parsed by the real CLI, its
  config loads, and a `--dry-run` gets as far as this machine allows (the missing model, the
  accelerate command line that the launch would run).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "generation/README.md", "dbt_project/README.md")
PROGRAMS = ("reasonlite", "make", "python", "export")
REASONLITE = Path(sys.executable).with_name("reasonlite")
# What makes the sampling examples small enough for a shared 2-core CPU (the first problems only;
# sampling settings stay as written, so later commands meet the run they document).
SMALL = ["--set", "problems.limit=2", "--no-progress"]


def shell_blocks(markdown: str) -> list[list[str]]:
    """The lines of each fenced block that is shell (```bash, ```sh or no language)."""
    blocks, current = [], None
    for line in markdown.splitlines():
        if line.startswith("```"):
            if current is None:
                current = [] if line[3:].strip() in ("", "bash", "sh") else False
            else:
                if current is not False:
                    blocks.append(current)
                current = None
        elif isinstance(current, list):
            current.append(line)
    return blocks


def _count(stdout: str) -> int:
    """The number in `reasonlite sql`'s one-cell table."""
    return int(re.findall(r"│\s*(\d+)\s*│", stdout)[-1])


def documented_commands() -> list[tuple[str, list[str]]]:
    """(doc, argv) for every command in the docs' code blocks; `a && b` is two commands."""
    found = []
    for doc in DOCS:
        for block in shell_blocks((REPO / doc).read_text()):
            pending = ""
            for line in block:
                pending = f"{pending}\n{line}" if pending else line
                if pending.endswith("\\"):
                    pending = pending[:-1]
                    continue
                try:
                    tokens = shlex.split(pending, comments=True)
                except ValueError:  # a quote still open: the command goes on
                    continue
                pending = ""
                command: list[str] = []
                for token in [*tokens, "&&"]:
                    if token != "&&":
                        command.append(token)
                    elif command:
                        if command[0] in PROGRAMS:
                            found.append((doc, command))
                        command = []
    return found


# (pattern over " ".join(argv), how it is walked). Order = the walkthrough's order of checks.
WALK = {
    r"make demo": "tests/test_demo.py runs the quick demo (make test-demo)",
    r"make test": "this test is part of it",
    r"reasonlite ingest \.\./shared/benchmarks/aime24\.jsonl --source aime24": "run: 30 problems, again 30",
    r"reasonlite sql select count\(\*\) from problems": "run: prints 30",
    r"reasonlite ingest POLARIS_ID .*": "GPU recipe: parsed (a Hub dataset id)",
    r"reasonlite ingest nvidia/OpenMathReasoning .*": "GPU recipe: parsed (a Hub dataset)",
    r"reasonlite generate --config generation/configs/teacher_gptoss120b_(medium|high)\.yaml --shard \d+/\d+":
        "GPU: the config loads, a dry run warns about the missing gpt-oss-120b, then names the missing sources",
    r"reasonlite curate": "run: dbt build, models and tests",
    r"reasonlite curate --vars-profile paper": "run by tests/test_recipe_contract.py (upstream's vote semantics)",
    r"reasonlite export": "run: refused, the benchmark-only samples give no SFT rows (as generation/README says)",
    r"reasonlite publish --repo-id ORG/reasonlite-sft": "GPU recipe: parsed (needs the Hub)",
    r"export REASONLITE_RUN_ID=.*": "run: the env of the multi-node launch",
    r"make train-stage[12] GPUS=8 NODES=4": "run: make -n, then the launch as a dry run on node 0",
    r"reasonlite evaluate --model CHECKPOINT .*": "GPU: parsed; a dry evaluate stops at the missing model",
    r"reasonlite report": "run: a report from curation alone",
    r"reasonlite ingest \.\./shared/benchmarks/amc23\.jsonl --source amc23": "run",
    r"reasonlite generate --config generation/configs/cpu_smollm2\.yaml": "run (small): SmolLM2 samples AMC23",
    r"reasonlite generate --config generation/configs/cpu_smollm2\.yaml --set run_id=cpu-smollm2-t06 .*":
        "run as a dry run: a new run id is needed; without it the same command is refused",
    r"reasonlite generate --config FILE --dry-run": "run: the resolved config and what is left, nothing written",
    r"python -c .*write_splits.*": "run",
    r"reasonlite ingest words/train\.jsonl .*": "run",
    r"reasonlite generate --config generation/configs/cpu_smollm2\.yaml --set run_id=cpu-smollm2-words .*":
        "run (small)",
    r"reasonlite curate --vars \{require_reasoning: false.*": "run",
    r"reasonlite sql select stratum, count\(\*\) from sft_examples group by all": "run; no AMC23 problem in SFT",
    r"reasonlite sql\s+WITH iv AS .*": "run: throughput per run",
    r"export REASONLITE_LAKE=/shared/reasonlite/lake": "Slurm script: a shared filesystem",
    r"reasonlite generate --config generation/configs/teacher_gptoss120b_medium\.yaml --shard \$\{SLURM.*":
        "Slurm script: the shard argument parses for every array task",
    r"reasonlite curate --vars \{vote_ratio: 0\.8, min_votes: 3\}": "run: the vars reach curation_vars.json",
    r"reasonlite curate --full-refresh": "run",
    r"reasonlite curate --no-test": "run: dbt run",
    r"reasonlite curate --docs": "run: dbt docs generate",
    r"reasonlite sql select \* from curation_funnel": "run",
}


def _entry(argv: list[str]) -> str:
    text = " ".join(argv)
    matches = [p for p in WALK if re.fullmatch(p, text, re.S)]
    assert len(matches) == 1, f"{text[:120]!r} matches {len(matches)} WALK entries: {matches}"
    return matches[0]


def test_every_documented_command_is_walked():
    commands = documented_commands()
    assert len(commands) > 25
    used = {_entry(argv) for _, argv in commands}
    assert set(WALK) - used == set(), "WALK entries no README shows any more"


def test_every_documented_reasonlite_command_parses():
    """Flags the READMEs show exist (GPU examples included), with placeholders as they are."""
    from warehouse.cli import build_parser

    parser = build_parser()
    for doc, argv in documented_commands():
        if argv[0] == "reasonlite":
            args = parser.parse_args(argv[1:])
            assert args.command == argv[1], (doc, argv)


# --------------------------------------------------------------------------------- the walkthrough


def _run(argv: list[str], env: dict, cwd: Path = REPO, ok: bool = True) -> subprocess.CompletedProcess:
    program = [str(REASONLITE), *argv[1:]] if argv[0] == "reasonlite" else \
        [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    result = subprocess.run(program, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if ok:
        assert result.returncode == 0, f"{' '.join(argv)[:200]}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _doc(pattern: str) -> list[str]:
    """The documented command for a WALK entry (the first, when several share it)."""
    return next(argv for _, argv in documented_commands() if _entry(argv) == pattern)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two SmolLM2 runs and seven dbt builds: 20+ min on a busy 2-core machine
def test_readme_walkthrough(lake_env, tmp_path):
    from warehouse import lake

    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    sql = "reasonlite sql select count\\(\\*\\) from problems"

    # README: ingest AIME24; 30 problems; ingesting again keeps 30.
    ingest = _doc(r"reasonlite ingest \.\./shared/benchmarks/aime24\.jsonl --source aime24")
    _run(ingest, env)
    assert _count(_run(_doc(sql), env).stdout) == 30
    _run(ingest, env)
    assert _count(_run(_doc(sql), env).stdout) == 30

    # generation/README: SmolLM2 samples AMC23 (converted on first use; cached in the models folder).
    _run(_doc(r"reasonlite ingest \.\./shared/benchmarks/amc23\.jsonl --source amc23"), env)
    sample = _doc(r"reasonlite generate --config generation/configs/cpu_smollm2\.yaml")
    done = _run(sample + SMALL, env)
    assert "cpu-smollm2-amc23 shard 0/1: 2 problems" in done.stdout and "wrote 8" in done.stdout
    manifest = lake.read_manifest("cpu-smollm2-amc23")
    assert manifest["status"] == "complete" and manifest["model"].endswith("SmolLM2-135M-Instruct")

    # Another temperature is another run: with its run id a dry run plans 8 samples per problem;
    # the same settings under the first run's id are refused (dry or not), as the README says.
    t06 = _doc(r"reasonlite generate --config generation/configs/cpu_smollm2\.yaml --set run_id=cpu-smollm2-t06 .*")
    planned = _run(t06 + ["--set", "problems.limit=2", "--dry-run"], env)
    assert "2 problems, 0 samples done, 16 to generate" in planned.stdout
    at = t06.index("run_id=cpu-smollm2-t06")
    without_id = t06[: at - 1] + t06[at + 1:]
    assert "sampling.temperature: run cpu-smollm2-amc23 already has samples" in \
        _one_line_error(_run(without_id + ["--dry-run"], env, ok=False))

    # `--dry-run`: the resolved config and what is left; nothing is written.
    dry = _doc(r"reasonlite generate --config FILE --dry-run")
    dry = [("generation/configs/cpu_smollm2.yaml" if a == "FILE" else a) for a in dry]
    parts = sorted(lake.lake_root().rglob("*.parquet"))
    shown = _run(dry, env)
    assert json.loads(shown.stdout[: shown.stdout.rindex("}") + 1])["run_id"] == "cpu-smollm2-amc23"
    assert "40 problems, 8 samples done, 152 to generate" in shown.stdout
    assert sorted(lake.lake_root().rglob("*.parquet")) == parts

    # GPU teacher configs: they load; a dry run warns about the model this machine lacks, then refuses
    # the selection, naming the paper's sources this lake has not ingested (tests/test_recipe_contract.py
    # walks them with those sources).
    for argv in (argv for _, argv in documented_commands()
                 if "teacher_gptoss120b" in " ".join(argv) and "SLURM" not in " ".join(argv)):
        result = _run(argv + ["--dry-run"], env, ok=False)
        warning, error = result.stderr.strip().splitlines()
        assert result.returncode == 2 and "model: 'openai/gpt-oss-120b' not found" in warning, result.stderr
        assert "no problems in the lake for source 'polaris', 'openmathreasoning'" in error, error
    slurm = _doc(r"reasonlite generate --config generation/configs/teacher_gptoss120b_medium\.yaml --shard \$\{SLURM.*")
    for task in range(16):
        from generation.runner import parse_shard

        shard = slurm[-1].replace("${SLURM_ARRAY_TASK_ID}", str(task)).replace("${SLURM_ARRAY_TASK_COUNT}", "16")
        assert parse_shard(shard) == (task, 16)

    # A training source: the demo's word problems, sampled and curated with a plain chat model's rules.
    words_dir = tmp_path / "walk"
    words_dir.mkdir()
    _run(_doc(r"python -c .*write_splits.*"), env, cwd=words_dir)
    _run(_doc(r"reasonlite ingest words/train\.jsonl .*"), env, cwd=words_dir)
    _run(_doc(r"reasonlite generate --config generation/configs/cpu_smollm2\.yaml --set run_id=cpu-smollm2-words .*")
         + SMALL, env)
    curated = _run(_doc(r"reasonlite curate --vars \{require_reasoning: false.*"), env)
    assert "published build" in curated.stdout
    strata = _run(_doc(r"reasonlite sql select stratum, count\(\*\) from sft_examples group by all"), env)
    assert strata.returncode == 0
    # Curation never trains on a benchmark problem: none of the AMC23 samples is an SFT example.
    amc = _run(["reasonlite", "sql", "select count(*) from sft_examples where problem_id like 'amc23:%'"], env)
    assert _count(amc.stdout) == 0

    # The throughput query of generation/README: one row per run, tokens per busy second.
    throughput = _run(_doc(r"reasonlite sql\s+WITH iv AS .*") + ["--format", "json"], env)
    rows = [json.loads(line) for line in throughput.stdout.splitlines() if line.startswith("{")]
    assert {r["run_id"] for r in rows} == {"cpu-smollm2-amc23", "cpu-smollm2-words"}
    assert all(r["samples"] == 8 and r["tokens_per_s"] > 0 for r in rows)

    # dbt_project/README: each curate variant does what its comment says.
    built = _run(_doc(r"reasonlite curate"), env)
    assert "dbt build:" in built.stdout and "published build" in built.stdout
    _run(_doc(r"reasonlite curate --vars \{vote_ratio: 0\.8, min_votes: 3\}"), env)
    used = json.loads((lake.exports_dir() / "curation_vars.json").read_text())
    assert (used["vote_ratio"], used["min_votes"]) == (0.8, 3)
    _run(_doc(r"reasonlite curate --full-refresh"), env)
    assert "dbt run:" in _run(_doc(r"reasonlite curate --no-test"), env).stdout
    docs = _run(_doc(r"reasonlite curate --docs"), env)
    assert "docs: " in docs.stdout and (Path(env["DBT_TARGET_PATH"]) / "catalog.json").exists()
    funnel = _run(_doc(r"reasonlite sql select \* from curation_funnel"), env)
    assert "samples" in funnel.stdout

    # README: the curated samples are all AMC23 (a benchmark) or the few kept words: `export` either
    # publishes the kept words or says every stratum is empty, as generation/README explains.
    exported = _run(_doc(r"reasonlite export"), env, ok=False)
    kept = _count(_run(["reasonlite", "sql", "select count(*) from sft_examples"], env).stdout)
    if kept:
        assert exported.returncode == 0, exported.stderr
    else:
        assert "every SFT stratum is empty" in _one_line_error(exported)
    assert _run(_doc(r"reasonlite report"), env).stdout.startswith("report: ")

    # Multi-node training: the documented env on node 0, `make` runs `reasonlite train`, whose dry
    # run prints the accelerate launch with that rank, address and the shared run id.
    exports = [argv for _, argv in documented_commands() if _entry(argv) == r"export REASONLITE_RUN_ID=.*"]
    node_env = dict(env)
    for argv in exports[:1]:
        node_env.update(item.split("=", 1) for item in argv[1:])
    make = _doc(r"make train-stage[12] GPUS=8 NODES=4")
    recipe = _run(["make", "-n", *make[1:]], node_env).stdout
    train = next(line for line in recipe.splitlines() if " train --config training/configs/stage1.yaml" in line)
    argv = shlex.split(train)
    launch = _run(["reasonlite", *argv[argv.index("train"):], "--dry-run"], node_env).stdout.split()
    assert launch[launch.index("--num_processes") + 1] == "32" and launch[launch.index("--machine_rank") + 1] == "0"
    assert launch[launch.index("--main_process_ip") + 1] == "node0.cluster"
    assert launch[launch.index("--run-id") + 1] == "stage1-v1"

    # The GPU evaluation: the documented flags parse; with a placeholder model it stops before any work.
    evaluate = _doc(r"reasonlite evaluate --model CHECKPOINT .*")
    line = _one_line_error(_run(evaluate, env, ok=False))
    assert "'CHECKPOINT' not found (no such folder)" in line, line
