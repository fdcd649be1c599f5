"""`reasonlite export`: the SFT strata as a HuggingFace dataset folder that `load_dataset` reads."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.training.sft_data import SCHEMA, read_stratum, seal_strata, split, write_segments, write_strata
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
    sources = write_strata(lake.exports_dir(), n_short=40, n_long=24, segments=3)
    lake.write_manifest("teach-medium", purpose="teacher", model="openai/gpt-oss-120b", temperature=0.8,
                        top_p=1.0, max_tokens=30000, code_version="abc123", status="complete")
    (lake.exports_dir() / "curation_vars.json").write_text(json.dumps({"vote_ratio": 0.9, "min_votes": 4}))
    limit = 8 * 1024  # small shards: the segments fit, so each becomes one
    record = hub.export(max_shard_bytes=limit, log=lambda *_: None)
    out = lake.exports_dir() / "hf_dataset"
    assert record["path"] == str(out)

    for config, n in (("short_cot", 40), ("long_cot", 24)):
        shards = hub.config_files(out, config)
        assert len(shards) == 3 and record["configs"][config]["linked_shards"] == 3
        assert all(p.stat().st_size <= limit for p in shards)
        assert [p.name for p in shards] == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
        loaded = datasets.load_dataset(str(out), config, split="train", cache_dir=str(lake_env / "hf"))
        source = read_stratum(sources[config]).to_pylist()
        assert loaded.column_names[0] == "messages"
        assert set(loaded.column_names) == set(SCHEMA.names)  # the extra column travels too
        assert len(loaded) == n
        # Same rows, same order, same values.
        assert [dict(r) for r in loaded] == source
        assert record["configs"][config]["fingerprint"] == hub.fingerprint_rows(shards)
        assert record["configs"][config]["fingerprint_method"] == hub.FINGERPRINT_METHOD
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
    # no temp or old folders left (the export cache is the one dot folder that stays)
    assert not any(p.name.startswith(".") and p.name != hub.CACHE_DIRNAME for p in out.parent.iterdir())
    assert first  # the first export existed before it was replaced


def _write(path, rows, schema=SCHEMA):
    """Replace a segment as a (successful) curate would: the file, then the build record."""
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    seal_strata(path.parent.parent)


def _segment(stratum: str, n: int = 0) -> Path:
    return lake.exports_dir() / f"sft_{stratum}" / f"part-test-0-{n}.parquet"


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (lambda rows: rows[3]["messages"].pop(), "part-test-0-1.parquet:3:messages: last message has role 'user'"),
        (lambda rows: rows[5].update(messages=[]), "part-test-0-1.parquet:5:messages: empty or null conversation"),
        (lambda rows: rows[2].update(problem_id=None), "part-test-0-1.parquet:2:problem_id: null"),
    ],
)
def test_export_names_segment_row_and_field_of_bad_rows(lake_env, capsys, break_it, expected):
    """The row number counts from the start of the segment the error names (the second of three)."""
    write_strata(lake.exports_dir(), n_short=24, n_long=4, segments=3)
    path = _segment("short_cot", 1)
    rows = pq.read_table(path).to_pylist()
    break_it(rows)
    _write(path, rows)
    assert main(["export"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"{path.parent}/{expected}" in err
    assert not (lake.exports_dir() / "hf_dataset").exists()  # nothing half-written


def test_export_checks_the_contract_columns(lake_env, capsys):
    write_strata(lake.exports_dir(), n_short=4, n_long=4)
    path = _segment("long_cot")
    pq.write_table(pq.read_table(path).drop_columns(["label_source"]), path)
    seal_strata(lake.exports_dir())
    assert main(["export"]) == 2
    assert f"{path}: column label_source: missing" in capsys.readouterr().err

    write_strata(lake.exports_dir(), n_short=4, n_long=4)
    table = pq.read_table(path)
    index = table.schema.get_field_index("messages")
    pq.write_table(table.set_column(index, "messages", pa.array(["not a conversation"] * 4)), path)
    seal_strata(lake.exports_dir())
    assert main(["export"]) == 2
    assert "column messages: expected list<" in capsys.readouterr().err


def test_export_without_strata_says_what_to_run(lake_env, capsys):
    assert main(["export"]) == 2
    err = capsys.readouterr().err
    assert "sft_short_cot: not found" in err and "reasonlite curate" in err


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
    for folder in sources.values():
        for path in folder.glob("part-*.parquet"):
            table = pq.read_table(path)
            column = pa.array([teacher] * table.num_rows, pa.string())
            pq.write_table(table.set_column(table.schema.get_field_index("teacher_model"), "teacher_model", column),
                           path)
    seal_strata(lake.exports_dir())
    lake.write_manifest("teach-medium", purpose="teacher", model=teacher, temperature=0.8, status="complete")
    (lake.exports_dir() / "curation_vars.json").write_text(json.dumps({"vote_ratio": 0.9}))
    hub.export(log=lambda *_: None)
    out = lake.exports_dir() / "hf_dataset"
    lineage = json.loads((out / "lineage.json").read_text())
    for text in ((out / "README.md").read_text(), json.dumps(lineage)):
        assert str(lake_env) not in text
    assert lineage["teacher_models"] == ["SmolLM2-135M-Instruct"]
    assert lineage["configs"]["short_cot"]["source"] == "sft_short_cot"
    assert lineage["curation_vars_source"] == "curation_vars.json"
    assert {r["manifest"]["model"] for r in lineage["runs"] if r.get("manifest")} == {"SmolLM2-135M-Instruct"}


# ------------------------------------------------------------- segments, shard links, the row fingerprint


def _permuted(table: pa.Table, seed: int) -> pa.Table:
    order = list(range(table.num_rows))
    random.Random(seed).shuffle(order)
    return table.take(order)


def _resegment(stratum: str, build_id: str, parts: int, seed: int) -> Path:
    """The stratum's rows as an incremental curate may leave them: in another order, in ``parts`` segments."""
    folder = lake.exports_dir() / f"sft_{stratum}"
    return write_segments(folder, build_id, split(_permuted(read_stratum(folder), seed), parts))


