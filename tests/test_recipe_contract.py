"""The README's "The real recipe on GPUs", walked on the CPU command by command (#20).

The commands are read from the README's code block, so a change there is a change here. Each runs as
written in a fresh lake, with three kinds of stand-ins for what this machine lacks:

* the public datasets: small local files with the real datasets' column names (Polaris: `problem`,
  `answer`, `difficulty`; OpenMathReasoning: `problem`, `expected_answer`, `generated_solution`,
  `problem_type`, `problem_source`, `inference_mode`, ..., several rows per problem, as a local dataset
  folder with its `cot` split) take the place of the Hub ids;
* GPUs and the Hub: `--dry-run` (`generate`, `publish`, `train` with its accelerate launch and one
  worker's resolved config); `evaluate` is resolved through the CLI's parser and the evaluation's own
  config builder, on the shared benchmark files;
* gpt-oss-120b's samples: after each teacher dry run, teacher-shaped Harmony completions written
  here (the label boxed in the final channel) come in through `reasonlite import-generations`, so
  `curate`, `export` and `report` run for real on them.

Asserted: every step selects a non-empty, de-duplicated set, and the resolved teacher, vote, train
and eval settings equal upstream's values from tests/fixtures/upstream_values.yaml (each with the
upstream file and line it comes from).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED_BENCHMARKS
from tests.test_readme_examples import shell_blocks

REPO = Path(__file__).resolve().parent.parent
REASONLITE = Path(sys.executable).with_name("reasonlite")
FIXTURE = REPO / "tests" / "fixtures" / "upstream_values.yaml"
SECTION = "## The real recipe on GPUs"
TEACHER_SAMPLES = 5  # per problem and run: enough for a vote (upstream: >= 4 votes, >= 90 %)


# ------------------------------------------------------------------------------- the README's block


def recipe_commands(markdown: str) -> list[list[str]]:
    """The commands of the recipe section's shell block, in order; `a && b` is two commands."""
    section = markdown[markdown.index(SECTION):]
    section = section[: section.find("\n## ", len(SECTION))]
    (block,) = shell_blocks(section)
    commands, pending = [], ""
    for line in block:
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        tokens, pending = shlex.split(pending, comments=True), ""
        command: list[str] = []
        for token in [*tokens, "&&"]:
            if token != "&&":
                command.append(token)
            elif command:
                commands.append(command)
                command = []
    return commands


def test_the_recipe_block_is_found_and_parsed():
    commands = recipe_commands((REPO / "README.md").read_text())
    programs = [" ".join(c[:2]) for c in commands]
    for expected in ("reasonlite ingest", "reasonlite generate", "reasonlite curate", "reasonlite export",
                     "make train-stage1", "make train-stage2", "reasonlite evaluate", "reasonlite report"):
        assert expected in programs, (expected, programs)


# ------------------------------------------------------------------------------- fixture and values


def upstream_values() -> dict:
    return yaml.safe_load(FIXTURE.read_text())


def _lookup(resolved: dict, dotted: str):
    node = resolved
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"{dotted}: not in the resolved settings"
        node = node[part]
    return node


def assert_upstream(resolved: dict, entries: list[dict], what: str) -> None:
    """Each entry's value (or, where we deliberately differ, `ours`) is what the step resolved."""
    for entry in entries:
        assert entry.get("upstream"), f"{what}: {entry['key']}: the fixture must name upstream's file:line"
        expected = entry["ours"] if "ours" in entry else entry["value"]
        actual = _lookup(resolved, entry["key"])
        assert actual == expected, (f"{what}: {entry['key']} is {actual!r}; upstream has {entry['value']!r} "
                                    f"({entry['upstream']})")


def test_fixture_cites_upstream_for_every_value():
    values = upstream_values()
    entries = [e for section in ("vote",) for e in values[section]]
    entries += [e for group in values["teacher"].values() if isinstance(group, list) for e in group]
    entries += [e for group in (*values["train"].values(), *values["eval"].values()) for e in group]
    assert len(entries) > 50
    for entry in entries:
        path, _, lines = entry["upstream"].partition(":")
        assert path and lines and all(part.isdigit() for part in lines.split("-")), entry
        if "ours" in entry:
            assert entry.get("why"), f"{entry['key']}: a deliberate difference says why"


# ------------------------------------------------------------------------------- stand-in inputs


