"""Config loading, overrides and the errors a user sees before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from generation.config import DEFAULT_TEMPLATE, config_from_dict, load_config
from generation.runner import parse_shard, preflight, sample_seed, shard_of
from warehouse.cli import main
from warehouse.errors import UserError

CONFIGS = Path(__file__).resolve().parents[2] / "generation" / "configs"


def test_shipped_configs_load_and_match_the_paper():
    medium = load_config(CONFIGS / "teacher_gptoss120b_medium.yaml")
    high = load_config(CONFIGS / "teacher_gptoss120b_high.yaml")
    for config, level in ((medium, "medium"), (high, "high")):
        assert (config.samples, config.sampling.temperature, config.sampling.top_p, config.sampling.max_tokens) == (
            32, 0.8, 1.0, 30000)
        assert config.reasoning_level == level and config.prompt.format == "harmony_upstream"
        assert config.sampling.seed_policy == "sample_idx" and config.problems.sources == ["polaris", "openmathreasoning"]
    turbo, final = load_config(CONFIGS / "eval_turbo.yaml"), load_config(CONFIGS / "eval_final.yaml")
    assert (turbo.sampling.temperature, turbo.sampling.top_p, turbo.samples, turbo.purpose) == (0.6, 0.95, 16, "eval")
    assert (final.sampling.temperature, final.sampling.top_p, final.vllm.max_model_len) == (1.0, 0.98, 65536)
    cpu = load_config(CONFIGS / "cpu_smollm2.yaml")
    assert cpu.backend == "vllm" and cpu.samples == 4 and cpu.model.endswith("SmolLM2-135M-Instruct")
    fleet = load_config(CONFIGS / "teacher_gptoss120b_fleet.yaml")
    # One run id with the medium config: the samples of both must be alike (resume refuses otherwise).
    assert fleet.backend == "openai" and fleet.run_id == medium.run_id and fleet.fingerprint() == medium.fingerprint()
    assert cpu.prompt.template == DEFAULT_TEMPLATE


def test_overrides_are_typed_and_dotted(tmp_path):
    config = load_config(CONFIGS / "cpu_smollm2.yaml", ["samples=8", "sampling.temperature=0.6",
                                                         "problems.sources=amc23,aime24", "problems.limit=3"])
    assert config.samples == 8 and config.sampling.temperature == 0.6
    assert config.problems.sources == ["amc23", "aime24"] and config.problems.limit == 3


@pytest.mark.parametrize(
    ("data", "overrides", "message"),
    [
        ({"sampling": {"temprature": 1}}, [], "unknown config key 'sampling.temprature' (did you mean 'sampling.temperature'?)"),
        ({"modle": "x"}, [], "unknown config key 'modle'"),
        ({}, ["vllm.gpu_mem=0.5"], "unknown config key 'vllm.gpu_mem'"),
        ({"samples": "many"}, [], "samples: expected int"),
        ({"backend": "tgi"}, [], "backend: 'tgi' is not one of"),
        ({"sampling": {"top_p": 0}}, [], "sampling.top_p: must be in (0, 1]"),
        ({"prompt": {"template": "no marker"}}, [], "prompt.template: must contain {problem}"),
        ({"backend": "openai"}, [], "openai.endpoints: the openai backend needs"),
        ({"run_id": "a/b"}, [], "run_id: 'a/b' must be"),
    ],
)
def test_bad_config_names_the_key(data, overrides, message):
    base = {"run_id": "r", "model": "m"}
    base.update(data)
    with pytest.raises(UserError) as err:
        config_from_dict(base, "run.yaml", overrides)
    assert message in str(err.value) and str(err.value).startswith("run.yaml: ")


def test_missing_model_is_refused_before_work(tmp_path):
    config = config_from_dict({"run_id": "r", "model": str(tmp_path / "nope"), "backend": "vllm"}, "run.yaml")
    with pytest.raises(UserError, match="model: .*nope.* not found"):
        preflight(config)
    config = config_from_dict({"run_id": "r", "model": "no-such-org/no-such-model", "backend": "transformers"})
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        preflight(config)


def test_cli_errors_are_one_line(tmp_path, capsys, lake_env):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_id": "r", "model": "m", "sampling": {"tempreature": 0.5}}))
    assert main(["generate", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("reasonlite generate: error: " + str(path) +
                   ": unknown config key 'sampling.tempreature' (did you mean 'sampling.temperature'?)")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"run_id": "r", "model": str(tmp_path / "missing"), "backend": "transformers"}))
    assert main(["generate", "--config", str(good)]) == 2
    assert "model: " in capsys.readouterr().err
    assert main(["generate", "--config", str(good), "--shard", "4/4"]) == 2
    assert "need 0 <= i < N" in capsys.readouterr().err
    assert main(["generate", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_shards_partition_problems_stably():
    ids = [f"src:{i}" for i in range(2000)]
    shards = [shard_of(p, 4) for p in ids]
    assert set(shards) == {0, 1, 2, 3}
    assert all(300 < shards.count(k) < 700 for k in range(4))  # spread, not lumped
    assert shard_of("polaris:17", 8) == shard_of("polaris:17", 8)
    assert parse_shard("2/8") == (2, 8)
    with pytest.raises(UserError):
        parse_shard("8/8")


def test_seeds_are_per_sample_and_stable():
    config = config_from_dict({"run_id": "r", "model": "m"})
    seeds = [sample_seed(config, "p:1", k) for k in range(32)]
    assert seeds == [seeds[0] + k for k in range(32)]  # vLLM's child k of a seeded request gets seed + k
    assert sample_seed(config, "p:2", 0) != seeds[0]
    assert sample_seed(config_from_dict({"run_id": "r", "model": "m", "sampling": {"seed": 1}}), "p:1", 0) != seeds[0]
    assert sample_seed(config_from_dict({"run_id": "r", "model": "m", "sampling": {"seed_policy": "none"}}), "p:1", 0) is None


def test_upstream_seed_policy_is_the_sample_index():
    """Upstream's teacher sends seed k with sample k of every problem (utils/mode_handler.py:108), its
    evaluation 42 + k (eval/eval.py:610)."""
    config = config_from_dict({"run_id": "r", "model": "m", "sampling": {"seed_policy": "sample_idx"}})
    assert [sample_seed(config, pid, k) for pid in ("p:1", "q:2") for k in range(3)] == [0, 1, 2, 0, 1, 2]
    config = config_from_dict({"run_id": "r", "model": "m", "sampling": {"seed_policy": "sample_idx", "seed": 42}})
    assert [sample_seed(config, pid, k) for pid in ("p:1", "q:2") for k in range(2)] == [42, 43, 42, 43]
