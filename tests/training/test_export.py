"""`reasonlite export`: the SFT strata as a HuggingFace dataset folder that `load_dataset` reads."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.training.sft_data import SCHEMA, seal_strata, write_strata
from warehouse import hub, lake
from warehouse.cli import main
from warehouse.errors import UserError


def card_metadata(folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_export_round_trip_through_load_dataset(lake_env, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sources = write_strata(lake.exports_dir(), n_short=40, n_long=24)
    lake.write_manifest("teach-medium", purpose="teacher", model="openai/gpt-oss-120b", temperature=0.8,
                        top_p=1.0, max_tokens=30000, code_version="abc123", status="complete")
    (lake.exports_dir() / "curation_vars.json").write_text(json.dumps({"vote_ratio": 0.9, "min_votes": 4}))
    limit = 8 * 1024  # small shards so the test sees several
    record = hub.export(max_shard_bytes=limit, log=lambda *_: None)
    out = lake.exports_dir() / "hf_dataset"
    assert record["path"] == str(out)

    for config, n in (("short_cot", 40), ("long_cot", 24)):
        shards = hub.config_files(out, config)
        assert len(shards) > 1
        assert all(p.stat().st_size <= limit for p in shards)
        assert [p.name for p in shards] == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
        loaded = datasets.load_dataset(str(out), config, split="train", cache_dir=str(lake_env / "hf"))
        source = pq.read_table(sources[config]).to_pylist()
        assert loaded.column_names[0] == "messages"
        assert set(loaded.column_names) == set(SCHEMA.names)  # the extra column travels too
        assert len(loaded) == n
        # Same rows, same order, same values.
        assert [dict(r) for r in loaded] == source
        assert record["configs"][config]["fingerprint"] == hub.fingerprint_files(shards)
        assert record["configs"][config]["rows"] == n

    meta, text = card_metadata(out)
    assert [c["config_name"] for c in meta["configs"]] == ["short_cot", "long_cot"]
    info = {i["config_name"]: i for i in meta["dataset_info"]}
    assert info["short_cot"]["splits"][0]["num_examples"] == 40
    assert info["long_cot"]["splits"][0]["num_examples"] == 24
    assert {f["name"] for f in info["short_cot"]["features"]} >= {"messages", "problem_id", "label_source"}
    # Curation vars and lineage: runs with their manifests, teacher models, code version.
    assert "`vote_ratio`: `0.9`" in text and "`min_votes`: `4`" in text
    assert "`teach-medium`" in text and "temperature=0.8" in text and "`teach-high`" in text
    assert record["code_version"] in text
    lineage = json.loads((out / "lineage.json").read_text())
    runs = {r["run_id"]: r for r in lineage["runs"]}
    assert runs["teach-medium"]["rows"] == {"short_cot": 40}
    assert runs["teach-medium"]["manifest"]["code_version"] == "abc123"
    assert runs["teach-high"].get("manifest") is None  # no manifest in the lake for that run
    assert lineage["teacher_models"] == ["openai/gpt-oss-120b"]
    assert lineage["curation_vars"] == {"vote_ratio": 0.9, "min_votes": 4}


def test_export_replaces_previous_export_whole(lake_env):
    write_strata(lake.exports_dir(), n_short=10, n_long=5)
    assert main(["export"]) == 0
    out = lake.exports_dir() / "hf_dataset"
    first = hub.config_files(out, "short_cot")
    write_strata(lake.exports_dir(), n_short=3, n_long=2, seed=7)
    assert main(["export"]) == 0
    assert pq.read_table(hub.config_files(out, "short_cot")).num_rows == 3
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temp or old folders left
    assert first  # the first export existed before it was replaced


def _write(path, rows, schema=SCHEMA):
    """Replace a stratum as a (successful) curate would: the file, then the build record."""
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    seal_strata(path.parent)


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (lambda rows: rows[3]["messages"].pop(), "sft_short_cot.parquet:3:messages: last message has role 'user'"),
        (lambda rows: rows[5].update(messages=[]), "sft_short_cot.parquet:5:messages: empty or null conversation"),
        (lambda rows: rows[2].update(problem_id=None), "sft_short_cot.parquet:2:problem_id: null"),
    ],
)
def test_export_names_file_row_and_field_of_bad_rows(lake_env, capsys, break_it, expected):
    write_strata(lake.exports_dir(), n_short=8, n_long=4)
    path = lake.exports_dir() / "sft_short_cot.parquet"
    rows = pq.read_table(path).to_pylist()
    break_it(rows)
    _write(path, rows)
    assert main(["export"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert expected in err
    assert not (lake.exports_dir() / "hf_dataset").exists()  # nothing half-written


def test_export_checks_the_contract_columns(lake_env, capsys):
    write_strata(lake.exports_dir(), n_short=4, n_long=4)
    path = lake.exports_dir() / "sft_long_cot.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["label_source"]), path)
    seal_strata(path.parent)
    assert main(["export"]) == 2
    assert "sft_long_cot.parquet: column label_source: missing" in capsys.readouterr().err

    write_strata(lake.exports_dir(), n_short=4, n_long=4)
    table = pq.read_table(path)
    index = table.schema.get_field_index("messages")
    pq.write_table(table.set_column(index, "messages", pa.array(["not a conversation"] * 4)), path)
    seal_strata(path.parent)
    assert main(["export"]) == 2
    assert "column messages: expected list<" in capsys.readouterr().err


def test_export_without_strata_says_what_to_run(lake_env, capsys):
    assert main(["export"]) == 2
    err = capsys.readouterr().err
    assert "sft_short_cot.parquet: not found" in err and "reasonlite curate" in err


def test_an_empty_stratum_is_left_out_and_the_other_still_loads(lake_env, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_strata(lake.exports_dir(), n_short=5, n_long=0)
    record = hub.export(log=lambda *_: None)
    out = lake.exports_dir() / "hf_dataset"
    meta, text = card_metadata(out)
    assert [c["config_name"] for c in meta["configs"]] == ["short_cot"]
    assert record["empty_configs"] == ["long_cot"] and "no rows after curation: `long_cot`" in text
    assert len(datasets.load_dataset(str(out), "short_cot", split="train", cache_dir=str(lake_env / "hf"))) == 5
    write_strata(lake.exports_dir(), n_short=0, n_long=0)
    with pytest.raises(UserError, match="every SFT stratum is empty"):
        hub.export(log=lambda *_: None)


def test_card_and_lineage_carry_no_absolute_local_paths(lake_env):
    """`publish` uploads README.md and lineage.json: a local teacher folder, the exports folder and
    the curation vars file appear by name only."""
    sources = write_strata(lake.exports_dir(), n_short=4, n_long=2)
    teacher = str(lake_env / "models" / "SmolLM2-135M-Instruct")
    for path in sources.values():
        table = pq.read_table(path)
        column = pa.array([teacher] * table.num_rows, pa.string())
        pq.write_table(table.set_column(table.schema.get_field_index("teacher_model"), "teacher_model", column), path)
    seal_strata(lake.exports_dir())
    lake.write_manifest("teach-medium", purpose="teacher", model=teacher, temperature=0.8, status="complete")
    (lake.exports_dir() / "curation_vars.json").write_text(json.dumps({"vote_ratio": 0.9}))
    hub.export(log=lambda *_: None)
    out = lake.exports_dir() / "hf_dataset"
    lineage = json.loads((out / "lineage.json").read_text())
    for text in ((out / "README.md").read_text(), json.dumps(lineage)):
        assert str(lake_env) not in text
    assert lineage["teacher_models"] == ["SmolLM2-135M-Instruct"]
    assert lineage["configs"]["short_cot"]["source"] == "sft_short_cot.parquet"
    assert lineage["curation_vars_source"] == "curation_vars.json"
    assert {r["manifest"]["model"] for r in lineage["runs"] if r.get("manifest")} == {"SmolLM2-135M-Instruct"}


# ------------------------------------------------------------------ destructive paths, kills, builds
# Real `reasonlite export` processes over real files.

REPO = Path(__file__).resolve().parents[2]


def reasonlite(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}, timeout=600)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert len(err.splitlines()) == 1 and err.startswith("reasonlite export: error: "), err
    return err


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "tmp" not in p.relative_to(root).parts}


def test_export_out_never_destroys_what_is_not_an_earlier_export(lake_env, tmp_path):
    write_strata(lake.exports_dir(), n_short=6, n_long=4)
    lake.write_manifest("r1", purpose="teacher", model="m", status="complete")
    duckdb.connect(str(lake.database_path())).close()  # a marts database, however empty
    before = tree(lake_env)
    here = tmp_path / "cwd"
    here.mkdir()
    never = {lake.lake_root(): "is the lake", lake.lake_root() / "runs": "inside the lake",
             lake_env: "holds the lake", lake.database_path(): "is the marts database",
             lake.exports_dir(): "is the exports folder", lake.exports_dir() / "sft_short_cot.parquet": "curate publishes",
             lake.snapshots_dir(): "is the marts snapshots", lake.snapshots_dir() / "b1": "inside the lake or the marts",
             Path("/"): "holds the lake"}
    for out, reason in never.items():
        for force in ((), ("--force",)):
            assert reason in one_line_error(reasonlite("export", "--out", str(out), *force)), out
    assert "is the current folder" in one_line_error(reasonlite("export", "--out", ".", "--force", cwd=here))
    assert tree(lake_env) == before

    mydocs = tmp_path / "mydocs"
    mydocs.mkdir()
    (mydocs / "thesis.txt").write_text("precious")
    assert "not an earlier export" in one_line_error(reasonlite("export", "--out", str(mydocs)))
    assert (mydocs / "thesis.txt").read_text() == "precious"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert "add --force" in one_line_error(reasonlite("export", "--out", str(a_file)))
    assert a_file.read_text() == "mine"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert reasonlite("export", "--out", str(empty)).returncode == 0 and hub.read_lineage(empty)
    assert reasonlite("export", "--out", str(empty)).returncode == 0  # an earlier export: replaced
    assert reasonlite("export", "--out", str(a_file), "--force").returncode == 0 and hub.read_lineage(a_file)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


KILL_AT = """
import os, signal, sys
from warehouse import hub
from warehouse.cli import main

