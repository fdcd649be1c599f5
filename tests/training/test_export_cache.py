"""The export cache: a second `reasonlite export` after an incremental curate decodes only the segments
that curate wrote, and gives the same fingerprint, shards and lineage as an export without the cache."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.training.sft_data import SCHEMA, example, seal_strata, split
from warehouse import hub, lake, snapshots
from warehouse.errors import UserError

SEGMENTS = 5


def _rows(stratum: str, start: int, n: int, seed: int) -> pa.Table:
    import random

    rng = random.Random(seed)
    return pa.Table.from_pylist([example(i, stratum, rng) for i in range(start, start + n)], schema=SCHEMA)


def _publish(build_id: str, new: dict[str, list[pa.Table]], carry: dict[str, list[str]]) -> None:
    """Publish a build as curate does: ``<exports>/segments/<build>/<stratum>/`` holding hard links of the
    carried segments (same inodes) and the new ones, the stratum symlink swapped onto it, the record last."""
    exports = lake.exports_dir()
    for stratum in ("short_cot", "long_cot"):
        name = f"sft_{stratum}"
        store = exports / "segments" / build_id / name
        store.mkdir(parents=True)
        for file in carry.get(stratum, []):
            os.link(exports / name / file, store / file)
        for n, table in enumerate(new.get(stratum, [])):
            pq.write_table(table, store / f"part-{build_id}-{n}.parquet", compression="zstd")
        tmp = exports / f".tmp-link-{name}"
        os.symlink(Path("segments") / build_id / name, tmp)
        os.replace(tmp, exports / name)
    seal_strata(exports, build_id)


def _segments(stratum: str) -> list[str]:
    return [p.name for p in snapshots.stratum_segments(lake.exports_dir() / f"sft_{stratum}")]


def _export(out: Path | None = None) -> tuple[dict, list[str]]:
    lines: list[str] = []
    record = hub.export(out, log=lines.append)
    return record, lines


def _counts(lines: list[str], config: str) -> tuple[int, int]:
    """(segments decoded, segments from cache) as the export reported them for ``config``."""
    found = [re.fullmatch(rf"export: {config}: verified (\d+) segment\(s\), (\d+) from cache", line) for line in lines]
    (match,) = [m for m in found if m]
    return int(match[1]), int(match[2])


def _hash_counts(lines: list[str]) -> tuple[int, int]:
    (match,) = [m for m in (re.search(r"(\d+) hashed, (\d+) unchanged", line) for line in lines) if m]
    return int(match[1]), int(match[2])


def _shards(out: Path) -> dict[str, list[bytes]]:
    return {config: [p.read_bytes() for p in hub.config_files(out, config)] for config in ("short_cot", "long_cot")}


def _configs(record: dict) -> dict:
    return record["configs"]


def _first_build() -> None:
    _publish("b1", {"short_cot": split(_rows("short_cot", 0, 50, 1), SEGMENTS),
                    "long_cot": split(_rows("long_cot", 0, 20, 2), SEGMENTS)}, {})


def test_after_an_incremental_curate_only_the_new_segments_are_read_and_the_export_is_the_same(lake_env, tmp_path):
    _first_build()
    first, lines = _export()
    assert _counts(lines, "short_cot") == (SEGMENTS, 0) and _counts(lines, "long_cot") == (SEGMENTS, 0)
    assert _hash_counts(lines) == (2 * SEGMENTS, 0)

    # An incremental curate: short_cot carries 3 segments and rewrites 2 into one; long_cot carries all.
    carried = _segments("short_cot")[:3]
    rewritten = pa.concat_tables([_rows("short_cot", 30, 15, 1), _rows("short_cot", 100, 4, 9)])
    _publish("b2", {"short_cot": [rewritten]}, {"short_cot": carried, "long_cot": _segments("long_cot")})
    cached, lines = _export()
    assert _counts(lines, "short_cot") == (1, 3)  # the new segment alone decoded
    assert _counts(lines, "long_cot") == (0, SEGMENTS)
    assert _hash_counts(lines) == (1, 3 + SEGMENTS)  # carried segments: same inode, hash not re-read
    assert _configs(cached)["short_cot"]["rows"] == 30 + 19
    assert _configs(cached)["short_cot"]["fingerprint"] != _configs(first)["short_cot"]["fingerprint"]
    assert _configs(cached)["long_cot"] == _configs(first)["long_cot"]

    # The same export with no cache at all: every row read again, the same result to the byte.
    out = lake.exports_dir() / "hf_dataset"
    shutil.rmtree(lake.exports_dir() / hub.CACHE_DIRNAME)
    scratch, lines = _export(tmp_path / "scratch")
    assert _counts(lines, "short_cot") == (4, 0) and _counts(lines, "long_cot") == (SEGMENTS, 0)
    assert _hash_counts(lines) == (4 + SEGMENTS, 0)
    assert _configs(scratch) == _configs(cached)  # fingerprints, rows, bytes, token stats, shard names
    assert _shards(tmp_path / "scratch") == _shards(out)
    for config in ("short_cot", "long_cot"):  # and what training recomputes from the shards agrees
        assert _configs(cached)[config]["fingerprint"] == hub.fingerprint_rows(hub.config_files(out, config))

    # Bounded: after the next build, the entries of segments no longer published are gone.
    entries = {p.stem for p in (lake.exports_dir() / hub.CACHE_DIRNAME).glob("*.arrow")}
    published = {e["sha256"] for e in snapshots.published_build()["strata"].values()}
    assert entries == published
    _publish("b3", {"short_cot": [_rows("short_cot", 0, 7, 3)]}, {"long_cot": _segments("long_cot")})
    _export()
    entries = {p.stem for p in (lake.exports_dir() / hub.CACHE_DIRNAME).glob("*.arrow")}
    assert entries == {e["sha256"] for e in snapshots.published_build()["strata"].values()} != published


def _entry(stratum: str, n: int) -> Path:
    name = f"sft_{stratum}/{_segments(stratum)[n]}"
    return lake.exports_dir() / hub.CACHE_DIRNAME / f"{snapshots.published_build()['strata'][name]['sha256']}.arrow"


def test_a_damaged_cache_entry_is_ignored_and_rebuilt_never_trusted(lake_env):
    _first_build()
    first, _ = _export()
    truncated, flipped = _entry("short_cot", 1), _entry("long_cot", 2)
    whole = {truncated: truncated.read_bytes(), flipped: flipped.read_bytes()}
    truncated.write_bytes(whole[truncated][: len(whole[truncated]) // 2])
    # One byte of one row digest changed: the file still reads as Arrow, its digests no longer agree.
    digest = hub.ExportCache(truncated.parent).load(flipped.stem, sorted(SCHEMA.names)).digests[32:64]
    damaged = bytearray(whole[flipped])
    at = damaged.index(digest)
    damaged[at] ^= 0xFF
    flipped.write_bytes(bytes(damaged))

    again, lines = _export()
    assert _counts(lines, "short_cot") == (1, SEGMENTS - 1) and _counts(lines, "long_cot") == (1, SEGMENTS - 1)
    assert _configs(again) == _configs(first)
    assert truncated.read_bytes() == whole[truncated] and flipped.read_bytes() == whole[flipped]  # rebuilt


def test_a_segment_whose_bytes_changed_under_the_same_name_is_read_again(lake_env):
    _first_build()
    _export()
    segment = lake.exports_dir() / "sft_short_cot" / _segments("short_cot")[2]
    # Changed in place, the size kept, the record not: the remembered hash is not taken, export refuses.
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(segment, "r+b") as f:
        f.write(bytes(data))
    with pytest.raises(UserError, match=r"sft_short_cot/part-b1-2\.parquet: not the file build b1 published"):
        _export()

    # Rewritten (one label changed) and recorded by a build: a new hash, so its rows are read and checked.
    rows = _rows("short_cot", 0, 50, 1).slice(20, 10).to_pylist()
    rows[3]["label"] += "0"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), segment, compression="zstd")
    seal_strata(lake.exports_dir(), "b1-fixed")
    record, lines = _export()
    assert _counts(lines, "short_cot") == (1, SEGMENTS - 1) and _counts(lines, "long_cot") == (0, SEGMENTS)
    shutil.rmtree(lake.exports_dir() / hub.CACHE_DIRNAME)
    assert _configs(_export()[0]) == _configs(record)

    # A rewritten segment with a bad row: refused, and no cache entry for it.
    rows[4]["messages"] = []
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), segment, compression="zstd")
    seal_strata(lake.exports_dir(), "b1-bad")
    with pytest.raises(UserError, match=r"part-b1-2\.parquet:4:messages: empty or null conversation"):
        _export()
    assert not _entry("short_cot", 2).exists()


def test_a_file_the_build_record_does_not_hold_as_a_segment_is_never_cached(lake_env):
    exports = lake.exports_dir()
    exports.mkdir(parents=True)
    for stratum, n in (("short_cot", 6), ("long_cot", 3)):  # the single-file layout of older curates
        pq.write_table(_rows(stratum, 0, n, 4), exports / f"sft_{stratum}.parquet")
    seal_strata(exports)
    for _ in range(2):
        record, lines = _export()
        assert _counts(lines, "short_cot") == (1, 0) and _counts(lines, "long_cot") == (1, 0)
        assert record["configs"]["short_cot"]["rows"] == 6
    assert not list((exports / hub.CACHE_DIRNAME).glob("*.arrow"))


def test_empty_segments_anywhere_count_for_nothing_as_they_did_without_the_cache(lake_env):
    short, long = _rows("short_cot", 0, 12, 5), _rows("long_cot", 0, 6, 6)
    _publish("b1", {"short_cot": [short.slice(0, 0), *split(short, 3)], "long_cot": [long, long.slice(0, 0)]}, {})
    for cached in (0, 3):
        record, lines = _export()
        assert _counts(lines, "short_cot") == (4 - cached, cached)  # the empty one is no shard: never cached
        for config, rows in (("short_cot", short), ("long_cot", long)):
            assert record["configs"][config]["rows"] == rows.num_rows
            shards = hub.config_files(lake.exports_dir() / "hf_dataset", config)
            assert record["configs"][config]["fingerprint"] == hub.fingerprint_rows(shards)
