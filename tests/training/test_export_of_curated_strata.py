"""`reasonlite export` of the strata a real `reasonlite curate` publishes: DuckDB-written segments
become shards by hard link, and an incremental and a full curate of the same lake, which segment the
same rows differently, export the same fingerprint, which training accepts."""

from __future__ import annotations

import os

import pytest

from tests.curation import lakes
from tests.curation.test_curation import _isolated_env, curate_cli
from tests.curation.test_incremental_exports import LAYOUT_ENV, _first_lake, _report, _samples
from training.train import check_export_fingerprint
from warehouse import hub, lake, snapshots

pytestmark = pytest.mark.slow


def _export() -> tuple[dict, dict[str, list[bytes]]]:
    lines: list[str] = []
    record = hub.export(log=lines.append)
    out = lake.exports_dir() / "hf_dataset"
    for config in record["configs"]:
        assert check_export_fingerprint(out, config) == record["configs"][config]["fingerprint"]
    record["log"] = lines
    return record, {config: [p.read_bytes() for p in hub.config_files(out, config)] for config in record["configs"]}


def _from_cache(record: dict, config: str) -> int:
    """How many of the config's segments the export took from the export cache (its log says)."""
    (line,) = [line for line in record["log"] if line.startswith(f"export: {config}: verified ")]
    return int(line.split(", ")[1].split()[0])


def test_incremental_and_full_curates_of_one_lake_export_the_same_rows(tmp_path, monkeypatch):
    for key, value in {**_isolated_env(tmp_path / "warehouse"), **LAYOUT_ENV, "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, value)
    parts = _first_lake()
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err
    first, _ = _export()
    shards = hub.config_files(lake.exports_dir() / "hf_dataset", "short_cot")
    segments = snapshots.stratum_segments(lake.exports_dir() / "sft_short_cot")
    assert first["configs"]["short_cot"]["linked_shards"] == len(segments) == len(shards) > 1
    assert [os.stat(p).st_ino for p in shards] == [os.stat(p).st_ino for p in segments]

    # A new teacher run over three problems, a removed lake part: an incremental curate.
    lakes.write_run("toy-medium-2", "medium")
    lakes.write_generations(_samples("toy-medium-2", "medium", range(3), 4, seed=7))
    parts[-1].unlink()
    code, out, err = curate_cli("--no-test")
    assert code == 0, out + err
    incremental, incremental_bytes = _export()
    carried = {name.removeprefix("sft_"): stats["carried_segments"] for name, stats in _report().items()}

    code, out, err = curate_cli("--no-test", "--full-refresh")
    assert code == 0, out + err
    full, full_bytes = _export()

    for config in ("short_cot", "long_cot"):
        assert incremental["configs"][config]["rows"] == full["configs"][config]["rows"]
        assert incremental["configs"][config]["fingerprint"] == full["configs"][config]["fingerprint"], config
        assert incremental["configs"][config]["fingerprint"] != first["configs"][config]["fingerprint"], config
        assert full["configs"][config]["linked_shards"] == len(full_bytes[config])
        # The segments the incremental curate carried were not decoded again: the first export's cache.
        assert _from_cache(incremental, config) >= carried[config] >= 1, (carried, incremental["log"])
    # Other files, the same rows: the fingerprint is of the rows, not of how they are segmented.
    assert incremental_bytes != full_bytes