out = hub.default_export_dir().resolve()
point = sys.argv[1]
real_replace, real_rmtree = os.replace, hub.shutil.rmtree

def replace(src, dst):
    real_replace(src, dst)
    if point == "aside" and str(src) == str(out):  # the old export renamed aside, the new one not yet in
        os.kill(os.getpid(), signal.SIGKILL)

def rmtree(path, *args, **kwargs):
    if point == "swapped" and os.path.basename(path).startswith(".old-"):  # new one in, old not yet deleted
        os.kill(os.getpid(), signal.SIGKILL)
    real_rmtree(path, *args, **kwargs)

def write_config(*args):
    real_write_config(*args)
    if point == "building":
        os.kill(os.getpid(), signal.SIGKILL)

hub.os.replace = replace
hub.shutil.rmtree = rmtree
real_write_config, hub._write_config = hub._write_config, write_config
main(["export"])
"""


@pytest.mark.parametrize("point", ["aside", "swapped", "building"])
def test_a_killed_export_is_restored_and_cleaned_on_the_next_start(lake_env, point):
    write_strata(lake.exports_dir(), n_short=10, n_long=5)
    assert reasonlite("export").returncode == 0
    out = lake.exports_dir() / "hf_dataset"
    previous = tree(out)
    write_strata(lake.exports_dir(), n_short=3, n_long=2, seed=7)
    killed = subprocess.run([sys.executable, "-c", KILL_AT, point], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = sorted(p.name.split("-")[0] for p in out.parent.iterdir() if p.name.startswith("."))
    assert leftovers == {"aside": [".old", ".tmp"], "swapped": [".old"], "building": [".tmp"]}[point]
    assert out.exists() == (point != "aside")  # killed mid-swap: no dataset until the next start

    # The next start puts the previous export back (shown by an export that then fails) and cleans up.
    write_strata(lake.exports_dir(), n_short=0, n_long=0, seed=8)
    failed = reasonlite("export")
    assert "every SFT stratum is empty" in one_line_error(failed)
    if point == "aside":
        assert "restored the previous export" in failed.stdout
        assert tree(out) == previous
    assert not [p for p in out.parent.iterdir() if p.name.startswith((".old", ".tmp"))]
    write_strata(lake.exports_dir(), n_short=3, n_long=2, seed=7)
    assert reasonlite("export").returncode == 0
    assert pq.read_table(hub.config_files(out, "short_cot")).num_rows == 3


def test_export_refuses_strata_that_are_not_one_successful_build(lake_env):
    write_strata(lake.exports_dir(), n_short=6, n_long=4)
    assert reasonlite("export").returncode == 0
    out = lake.exports_dir() / "hf_dataset"
    exported = tree(out)
    # A build that failed (or was cut) after rewriting one stratum: new short, old long, old record.
    short = lake.exports_dir() / "sft_short_cot.parquet"
    pq.write_table(pq.read_table(short).slice(0, 2), short)
    assert "not the file build" in one_line_error(reasonlite("export"))
    (lake.exports_dir() / "curation_build.json").unlink()  # strata no successful curate published
    assert "curation_build.json: missing" in one_line_error(reasonlite("export"))
    assert tree(out) == exported
    seal_strata(lake.exports_dir())
    assert reasonlite("export").returncode == 0
    assert json.loads((out / "lineage.json").read_text())["curation_build"] == "test"


@pytest.mark.parametrize("size", ["0", "-1", "0.001", "nan", "inf"])
def test_max_shard_mb_must_be_a_sensible_size(lake_env, size):
    write_strata(lake.exports_dir(), n_short=4, n_long=2)
    assert "--max-shard-mb" in one_line_error(reasonlite("export", "--max-shard-mb", size))
    assert not (lake.exports_dir() / "hf_dataset").exists()