def _fingerprints(record: dict) -> dict[str, str]:
    return {name: config["fingerprint"] for name, config in record["configs"].items()}


def test_the_fingerprint_is_of_the_rows_not_of_their_segments_or_order(lake_env):
    exports = lake.exports_dir()
    write_strata(exports, n_short=30, n_long=12, segments=1)
    one_segment = _fingerprints(hub.export(log=lambda *_: None))
    out = exports / "hf_dataset"
    shards_before = [p.read_bytes() for p in hub.config_files(out, "short_cot")]

    for stratum in ("short_cot", "long_cot"):
        _resegment(stratum, "test-1", parts=3, seed=1)
    seal_strata(exports, "test-1")
    record = hub.export(log=lambda *_: None)
    assert _fingerprints(record) == one_segment
    shards_after = [p.read_bytes() for p in hub.config_files(out, "short_cot")]
    assert len(shards_after) == 3 and shards_after != shards_before  # other files, same training data

    # One value of one row changed: another fingerprint, for that config alone.
    path = sorted((exports / "sft_long_cot").glob("part-*.parquet"))[1]
    rows = pq.read_table(path).to_pylist()
    rows[2]["label"] += "0"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
    seal_strata(exports, "test-2")
    changed = _fingerprints(hub.export(log=lambda *_: None))
    assert changed["short_cot"] == one_segment["short_cot"]
    assert changed["long_cot"] != one_segment["long_cot"]


def _fingerprint_of(tmp_path: Path, table: pa.Table, name: str = "t.parquet") -> str:
    pq.write_table(table, tmp_path / name)
    return hub.fingerprint_rows([tmp_path / name])