POLARIS_ROWS = [  # Polaris-Dataset-53K's columns: problem, answer, difficulty
    {"problem": f"Compute ${a} \\times {b} + {a}$.", "answer": str(a * b + a), "difficulty": f"{a % 8}/8"}
    for a, b in ((3, 4), (5, 6), (7, 8), (9, 2), (11, 3), (12, 5), (13, 7), (14, 2), (15, 4), (16, 3))
]
OMR_PROBLEMS = [  # (problem, expected_answer): each appears in several rows, one per generated solution
    (f"Find the remainder when ${n}^2$ is divided by $7$.", str(n * n % 7)) for n in (10, 12, 15, 19, 23, 26)
]


def write_polaris(folder: Path) -> Path:
    path = folder / "polaris.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in POLARIS_ROWS))
    return path


def write_openmathreasoning(folder: Path) -> Path:
    """A local copy of nvidia/OpenMathReasoning in the Hub's layout: data/<split>-NNNNN-of-NNNNN.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for problem, answer in OMR_PROBLEMS:
        for k in range(3):
            rows.append({
                "expected_answer": answer, "problem_type": "has_answer_extracted", "problem_source": "aops_c4_high_school_math",
                "generation_model": "DeepSeek-R1", "pass_rate_72b_tir": "0.5", "problem": problem,
                "generated_solution": f"<think>attempt {k}</think> The remainder is $\\boxed{{{answer}}}$.",
                "inference_mode": "cot", "used_in_kaggle": False,
            })
    root = folder / "OpenMathReasoning"
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "cot-00000-of-00001.parquet")
    return root


def teacher_completion(answer: str, level: str, k: int) -> str:
    """gpt-oss's output with special tokens kept: analysis channel, then the final channel."""
    steps = " ".join(f"Step {i}: check the arithmetic again." for i in range(3 if level == "medium" else 30))
    return (f"<|channel|>analysis<|message|>Sample {k}. {steps}<|end|><|start|>assistant<|channel|>final"
            f"<|message|>The answer is $\\boxed{{{answer}}}$.<|return|>")


def write_teacher_samples(folder: Path, config_path: Path, problems: list[tuple[str, str, str]]) -> tuple[Path, str]:
    """The samples the teacher run would have written, in the import format (prompt = what it would see)."""
    from generation.config import load_config
    from generation.prompts import PromptRenderer

    config = load_config(REPO / config_path)
    renderer = PromptRenderer(config, None)
    path = folder / f"{config.run_id}.jsonl"
    with path.open("w") as out:
        for problem_id, prompt, answer in problems:
            text = renderer.render(prompt).text
            for k in range(TEACHER_SAMPLES):
                completion = teacher_completion(answer, config.reasoning_level, k)
                out.write(json.dumps({
                    "problem_id": problem_id, "sample_idx": k, "prompt": text, "completion": completion,
                    "finish_reason": "stop", "reasoning_level": config.reasoning_level, "seed": k,
                    "prompt_tokens": len(text) // 4, "completion_tokens": len(completion) // 4,
                }) + "\n")
    return path, config.run_id


# ------------------------------------------------------------------------------- the walk


