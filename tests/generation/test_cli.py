"""`reasonlite generate` as a user runs it (real processes, real lake files): a dry run makes every
check the real run makes and writes nothing; bad SQL in the config is one line; CPU threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generation.backends.transformers_backend import SMALL_MACHINE_CORES, cpu_threads
from tests.generation.conftest import write_problems
from warehouse import lake

REPO = Path(__file__).resolve().parents[2]
REASONLITE = Path(sys.executable).with_name("reasonlite")


def reasonlite(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(REASONLITE), *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture
def tiny_config(lake_env, tiny_llama_dir, tmp_path) -> Path:
    write_problems("bench", ["What is 1 + 1?", "What is 2 + 3?"], ["2", "5"])
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "run_id": "tiny-run", "model": str(tiny_llama_dir), "backend": "transformers", "samples": 1,
        "problems": {"sources": ["bench"]}, "sampling": {"max_tokens": 4, "temperature": 0.8},
        "transformers": {"max_model_len": 512},
    }))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("key, value", [("sampling.temperature", "0.3"), ("model", "TINY_QWEN3")])
def test_dry_run_refuses_what_the_real_run_refuses(tiny_config, tiny_qwen3_dir, key, value):
    override = f"{key}={tiny_qwen3_dir if value == 'TINY_QWEN3' else value}"
    first = reasonlite("generate", "--config", str(tiny_config), "--no-progress")
    assert first.returncode == 0, first.stderr
    dry = reasonlite("generate", "--config", str(tiny_config), "--set", override, "--dry-run")
    real = reasonlite("generate", "--config", str(tiny_config), "--set", override, "--no-progress")
    for result in (dry, real):
        assert f"{key}: run tiny-run already has samples" in one_line_error(result)
    # Unchanged settings: the dry run predicts a resume with nothing left to do.
    again = reasonlite("generate", "--config", str(tiny_config), "--dry-run")
    assert again.returncode == 0 and "2 problems, 2 samples done, 0 to generate" in again.stdout


def test_dry_run_refuses_an_empty_selection_like_the_real_run(tiny_config):
    for extra in (["--dry-run"], ["--no-progress"]):
        result = reasonlite("generate", "--config", str(tiny_config), "--set", "problems.filter=1 = 0", *extra)
        assert "problems: the selection is empty" in one_line_error(result)


def test_a_named_source_without_problems_is_an_error_naming_it(tiny_config):
    """`bench` has problems, `omr` has none: the run must not go on with `bench` alone (#20 item 1)."""
    for extra in (["--dry-run"], ["--no-progress"]):
        result = reasonlite("generate", "--config", str(tiny_config), "--set", "problems.sources=[bench, omr, gsm]",
                            *extra)
        line = one_line_error(result)
        assert "problems.sources: no problems in the lake for source 'omr', 'gsm'" in line, line
        assert "the lake has: bench" in line
    assert not lake.table_dir("generations").exists()


def test_paper_teacher_dry_run_works_without_the_model(lake_env):
    """A GPU run is planned where gpt-oss-120b is not: a warning, then the selection (#20 item 1)."""
    write_problems("polaris", ["What is 1 + 1?", "What is 2 + 3?"], ["2", "5"])
    write_problems("openmathreasoning", ["What is 3 + 4?"], ["7"])
    for level in ("medium", "high"):
        result = reasonlite("generate", "--config", f"generation/configs/teacher_gptoss120b_{level}.yaml", "--dry-run",
                            env={"HF_HUB_OFFLINE": "1"})
        assert result.returncode == 0, result.stderr
        warning = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(warning) == 1 and warning[0].startswith("generate: warning: "), result.stderr
        assert "model: 'openai/gpt-oss-120b' not found" in warning[0]
        assert result.stdout.rstrip().endswith("shard 0/1: 3 problems, 0 samples done, 96 to generate")
        assert json.loads(result.stdout[: result.stdout.rindex("}") + 1])["reasoning_level"] == level
    assert not lake.table_dir("generations").exists()


def test_bad_problem_filter_is_one_line_naming_the_key(tiny_config):
    for extra in (["--dry-run"], ["--no-progress"]):
        result = reasonlite("generate", "--config", str(tiny_config), "--set", "problems.filter=nosuchcol = 1", *extra)
        line = one_line_error(result)
        assert "problems: selection query failed" in line and "nosuchcol" in line, line
    assert not lake.table_dir("generations").exists()


def test_dry_run_never_converts_the_model(lake_env, tmp_path):
    """cpu_smollm2.yaml names SmolLM2 under the models folder; with the folder empty, the real run
    converts 540 MB from the wheel first. A dry run says so and writes nothing."""
    models = tmp_path / "models"
    models.mkdir()
    write_problems("amc23", ["What is 1 + 1?"], ["2"])
    result = reasonlite("generate", "--config", "generation/configs/cpu_smollm2.yaml", "--dry-run",
                        env={"REASONLITE_MODELS": str(models)})
    assert result.returncode == 0, result.stderr
    assert "the real run converts SmolLM2-135M-Instruct" in result.stderr
    assert "1 problems, 0 samples done, 4 to generate" in result.stdout
    assert list(models.iterdir()) == []


def test_cpu_threads_default_to_one_on_small_machines(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)))
    assert cpu_threads(None) == 1
    assert cpu_threads(2) == 2  # transformers.threads wins
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(SMALL_MACHINE_CORES + 1)))
    assert cpu_threads(None) is None  # larger machines: torch's own default
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads(None) is None  # the user's OMP_NUM_THREADS is what torch already uses


def test_transformers_backend_sets_the_threads_it_chose(lake_env, tiny_llama_dir, monkeypatch):
    import torch

    from generation.config import config_from_dict
    from generation.runner import run_generation

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    write_problems("bench", ["What is 1 + 1?"], ["2"])
    before = torch.get_num_threads()
    config = config_from_dict({
        "run_id": "threads", "model": str(tiny_llama_dir), "backend": "transformers",
        "problems": {"sources": ["bench"]}, "sampling": {"max_tokens": 2}, "transformers": {"threads": 3},
    }, "threads.yaml")
    try:
        assert run_generation(config, progress=False).samples_written == 1
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