def test_the_row_fingerprint_sees_every_value_but_not_integer_widths(tmp_path):
    def table(contents=("ab", "c"), label="7", idx_type=None, text_type=None, rows=1):
        idx_type, text_type = idx_type or pa.int32(), text_type or pa.string()
        messages = [[{"role": "user", "content": contents[0]}, {"role": "assistant", "content": contents[1]}]] * rows
        return pa.table({"messages": pa.array(messages, hub.MESSAGES_TYPE),
                         "sample_idx": pa.array([3] * rows, idx_type), "label": pa.array([label] * rows, text_type)})

    base = _fingerprint_of(tmp_path, table())
    assert _fingerprint_of(tmp_path, table(idx_type=pa.int64(), text_type=pa.large_string())) == base
    different = {
        "text moved across a message boundary": table(contents=("a", "bc")),
        "empty string for a null": table(label=None),
        "empty string": table(label=""),
        "the row twice": table(rows=2),
        "a renamed column": table().rename_columns(["messages", "sample_idx", "answer"]),
    }
    seen = {base}
    for why, changed in different.items():
        fingerprint = _fingerprint_of(tmp_path, changed)
        assert fingerprint not in seen, why
        seen.add(fingerprint)
    # Files that hold the rows between them: their union counts, however it is cut.
    two = table(rows=2)
    pq.write_table(two.slice(0, 1), tmp_path / "a.parquet")
    pq.write_table(two.slice(1), tmp_path / "b.parquet")
    pq.write_table(two.slice(0, 0), tmp_path / "empty.parquet")
    cut = [tmp_path / "a.parquet", tmp_path / "empty.parquet", tmp_path / "b.parquet"]
    assert hub.fingerprint_rows(cut) == _fingerprint_of(tmp_path, two)


def test_segments_in_the_shard_layout_become_shards_by_hard_link(lake_env):
    exports = lake.exports_dir()
    folders = write_strata(exports, n_short=30, n_long=12, segments=1)
    small, big = split(read_stratum(folders["short_cot"]), 6)[0], read_stratum(folders["short_cot"]).slice(5)
    write_segments(folders["short_cot"], "test-0", [small, big])
    small_file, big_file = sorted(folders["short_cot"].glob("part-*.parquet"))
    # long_cot as an older curate wrote it: the contract's column order, messages last.
    legacy = read_stratum(folders["long_cot"])
    write_segments(folders["long_cot"], "test-0", [legacy.select([*legacy.schema.names[1:], "messages"])])
    seal_strata(exports)
    linked_fingerprint = hub.fingerprint_rows([small_file, big_file])

    limit = small_file.stat().st_size  # the small segment fits as it is; the big one does not
    record = hub.export(max_shard_bytes=limit, log=lambda *_: None)
    out = exports / "hf_dataset"
    short = hub.config_files(out, "short_cot")
    assert os.stat(short[0]).st_ino == os.stat(small_file).st_ino and short[0].read_bytes() == small_file.read_bytes()
    assert not any(os.stat(p).st_ino == os.stat(big_file).st_ino for p in short)
    assert len(short) > 2 and all(p.stat().st_size <= limit for p in short)  # the big one, re-encoded
    assert record["configs"]["short_cot"]["linked_shards"] == 1
    assert record["configs"]["short_cot"]["fingerprint"] == linked_fingerprint == hub.fingerprint_rows(short)
    long = hub.config_files(out, "long_cot")
    assert record["configs"]["long_cot"]["linked_shards"] == 0
    assert pq.read_schema(long[0]).names[0] == "messages"  # re-encoded into the shards' layout
    assert pa.concat_tables(pq.read_table(p) for p in long).to_pylist() == \
        legacy.select(pq.read_schema(long[0]).names).to_pylist()


