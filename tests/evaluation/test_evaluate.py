"""`reasonlite evaluate`: benchmark registry, run configs and ids, CLI errors, and one real
end-to-end evaluation of a tiny model with vLLM on CPU (resumed, queried, reported)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation import benchmarks
from evaluation.benchmarks import BENCHMARKS, gsm8k_final_answer, ingest_benchmark, parse_names
from evaluation.evaluate import EvalOptions, build_config, model_slug
from tests.conftest import MODEL_CACHE
from warehouse.errors import UserError

REPO = Path(__file__).resolve().parents[2]
REASONLITE = Path(sys.executable).with_name("reasonlite")

# ------------------------------------------------------------------------------------- registry


def test_parse_names_validates_and_dedupes():
    assert parse_names("aime24, AMC23,aime24") == ["aime24", "amc23"]
    with pytest.raises(UserError, match="unknown benchmark 'aime23'.*aime24, aime25, amc23, math500, gsm8k"):
        parse_names("aime23")
    with pytest.raises(UserError, match="at least one"):
        parse_names(" , ")


def test_private_benchmark_from_benchmark_dir(lake_env, tmp_path):
    (tmp_path / "heldout.jsonl").write_text('{"id": "h-0", "problem": "1+1?", "answer": "2"}\n')
    assert parse_names("heldout,amc23", tmp_path) == ["heldout", "amc23"]
    with pytest.raises(UserError, match="unknown benchmark 'nothere'.*in --benchmark-dir"):
        parse_names("nothere", tmp_path)
    assert ingest_benchmark("heldout", tmp_path).rows_written == 1


@pytest.mark.parametrize("text,expected", [
    ("She has 3 + 4 = 7 eggs.\n#### 7", "7"),
    ("#### 1,234", "1234"),
    ("so -12.5 dollars\n####  -12.5 ", "-12.5"),
    ("no marker here", "no marker here"),
    (None, None),
])
def test_gsm8k_answer_is_the_number_after_hashes(text, expected):
    assert gsm8k_final_answer(text) == expected


def test_ingest_from_benchmark_dir_is_idempotent(lake_env, benchmarks_dir):
    from warehouse import db

    first = ingest_benchmark("amc23", benchmarks_dir)
    again = ingest_benchmark("amc23", benchmarks_dir)
    assert (first.rows_written, again.rows_written, again.already_present) == (40, 0, 40)
    con = db.connect(marts=False)
    rows = con.execute("SELECT problem_id, source, expected_answer FROM problems ORDER BY "
                       "TRY_CAST(split_part(problem_id, ':', 2) AS INT) LIMIT 2").fetchall()
    assert rows == [("amc23:0", "amc23", "27"), ("amc23:1", "amc23", "36")]


def test_missing_benchmark_file_names_the_path(lake_env, tmp_path):
    with pytest.raises(UserError, match=r"aime25\.jsonl: no such file"):
        ingest_benchmark("aime25", tmp_path)


def test_hub_path_with_answer_transform_reads_a_dataset_folder(lake_env, tmp_path, monkeypatch):
    """The real path goes through datasets.load_dataset; a local dataset folder stands in for the
    hub repo (no network here). GSM8K's '#### N' answers become the label N."""
    from warehouse import db

    folder = tmp_path / "gsm8k"
    folder.mkdir()
    rows = [{"question": "Two plus two?", "answer": "2 + 2 = 4\n#### 4"},
            {"question": "A thousand and one?", "answer": "1000 + 1 = 1001\n#### 1,001"}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    local = dataclasses.replace(BENCHMARKS["gsm8k"], dataset_id=str(folder), config=None)
    monkeypatch.setitem(benchmarks.BENCHMARKS, "gsm8k", local)
    report = ingest_benchmark("gsm8k")
    assert report.rows_written == 2
    con = db.connect(marts=False)
    got = con.execute("SELECT problem_id, prompt, expected_answer FROM problems ORDER BY problem_id").fetchall()
    assert got == [("gsm8k:0", "Two plus two?", "4"), ("gsm8k:1", "A thousand and one?", "1001")]


# ---------------------------------------------------------------------------- configs and ids


def test_model_slug():
    assert model_slug("/ckpt/stage1/checkpoint-500/") == "stage1-checkpoint-500"
    assert model_slug("Qwen/Qwen3-0.6B") == "Qwen3-0.6B"
    assert model_slug("/m/my model (v2)") == "my-model-v2"


def test_presets_are_upstream_settings(lake_env):
    # AMD-AGI/ReasonLite eval/config/eval.yaml and eval/eval.py: the bare problem (no suffix, no
    # system prompt), T/top_p per model, max_model_len used as max_tokens, seed 42, and the launcher's
    # VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 for the 64K context (eval/start.py:20).
    turbo = build_config(EvalOptions(model="/m/student", benchmarks=["amc23"]), "amc23")
    assert (turbo.purpose, turbo.samples, turbo.sampling.temperature, turbo.sampling.top_p) == ("eval", 16, 0.6, 0.95)
    assert (turbo.sampling.max_tokens, turbo.sampling.seed, turbo.vllm.env) == (32768, 42, {})
    assert turbo.sampling.seed_policy == "sample_idx"  # sample k of every problem: seed 42 + k (eval.py:610)
    assert turbo.problems.sources == ["amc23"] and turbo.problems.limit is None
    final = build_config(EvalOptions(model="/m/student", benchmarks=["aime24"], preset="final"), "aime24")
    assert (final.sampling.temperature, final.sampling.top_p, final.vllm.max_model_len) == (1.0, 0.98, 65536)
    assert (final.sampling.max_tokens, final.vllm.env) == (65536, {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"})
    assert final.run_id.startswith("eval-student-aime24-")
    for config in (turbo, final):
        assert (config.prompt.template, config.prompt.system, config.prompt.format) == ("{problem}", None, "auto")


# ------------------------------------------------------------- the preset from the training record


def _checkpoint(folder: Path, stage: str, stratum: str = "short_cot") -> Path:
    """A checkpoint folder with the record `reasonlite train` writes into it (training/train.py)."""
    from training.train import LINEAGE_FILE

    folder.mkdir(parents=True)
    (folder / LINEAGE_FILE).write_text(json.dumps({"run_id": f"{stage}-r", "stage": stage,
                                                   "config": {"stage": stage, "data": {"config": stratum}}}))
    return folder


def test_preset_follows_the_training_record(lake_env, tmp_path):
    from evaluation.evaluate import choose_preset

    stage1 = _checkpoint(tmp_path / "stage1" / "run-a", "stage1")
    stage2 = _checkpoint(tmp_path / "stage2" / "run-b", "stage2", "long_cot")
    assert choose_preset(str(stage1))[0] == "turbo"
    preset, why = choose_preset(str(stage2))
    assert preset == "final" and why == f"{stage2}: stage stage2 (reasonlite_training.json): preset final"
    # A trainer's intermediate checkpoint-N folder reads its run folder's record.
    (stage2 / "checkpoint-200").mkdir()
    assert choose_preset(str(stage2 / "checkpoint-200"))[0] == "final"
    assert choose_preset(str(_checkpoint(tmp_path / "demo2", "demo_stage2", "long_cot")))[0] == "final"
    # A stage named otherwise: the stratum it trained on.
    assert choose_preset(str(_checkpoint(tmp_path / "custom", "long-run", "long_cot")))[0] == "final"
    with pytest.raises(UserError, match=r"stage 'mystery' \(data 'mixed'\) is neither stage 1 nor stage 2; give --preset"):
        choose_preset(str(_checkpoint(tmp_path / "mystery", "mystery", "mixed")))
    # A base model has no record: turbo, and a line that says so.
    preset, why = choose_preset(str(tmp_path / "Qwen3-0.6B"))
    assert preset == "turbo" and "no training record" in why and "--preset final" in why
    # The preset's settings reach the run config; --preset wins over the record.
    config = build_config(EvalOptions(model=str(stage2), benchmarks=["aime24"]), "aime24")
    assert (config.sampling.temperature, config.vllm.max_model_len) == (1.0, 65536)
    given = build_config(EvalOptions(model=str(stage2), benchmarks=["aime24"], preset="turbo"), "aime24")
    assert given.sampling.temperature == 0.6
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "reasonlite_training.json").write_text("{not json")
    with pytest.raises(UserError, match="reasonlite_training.json: not a readable training record"):
        choose_preset(str(broken))


def test_run_id_follows_the_sampling_settings_only(lake_env):
    def run_id(**kw):
        options = EvalOptions(model="/m/student", benchmarks=["amc23"], **kw)
        return build_config(options, "amc23").run_id

    base = run_id()
    assert base == run_id()  # a rerun resumes the same run
    assert base == run_id(n=32, limit=5)  # more samples / problems extend it
    assert base != run_id(temperature=0.7)
    assert base != run_id(max_tokens=1000)
    assert base != run_id(seed=1)
    assert run_id(name="turbo").startswith("eval-turbo-amc23-")
    assert run_id(overrides=["run_id=my-eval"]) == "my-eval"  # one benchmark: the given id
    with pytest.raises(UserError, match="one run id cannot serve several benchmarks"):
        build_config(EvalOptions(model="/m/s", benchmarks="amc23,aime24", overrides=["run_id=x"]), "amc23")


def test_options_and_overrides_reach_the_config(lake_env):
    options = EvalOptions(model="/m/s", benchmarks=["amc23"], n=2, top_p=0.9, max_tokens=64, limit=3,
                          max_model_len=512, gpu_memory_utilization=0.3, backend="transformers",
                          overrides=["vllm.batch_problems=4"])
    config = build_config(options, "amc23")
    assert (config.samples, config.sampling.top_p, config.sampling.max_tokens, config.problems.limit) == (2, 0.9, 64, 3)
    assert (config.vllm.max_model_len, config.transformers.max_model_len, config.vllm.gpu_memory_utilization) == (512, 512, 0.3)
    assert (config.backend, config.vllm.batch_problems) == ("transformers", 4)
    with pytest.raises(UserError, match="unknown config key 'sampling.temprature'"):
        build_config(dataclasses.replace(options, overrides=["sampling.temprature=1"]), "amc23")
    with pytest.raises(UserError, match="purpose"):
        build_config(dataclasses.replace(options, overrides=["purpose=teacher"]), "amc23")


@pytest.mark.parametrize("argv,message", [
    (["--benchmarks", "aime23"], "unknown benchmark 'aime23'"),
    (["--n", "0"], "--n: must be >= 1"),
    (["--benchmark-dir", "/nonexistent"], "/nonexistent/amc23.jsonl: no such file"),
])
def test_cli_errors_are_one_line(lake_env, capsys, tiny_llama_dir, argv, message):
    from warehouse.cli import main

    assert main(["evaluate", "--model", str(tiny_llama_dir), "--benchmarks", "amc23", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reasonlite evaluate: error:") and message in err[0]


def test_missing_model_is_refused_before_anything_is_ingested(lake_env, capsys, benchmarks_dir):
    from warehouse import lake
    from warehouse.cli import main

    assert main(["evaluate", "--model", "/nonexistent", "--benchmarks", "gsm8k,amc23",
                 "--benchmark-dir", str(benchmarks_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model: '/nonexistent' not found (no such folder)" in err[0], err
    assert not lake.table_dir("problems").exists()


@pytest.mark.slow
def test_evaluate_with_the_transformers_backend(lake_env, benchmarks_dir, tiny_llama_dir):
    """The CPU fallback engine: the backend gets the tokenizer it reads stop and pad tokens from."""
    from warehouse import db

    done = _reasonlite(["evaluate", "--model", str(tiny_llama_dir), "--backend", "transformers", "--benchmarks",
                        "amc23", "--benchmark-dir", str(benchmarks_dir), "--limit", "2", "--n", "2",
                        "--max-tokens", "6", "--max-model-len", "512", "--no-progress"])
    assert done.returncode == 0, done.stderr[-3000:]
    con = db.connect(marts=False)
    rows = con.execute("SELECT backend, count(*), max(completion_tokens), count(error) FROM generations "
                       "GROUP BY backend").fetchall()
    assert rows == [("transformers", 4, 6, 0)] or (rows[0][:2] == ("transformers", 4) and rows[0][3] == 0), rows
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("amc23"))
    assert "tiny-llama" in line and "eval-tiny-llama-amc23-" in line


@pytest.mark.slow
def test_preset_from_checkpoints_that_reasonlite_train_wrote(lake_env, tiny_qwen3_dir, monkeypatch):
    """Real `reasonlite train` runs (one step per stage) write the records the preset is read from."""
    from evaluation.evaluate import choose_preset
    from tests.training.sft_data import write_strata
    from warehouse import db, lake
    from warehouse.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_strata(lake.exports_dir(), n_short=4, n_long=4)
    assert main(["export"]) == 0
    common = ["--set=sft.max_steps=1", "--set=sft.per_device_train_batch_size=2"]
    assert main(["train", "--config", "training/configs/tiny_stage1.yaml", f"--set=model={tiny_qwen3_dir}",
                 *common, "--run-id", "s1"]) == 0
    assert main(["train", "--config", "training/configs/tiny_stage2.yaml", *common, "--run-id", "s2"]) == 0
    con = db.connect(read_only=True)
    outputs = dict(con.execute("SELECT run_id, output_dir FROM training_runs").fetchall())
    con.close()
    assert choose_preset(outputs["s1"])[0] == "turbo"
    preset, why = choose_preset(outputs["s2"])
    assert preset == "final" and why.endswith("stage tiny_stage2 (reasonlite_training.json): preset final")


# ------------------------------------------------------------------------ end to end, real vLLM


@pytest.fixture(scope="session")
def tiny_vllm_dir(tokenizer_dir):
    # vLLM's CPU attention refuses head_dim 16 (the shared tiny_llama); this one has 64.
    from generation.models import tiny_random_model

    return tiny_random_model(MODEL_CACHE / "tiny-llama-h256", tokenizer_dir, architecture="llama", hidden_size=256)


def _reasonlite(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    return subprocess.run([str(REASONLITE), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.mark.slow
def test_evaluate_tiny_model_with_vllm_end_to_end(lake_env, benchmarks_dir, tiny_vllm_dir):
    from warehouse import db, lake
    from warehouse.cli import main

    args = ["evaluate", "--model", str(tiny_vllm_dir), "--benchmarks", "amc23", "--benchmark-dir",
            str(benchmarks_dir), "--limit", "2", "--n", "3", "--max-tokens", "24", "--no-progress"]
    done = _reasonlite(args)
    assert done.returncode == 0, done.stderr[-3000:]
    # No training record: the turbo preset, said. It asks for 40,960 tokens of context; the model
    # allows 4,096: the context follows the model, and on the CPU the KV cache is sized in bytes for that.
    assert "no training record (a base model?): preset turbo" in done.stderr
    assert "vllm.max_model_len 40960 is beyond" in done.stderr and "using 4096" in done.stderr
    assert "vllm on the CPU: KV cache" in done.stderr
    assert "amc23: run eval-tiny-llama-h256-amc23-" in done.stderr and "6 samples to generate" in done.stderr

    con = db.connect(marts=False)
    run_id, samples, tokens = con.execute(
        "SELECT run_id, count(*), max(completion_tokens) FROM generations GROUP BY run_id").fetchone()
    assert samples == 6 and tokens <= 24
    manifest = lake.read_manifest(run_id)
    assert (manifest["purpose"], manifest["status"], manifest["n_samples"]) == ("eval", "complete", 3)

    # The printed scores are the mart's numbers (`reasonlite sql` shows the same), which follow
    # from eval_samples.
    shown = _reasonlite(["sql", "select * from eval_scores where scoring = 'strict'", "--format", "json"])
    assert shown.returncode == 0, shown.stderr
    score = json.loads(shown.stdout.strip())
    con = db.connect(read_only=True)
    try:
        correct = [r[0] for r in con.execute("SELECT is_correct FROM eval_samples WHERE run_id = ?",
                                             [run_id]).fetchall()]
    finally:
        con.close()  # the next evaluate writes the warehouse file
    assert (score["run_id"], score["benchmark"], score["n_problems"], score["n"]) == (run_id, "amc23", 2, 3)
    assert len(correct) == 6 and score["avg_at_n"] == pytest.approx(sum(correct) / len(correct))
    assert score["pass_at_8"] is None  # n = 3 < 8
    lines = [ln.split() for ln in done.stdout.splitlines() if ln.startswith("amc23")]
    assert [ln[1] for ln in lines] == ["upstream", "strict"]  # the paper's scoring first
    assert f"{100 * score['avg_at_n']:.1f}" in lines[1] and run_id in lines[1]

    # Same command again: the run is complete, nothing is generated, the lake is unchanged.
    again = _reasonlite(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"run {run_id}: 0 samples to generate" in again.stderr
    assert db.connect(marts=False).execute("SELECT count(*) FROM generations").fetchone()[0] == 6

    assert main(["report"]) == 0
    report = next((lake_env / "reports").iterdir())
    assert "**tiny-llama-h256** (ours) | 3 |" in (report / "report.md").read_text()
    for name in ("budget_curve.png", "completion_lengths.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_final_preset_starts_beyond_the_models_context_on_the_cpu(lake_env, benchmarks_dir, tiny_vllm_dir):
    """The final preset's 64K context with VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (as upstream launches its eval):
    kept beyond the tiny model's 4,096 tokens, and the engine starts and samples."""
    from warehouse import db

    done = _reasonlite(["evaluate", "--model", str(tiny_vllm_dir), "--preset", "final", "--benchmarks", "amc23",
                        "--benchmark-dir", str(benchmarks_dir), "--limit", "1", "--n", "2", "--max-tokens", "8",
                        "--no-progress", "--no-score"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "vllm.max_model_len 65536 is beyond" in done.stderr and "kept, as VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 asks" in done.stderr
    assert "using 4096" not in done.stderr
    rows = db.connect(marts=False).execute("SELECT count(*), count(error), max(completion_tokens) FROM generations").fetchone()
    assert rows[0] == 2 and rows[1] == 0 and rows[2] <= 8