def _run(argv: list[str], env: dict, ok: bool = True) -> subprocess.CompletedProcess:
    program = [str(REASONLITE), *argv[1:]] if argv[0] == "reasonlite" else argv
    result = subprocess.run(program, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if ok:
        assert result.returncode == 0, f"{shlex.join(argv)[:300]}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _query(sql: str) -> list[tuple]:
    from warehouse import db

    con = db.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


class Walk:
    """What the steps found, for the checks of the later steps."""

    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env = tmp, env
        self.steps: list[str] = []
        self.values = upstream_values()
        self.inputs = {"polaris": write_polaris(tmp), "openmathreasoning": write_openmathreasoning(tmp)}
        self.teacher_runs: dict[str, str] = {}  # run id -> reasoning level

    # ingest: the Hub id becomes the local file of its preset; one problem per distinct problem text
    def ingest(self, argv: list[str]) -> None:
        preset, source = _flag(argv, "--preset"), _flag(argv, "--source")
        assert preset in self.inputs, f"{shlex.join(argv)}: no local stand-in for preset {preset!r}"
        local = [argv[0], argv[1], str(self.inputs[preset]), *argv[3:]]
        out = _run(local, self.env)
        distinct = len(POLARIS_ROWS) if preset == "polaris" else len(OMR_PROBLEMS)
        (count, prompts), = _query(f"SELECT count(*), count(DISTINCT prompt) FROM problems WHERE source = '{source}'")
        assert count == prompts == distinct, (f"{source}: {count} problems, {prompts} distinct, the file has "
                                              f"{distinct} distinct problems\n{out.stdout}{out.stderr}")
        self.steps.append(f"ingest {source}")

    # generate: a dry run (no GPU, no gpt-oss-120b here), then the teacher's samples come in by import
    def generate(self, argv: list[str]) -> None:
        from generation.runner import parse_shard, shard_of

        config_path = Path(_flag(argv, "--config"))
        result = _run([*argv, "--dry-run"], self.env)
        resolved = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
        teacher = self.values["teacher"]
        level = resolved["reasoning_level"]
        assert_upstream(resolved, teacher["common"] + teacher[level], f"{config_path} (teacher)")

        # The selection: every problem of the named sources, each once, split over the shards exactly.
        sources = resolved["problems"]["sources"]
        problems = _query("SELECT problem_id, prompt, expected_answer FROM problems WHERE source IN ("
                          + ", ".join(f"'{s}'" for s in sources) + ") ORDER BY problem_id")
        assert problems and len({p for p, _, _ in problems}) == len({p for _, p, _ in problems}) == len(problems)
        i, n = parse_shard(_flag(argv, "--shard") or "0/1")
        in_shard = sum(shard_of(p, n) == i for p, _, _ in problems)
        samples = resolved["samples"]
        assert f"shard {i}/{n}: {in_shard} problems, 0 samples done, {in_shard * samples} to generate" in result.stdout
        whole = _run([*argv[: argv.index("--shard")], "--dry-run"] if "--shard" in argv else [*argv, "--dry-run"],
                     self.env)
        assert f"shard 0/1: {len(problems)} problems, 0 samples done, {len(problems) * samples}" in whole.stdout
        assert "generate: warning: " in result.stderr  # the model is not on this machine; the plan still shows

        # The prompt the teacher sees is upstream's, character for character.
        from generation.config import load_config
        from generation.prompts import PromptRenderer

        config = load_config(REPO / config_path)
        wrapper = teacher["prompt_wrapper"]["value"]
        user_text = {e["key"]: e["value"] for e in teacher["common"]}["prompt.template"]
        problem = problems[0][1]
        expected = wrapper.replace("{reasoning_level}", level).replace("{prompt}", user_text.replace("{problem}", problem))
        assert PromptRenderer(config, None).render(problem).text == expected

        samples_file, run_id = write_teacher_samples(self.tmp, config_path, problems)
        _run(["reasonlite", "import-generations", str(samples_file), "--run-id", run_id,
              "--model", resolved["model"], "--reasoning-level", level], self.env)
        self.teacher_runs[run_id] = level
        self.steps.append(f"generate {level}")

    def curate(self, argv: list[str]) -> None:
        from warehouse import lake

        _run(argv, self.env)
        used = json.loads((lake.exports_dir() / "curation_vars.json").read_text())
        assert_upstream(used, self.values["vote"], "curate (vote)")
        runs = {r for (r,) in _query("SELECT DISTINCT run_id FROM generations")}
        assert set(self.teacher_runs) <= runs
        # One label per problem, or per problem and run when each run votes alone (upstream's vote_scope).
        key = "problem_id, vote_run_id" if used["vote_scope"] == "per_run" else "problem_id"
        (labels, distinct, voted), = _query(f"SELECT count(*), count(DISTINCT ({key})), "
                                           "count(*) FILTER (WHERE label_source = 'vote') FROM pseudo_labels")
        assert labels == distinct > 0 and voted > 0
        (kept, distinct), = _query("SELECT count(*), count(DISTINCT (run_id, problem_id, sample_idx)) FROM sft_examples")
        assert kept > 0 and kept == distinct
        strata = dict(_query("SELECT stratum, count(*) FROM sft_examples GROUP BY ALL"))
        assert set(strata) == {"short", "long"}, strata  # medium -> short CoT, high -> long CoT
        self.steps.append("curate")

    def export(self, argv: list[str]) -> None:
        from warehouse import hub

        _run(argv, self.env)
        for config in ("short_cot", "long_cot"):
            assert hub.config_files(hub.default_export_dir(), config), config
        self.steps.append("export")

    def publish(self, argv: list[str]) -> None:
        _run([*argv, "--dry-run"], self.env)
        self.steps.append("publish")

    def export_env(self, argv: list[str]) -> None:
        self.env.update(item.split("=", 1) for item in argv[1:])

    # make train-stageN: make -n shows the `reasonlite train` line; the launcher's dry run prints the
    # accelerate command and the batch; one worker's dry run (LOCAL_RANK set) prints its resolved config.
    def train(self, argv: list[str]) -> None:
        from training.data import data_files, export_path

        stage = argv[1].removeprefix("train-")
        recipe = _run(["make", "-n", *argv[1:]], self.env).stdout
        line = next(line for line in recipe.splitlines() if f" train --config training/configs/{stage}.yaml" in line)
        train = shlex.split(line)
        train = ["reasonlite", *train[train.index("train"):], "--dry-run"]
        launch = _run(train, self.env)
        command = launch.stdout.split()
        assert command[command.index("--num_processes") + 1] == "32"
        assert command[command.index("--run-id") + 1] == self.env["REASONLITE_RUN_ID"]
        worker = command[command.index("warehouse.cli") + 1:]
        resolved = json.loads(_run(["reasonlite", *worker, "--dry-run"],
                                   {**self.env, "LOCAL_RANK": "0", "WORLD_SIZE": "32"}).stdout)
        assert_upstream(resolved, self.values["train"][stage], f"{stage} (train)")
        assert f"global batch {resolved['batch']['global']}" in launch.stderr
        import pyarrow.parquet as pq

        files = data_files(export_path(resolved["data"]["export"]), resolved["data"]["config"])
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        assert rows > 0, f"{stage}: {resolved['data']['config']} is empty"
        self.steps.append(stage)

    # evaluate: GPU only; the CLI's own parser and config builder resolve each benchmark's run
    def evaluate(self, argv: list[str]) -> None:
        from evaluation.benchmarks import ingest_benchmark, parse_names
        from evaluation.evaluate import EvalOptions, _pending, build_config
        from warehouse.cli import build_parser

        args = build_parser().parse_args(argv[1:])
        benchmark_dir = args.benchmark_dir or str(SHARED_BENCHMARKS)  # offline copies of the Hub's
        options = EvalOptions(model=args.model, benchmarks=args.benchmarks, preset=args.preset,
                              benchmark_dir=benchmark_dir)
        names = parse_names(args.benchmarks, benchmark_dir)
        assert names == ["aime24", "aime25", "amc23"]
        for name in names:
            ingest_benchmark(name, benchmark_dir)
            config = build_config(options, name)
            assert_upstream(config.to_dict(), self.values["eval"]["common"] + self.values["eval"][args.preset],
                            f"evaluate --preset {args.preset}")
            (count, prompts), = _query(f"SELECT count(*), count(DISTINCT prompt) FROM problems WHERE source = '{name}'")
            assert count == prompts > 0 and _pending(config) == count * config.samples
        self.steps.append(f"evaluate {args.preset}")

    def report(self, argv: list[str]) -> None:
        assert _run(argv, self.env).stdout.startswith("report: ")
        self.steps.append("report")

    def step(self, argv: list[str]) -> None:
        kind = argv[0] if argv[0] == "export" else " ".join(argv[:2])
        handler = {
            "reasonlite ingest": self.ingest, "reasonlite generate": self.generate, "reasonlite curate": self.curate,
            "reasonlite export": self.export, "reasonlite publish": self.publish, "export": self.export_env,
            "make train-stage1": self.train, "make train-stage2": self.train, "reasonlite evaluate": self.evaluate,
            "reasonlite report": self.report,
        }.get(kind)
        assert handler is not None, f"the recipe has a step this walk does not know: {shlex.join(argv)}"
        handler(argv)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_readme_recipe_reproduces_upstream(lake_env, tmp_path, benchmarks_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    walk = Walk(tmp_path, env)
    for argv in recipe_commands((REPO / "README.md").read_text()):
        walk.step(argv)
    assert walk.steps == ["ingest polaris", "ingest openmathreasoning", "generate medium", "generate high", "curate",
                          "export", "publish", "stage1", "stage2", "evaluate final", "report"], walk.steps