def test_the_single_file_layout_of_older_curates_is_still_read(lake_env, capsys):
    exports = lake.exports_dir()
    folders = write_strata(exports, n_short=6, n_long=3)
    for stratum, folder in folders.items():
        table = read_stratum(folder)
        shutil.rmtree(folder)
        rows = table.to_pylist()
        if stratum == "short_cot":
            rows[4]["messages"] = []
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), exports / f"sft_{stratum}.parquet")
    seal_strata(exports)
    assert main(["export"]) == 2
    assert f"{exports / 'sft_short_cot.parquet'}:4:messages: empty or null conversation" in capsys.readouterr().err
    table = pq.read_table(exports / "sft_short_cot.parquet")
    pq.write_table(table.filter(pa.array([i != 4 for i in range(table.num_rows)])), exports / "sft_short_cot.parquet")
    seal_strata(exports)
    record = hub.export(log=lambda *_: None)
    assert record["configs"]["short_cot"]["rows"] == 5 and record["configs"]["short_cot"]["source"] == "sft_short_cot.parquet"


def test_files_starting_with_an_underscore_or_a_dot_are_not_segments(lake_env):
    exports = lake.exports_dir()
    folders = write_strata(exports, n_short=6, n_long=3)
    (folders["short_cot"] / "_index.parquet").write_bytes(b"not rows")
    (folders["short_cot"] / ".part-tmp.parquet").write_bytes(b"half written")
    assert hub.export(log=lambda *_: None)["configs"]["short_cot"]["rows"] == 6
    (folders["short_cot"] / "part-test-0-9.parquet").write_bytes(b"not parquet either")  # a segment: checked
    seal_strata(exports)
    with pytest.raises(UserError, match=r"sft_short_cot/part-test-0-9\.parquet: not a readable Parquet file"):
        hub.export(log=lambda *_: None)


def test_upstream_files_are_written_from_every_segment(lake_env, capsys, monkeypatch):
    monkeypatch.setattr(hub, "UPSTREAM_CHUNK_ROWS", 4)  # files that span segment boundaries
    folders = write_strata(lake.exports_dir(), n_short=10, n_long=3, segments=3)
    record = hub.export(fmt="upstream-jsonl", log=lambda *_: None)
    assert record["configs"]["short_cot"]["files"] == [f"short_cot/data_part{k}.jsonl" for k in (1, 2, 3)]
    folder = Path(record["path"]) / "short_cot"
    lines = [json.loads(line) for k in (1, 2, 3) for line in (folder / f"data_part{k}.jsonl").read_text().splitlines()]
    users = [r["messages"][0]["content"].strip() for r in read_stratum(folders["short_cot"]).to_pylist()]
    assert [line["messages"][0]["content"] for line in lines] == users

    path = sorted(folders["short_cot"].glob("part-*.parquet"))[1]
    rows = pq.read_table(path).to_pylist()
    rows[1]["messages"] = rows[1]["messages"][1:]  # the assistant turn alone
    _write(path, rows)
    assert main(["export", "--format", "upstream-jsonl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}:1:messages: expected [user, assistant]" in err


def test_a_curate_publishing_while_export_starts_is_not_mixed_in(lake_env, monkeypatch):
    from warehouse import snapshots

    exports = lake.exports_dir()
    folders = write_strata(exports, n_short=6, n_long=3)
    # As curate publishes: <exports>/sft_short_cot is a symlink onto a build's folder of segments.
    os.replace(folders["short_cot"], _store(exports, "b1"))
    os.symlink(Path("segments/b1/sft_short_cot"), folders["short_cot"])
    seal_strata(exports)
    assert hub.export(log=lambda *_: None)["configs"]["short_cot"]["rows"] == 6

    real_check = snapshots.check_published_exports

    def check_then_a_curate_publishes(sha256_of=None):
        record = real_check(sha256_of)
        shutil.copytree(_store(exports, "b1"), _store(exports, "b2"))
        os.symlink(Path("segments/b2/sft_short_cot"), exports / ".tmp-link")
        os.replace(exports / ".tmp-link", folders["short_cot"])
        return record

    monkeypatch.setattr(snapshots, "check_published_exports", check_then_a_curate_publishes)
    with pytest.raises(UserError, match="a curate published new strata while export started; run `reasonlite"):
        hub.export(log=lambda *_: None)


def _store(exports: Path, build_id: str) -> Path:
    (exports / "segments" / build_id).mkdir(parents=True, exist_ok=True)
    return exports / "segments" / build_id / "sft_short_cot"


def _replace_file(path: Path, table: pa.Table) -> None:
    """Rewrite a shard or segment by rename, never in place: a linked shard shares its inode with a
    published segment."""
    pq.write_table(table, path.with_name(".rewrite.parquet"))
    os.replace(path.with_name(".rewrite.parquet"), path)


def test_training_refuses_an_export_whose_rows_changed_and_takes_one_reordered(lake_env):
    from training.train import check_export_fingerprint

    write_strata(lake.exports_dir(), n_short=12, n_long=4, segments=2)
    segments = {p: p.read_bytes() for p in (lake.exports_dir() / "sft_short_cot").glob("part-*.parquet")}
    record = hub.export(log=lambda *_: None)
    out = lake.exports_dir() / "hf_dataset"
    assert check_export_fingerprint(out, "short_cot") == record["configs"]["short_cot"]["fingerprint"]

    first, second = hub.config_files(out, "short_cot")
    rows = pa.concat_tables([pq.read_table(first), pq.read_table(second)])
    _replace_file(first, _permuted(rows.slice(6), 3))  # the same rows, swapped between the shards
    _replace_file(second, _permuted(rows.slice(0, 6), 4))
    assert check_export_fingerprint(out, "short_cot") == record["configs"]["short_cot"]["fingerprint"]

    changed = rows.slice(0, 6).to_pylist()
    changed[1]["messages"][1]["content"] += " "
    _replace_file(second, pa.Table.from_pylist(changed, schema=rows.schema))
    with pytest.raises(UserError, match=r"data/short_cot changed since export \(fingerprint of its rows"):
        check_export_fingerprint(out, "short_cot")
    assert {p: p.read_bytes() for p in segments} == segments  # the published segments were never touched

    lineage = json.loads((out / "lineage.json").read_text())
    del lineage["configs"]["long_cot"]["fingerprint_method"]  # an export from before row fingerprints
    (out / "lineage.json").write_text(json.dumps(lineage))
    with pytest.raises(UserError, match=r"fingerprinted by an older `reasonlite export`.*run `reasonlite export`"):
        check_export_fingerprint(out, "long_cot")


def test_training_reads_the_rows_in_key_order_whatever_the_segmenting(lake_env, monkeypatch):
    from training.data import ROW_KEY, load_conversations

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exports = lake.exports_dir()
    folders = write_strata(exports, n_short=30, n_long=4)
    rows = read_stratum(folders["short_cot"]).to_pylist()
    in_key_order = [r["messages"] for r in sorted(rows, key=lambda r: tuple(r[k] for k in ROW_KEY))]
    assert [r["messages"] for r in rows] != in_key_order  # the fixture's order is not the key's
    hub.export(log=lambda *_: None)
    out = exports / "hf_dataset"
    assert load_conversations(out, "short_cot")["messages"] == in_key_order

    _resegment("short_cot", "test-1", parts=3, seed=5)
    seal_strata(exports, "test-1")
    hub.export(log=lambda *_: None)
    physical = pa.concat_tables(pq.read_table(p) for p in hub.config_files(out, "short_cot"))
    assert physical.column("messages").to_pylist() != [r["messages"] for r in rows]
    assert load_conversations(out, "short_cot")["messages"] == in_key_order
    assert load_conversations(out, "short_cot", max_rows=5)["messages"] == in_key_order[:5]


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
             lake.exports_dir(): "is the exports folder", lake.exports_dir() / "sft_short_cot": "curate publishes",
             lake.exports_dir() / "sft_long_cot" / "inside": "curate publishes",
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
    leftovers = sorted(p.name.split("-")[0] for p in out.parent.iterdir()
                       if p.name.startswith(".") and p.name != hub.CACHE_DIRNAME)
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
    short = _segment("short_cot")  # replaced by rename, as curate writes (the shard is a link of the old one)
    _replace_file(short, pq.read_table(short).slice(0, 2))
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
