"""Curation at scale: `reasonlite curate` on the synthetic lake, and side by side with the baseline.

* :func:`bench_curation` — wall time and peak RSS of ``reasonlite curate --full-refresh`` at a
  scale, then of the incremental build after one more teacher run of 5 % size; where the time went
  (dbt's per-model timings) and how many strings the grader saw (curate prints it).
* :func:`bench_baseline` — at a scale the baseline can finish: the same lake through
  ``reasonlite curate --full-refresh`` and through ``baseline_upstream`` (each in its own process),
  time and memory ratios, and how far the two agree on labels and kept solutions; with
  ``text_profile="realistic"`` at real text lengths, plus the scale at which the baseline's
  memory (measured bytes per solution) no longer fits a given RAM.
* :func:`bench_volume` — curation at the teacher's real text volume (the synthetic lake's
  ``realistic`` profile) at one or more scales: ``reasonlite curate --full-refresh`` and
  ``reasonlite export``, each with wall time, peak RSS and bytes read/written, against the
  physical floor measured in the same run (``physical_floor``: one scan of the lake's text, one
  write of the export); the same scale's short-text lake separates per-row from per-byte costs
  for an extrapolation to 9.1M real solutions.

Each run gets its own bench directory (``<root>/scale-<s>-seed-<n>``) with every REASONLITE_*
path pointing into it, and its own dbt target/log folder, so neither the user's lake nor a
colleague's dbt run is touched. ``python -m tests.benchmarks.bench_curation --scale 0.01``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from tests.benchmarks import baseline_upstream, synthetic_lake
from tests.benchmarks.measure import Measured, measure
from warehouse import lake

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / "warehouse" / "tmp" / "bench"  # git-ignored (warehouse/tmp/)
INCREMENTAL_FRACTION = 0.05
# Incremental builds measured per kind of teacher run (the median is reported): the block case is
# the one near the goal, where the spread matters.
INCREMENTAL_REPEATS = {"block": 3, "scattered": 1}
SEGMENT_BYTES_ENV = "REASONLITE_EXPORT_SEGMENT_BYTES"  # read by dbt_project/models/marts/exports/sft_exports.py
SEGMENT_BYTES_AT_FULL_SCALE = 450 * 1024**2  # its default segment size


# The released amd/ReasonLite-Dataset: 44.7 GB of Parquet for its 6.1M kept solutions.
RELEASED_BYTES_PER_ROW = 44.7e9 / 6.1e6
PAPER_SOLUTIONS = synthetic_lake.PAPER_GENERATIONS


def workdir_for(root: Path, scale: float, seed: int, text_profile: str = "short") -> Path:
    name = f"scale-{scale:g}-seed-{seed}"
    return Path(root) / (name if text_profile == "short" else f"{name}-{text_profile}")


def _reasonlite() -> list[str]:
    script = Path(sys.executable).parent / "reasonlite"
    return [str(script)] if script.exists() else [sys.executable, "-m", "warehouse.cli"]


def _curate_env(workdir: Path) -> dict[str, str]:
    # Every warehouse path, and dbt's run_results.json (per-model timings) and logs, in the bench directory.
    return lake.env_for_root(workdir)


def parse_curate_output(text: str) -> dict:
    """The figures `reasonlite curate` prints: grader calls, dbt nodes/status/seconds, funnel."""
    out: dict = {}
    m = re.search(r"grader calls on new strings: (.*)", text)
    if m:
        calls = {}
        for name, n in re.findall(r"([a-z_]+) ([\d,]+)", m.group(1)):
            calls[name] = int(n.replace(",", ""))
        out["grader_calls"] = calls
        out["grader_calls_total"] = sum(calls.values())
    m = re.search(r"dbt (build|run): (\d+) nodes, (\S+?),? .*?([\d.]+) s", text)
    if m:
        out.update(dbt_command=m.group(1), nodes=int(m.group(2)), status=m.group(3), dbt_seconds=float(m.group(4)))
    funnel = {}
    for stage, n in re.findall(r"^\s*-?\s+([a-z_]+)\s+([\d,]+)\s+[\d.]+%", text, flags=re.M):
        funnel[stage] = int(n.replace(",", ""))
    if funnel:
        out["funnel"] = funnel
    return out


def _run_results(workdir: Path) -> list[dict]:
    """The nodes of the last build's dbt_target/run_results.json (none before a first build)."""
    path = Path(workdir) / "dbt_target" / "run_results.json"
    return json.loads(path.read_text()).get("results", []) if path.exists() else []


def model_timings(workdir: Path, top: int = 10) -> list[dict]:
    """The slowest dbt nodes of the last build (from its run_results.json)."""
    nodes = [
        {"node": r.get("unique_id", "?").split(".")[-1], "seconds": round(r.get("execution_time") or 0.0, 2),
         "status": r.get("status")}
        for r in _run_results(workdir)
    ]
    nodes.sort(key=lambda r: -r["seconds"])
    return nodes[:top]


def run_curate(workdir: Path, full_refresh: bool, timeout: float | None = None, echo: bool = False) -> dict:
    cmd = [*_reasonlite(), "curate", "--quiet"] + (["--full-refresh"] if full_refresh else [])
    m: Measured = measure(cmd, env=_curate_env(workdir), cwd=str(REPO), timeout=timeout, echo=echo)
    result = {
        "command": "reasonlite curate" + (" --full-refresh" if full_refresh else ""),
        "returncode": m.returncode, "seconds": round(m.seconds, 2), "peak_rss_bytes": m.peak_rss_bytes,
        "peak_rss_gb": round(m.peak_rss_gb, 3), "io": m.io, "cpu_seconds": m.cpu_seconds,
        **parse_curate_output(m.stdout),
        "slowest_models": model_timings(workdir),
    }
    if m.returncode != 0:
        tail = (m.stdout + m.stderr).strip().splitlines()[-15:]
        result["error_tail"] = tail
        if m.returncode in (-9, 137) and timeout:
            result["timed_out"] = True
    return result


def _log(msg: str) -> None:
    print(f"[bench curation] {msg}", file=sys.stderr, flush=True)


def bench_curation(scale: float, root: Path = DEFAULT_ROOT, seed: int = 0, incremental: bool = True,
                   timeout: float | None = None) -> dict:
    """Full curate at ``scale``, then the incremental build after a 5 % teacher run."""
    workdir = workdir_for(root, scale, seed)
    synthetic_lake.remove_run(workdir, synthetic_lake.EXTRA_RUN_ID)  # left over by an interrupted bench
    lake_stats = synthetic_lake.ensure_lake(workdir, scale, seed)
    _log(f"scale {scale}: {lake_stats['problems']:,} problems, {lake_stats['total_generations']:,} generations; "
         "reasonlite curate --full-refresh ...")
    out = {"scale": scale, "seed": seed, "workdir": str(workdir), "lake": lake_stats}
    out["full"] = run_curate(workdir, full_refresh=True, timeout=timeout)
    _log(f"full: {out['full']['seconds']:.1f} s, peak RSS {out['full']['peak_rss_gb']:.2f} GB, "
         f"rc {out['full']['returncode']}")
    if incremental and out["full"]["returncode"] == 0:
        extra = synthetic_lake.add_teacher_run(workdir, INCREMENTAL_FRACTION, seed=seed)
        try:
            _log(f"incremental: +{extra['generations']:,} generations; reasonlite curate ...")
            out["incremental"] = {**run_curate(workdir, full_refresh=False, timeout=timeout), "added": extra}
            _log(f"incremental: {out['incremental']['seconds']:.1f} s, "
                 f"peak RSS {out['incremental']['peak_rss_gb']:.2f} GB")
        finally:
            synthetic_lake.remove_run(workdir, synthetic_lake.EXTRA_RUN_ID)
    return out


# ------------------------------------------------------------------------------- ours vs baseline


def _labels_ours(workdir: Path) -> dict[str, tuple[str | None, str]]:
    import duckdb

    con = duckdb.connect(lake.env_for_root(workdir)["REASONLITE_DB"], read_only=True)
    try:
        rows = con.execute("SELECT problem_id, label, label_source FROM main.pseudo_labels").fetchall()
    finally:
        con.close()
    return {pid: (label, source) for pid, label, source in rows}


def compare_labels(ours: dict[str, tuple[str | None, str]], base: dict[str, dict]) -> dict:
    """How often the two pipelines reach the same label (same source, equivalent answer)."""
    from math_verify import parse, verify

    same_source = same_label = 0
    for pid, info in base.items():
        mine = ours.get(pid)
        if mine is None:
            continue
        if mine[1] == info["label_source"]:
            same_source += 1
        a, b = mine[0], info["label"]
        if a == b or (a is not None and b is not None and verify(parse("\\boxed{" + a + "}"), parse("\\boxed{" + b + "}"))):
            same_label += 1
    n = len(base)
    return {"problems": n, "same_label_source": same_source, "same_label": same_label,
            "same_label_share": round(same_label / n, 4) if n else None}


def bench_baseline(scale: float = 0.05, root: Path = DEFAULT_ROOT, seed: int = 0, timeout: float | None = None,
                   text_profile: str = "short", ram_bytes: int | None = None) -> dict:
    """Ours and the upstream-style baseline on the same lake, each in its own process.

    ``ram_bytes`` (default: this machine's RAM): the scale at which the baseline's measured
    memory per solution would exceed it is reported as ``baseline_fits_up_to_scale``.
    """
    workdir = workdir_for(root, scale, seed, text_profile)
    synthetic_lake.remove_run(workdir, synthetic_lake.EXTRA_RUN_ID)
    lake_stats = synthetic_lake.ensure_lake(workdir, scale, seed, text_profile=text_profile)
    out = {"scale": scale, "seed": seed, "text_profile": text_profile, "lake": lake_stats}
    _log(f"baseline scale {scale}: reasonlite curate --full-refresh ...")
    out["ours"] = run_curate(workdir, full_refresh=True, timeout=timeout)
    jsonl = Path(workdir) / baseline_upstream.JSONL_NAME
    stamp = Path(workdir) / synthetic_lake.STAMP
    if not jsonl.exists() or jsonl.stat().st_mtime < stamp.stat().st_mtime:
        t = time.perf_counter()
        baseline_upstream.export_jsonl(workdir)
        _log(f"exported {jsonl.stat().st_size / 1e6:.0f} MB of JSON lines in {time.perf_counter() - t:.0f} s (not timed)")
    result_path = Path(workdir) / "baseline_result.json"
    result_path.unlink(missing_ok=True)
    _log(f"baseline: {lake_stats['total_generations']:,} solutions, one math-verify parse + verify each ...")
    m = measure([sys.executable, "-m", "tests.benchmarks.baseline_upstream", "--jsonl", str(jsonl),
                 "--out", str(result_path)], cwd=str(REPO), timeout=timeout, echo=True)
    out["baseline"] = {"command": "python -m tests.benchmarks.baseline_upstream", "returncode": m.returncode,
                       "seconds": round(m.seconds, 2), "peak_rss_bytes": m.peak_rss_bytes,
                       "peak_rss_gb": round(m.peak_rss_gb, 3), "jsonl_bytes": jsonl.stat().st_size}
    if m.returncode != 0:
        out["baseline"]["error_tail"] = (m.stdout + m.stderr).strip().splitlines()[-15:]
        return out
    base = json.loads(result_path.read_text())
    out["baseline"].update({k: base[k] for k in ("funnel", "vote_labels", "parse_calls", "verify_calls", "timings")})
    rows = lake_stats["total_generations"]
    ram = ram_bytes or _ram_bytes()
    out["baseline"]["bytes_per_solution"] = round(m.peak_rss_bytes / rows)
    # Memory grows with the solutions held: the largest lake whose solutions still fit in RAM.
    out["baseline_fits_up_to_scale"] = round(scale * ram / m.peak_rss_bytes, 4)
    out["ram_bytes"] = ram
    if out["ours"]["returncode"] == 0:
        out["speedup"] = round(m.seconds / out["ours"]["seconds"], 2)
        out["memory_ratio"] = round(m.peak_rss_bytes / out["ours"]["peak_rss_bytes"], 2)
        out["agreement"] = compare_labels(_labels_ours(workdir), base["labels"])
        ours_kept = out["ours"].get("funnel", {}).get("kept")
        out["agreement"].update(kept_ours=ours_kept, kept_baseline=base["funnel"].get("kept"))
    _log(f"baseline {m.seconds:.0f} s / {m.peak_rss_gb:.2f} GB vs ours {out['ours']['seconds']:.0f} s / "
         f"{out['ours']['peak_rss_gb']:.2f} GB")
    return out


# -------------------------------------------------------------------------- real text volume


def _ram_bytes() -> int:
    import psutil

    return psutil.virtual_memory().total


def _measured(m: Measured, command: str) -> dict:
    out = {"command": command, "returncode": m.returncode, "seconds": round(m.seconds, 2),
           "peak_rss_bytes": m.peak_rss_bytes, "peak_rss_gb": round(m.peak_rss_gb, 3), "io": m.io,
           "cpu_seconds": m.cpu_seconds}
    if m.returncode != 0:
        out["error_tail"] = (m.stdout + m.stderr).strip().splitlines()[-15:]
    return out


def run_export(workdir: Path, timeout: float | None = None) -> dict:
    """``reasonlite export`` of the last curate into ``<workdir>/hf_dataset`` (replacing an earlier one)."""
    out_dir = Path(workdir) / "hf_dataset"
    cmd = [*_reasonlite(), "export", "--out", str(out_dir), "--force"]
    m = measure(cmd, env=_curate_env(workdir), cwd=str(REPO), timeout=timeout)
    result = _measured(m, "reasonlite export")
    lineage = out_dir / "lineage.json"
    if m.returncode == 0 and lineage.exists():
        configs = json.loads(lineage.read_text()).get("configs", {})
        result["rows"] = sum(c["rows"] for c in configs.values())
        result["bytes"] = sum(c["download_size"] for c in configs.values())
    return result


def run_floor(workdir: Path, what: str, timeout: float | None = None) -> dict:
    m = measure([sys.executable, "-m", "tests.benchmarks.physical_floor", what, "--workdir", str(workdir)],
                cwd=str(REPO), timeout=timeout)
    result = _measured(m, f"physical_floor {what}")
    if m.returncode == 0:
        result.update(json.loads(m.stdout.strip().splitlines()[-1]))
        result["seconds"] = round(m.seconds, 2)  # the process, as for curate (DuckDB's own time is inside)
    return result


def _strata_bytes(workdir: Path) -> int:
    """Bytes of the published SFT strata (each a folder of Parquet segments)."""
    from warehouse import snapshots

    with synthetic_lake.using_workdir(workdir):
        exports = lake.exports_dir()
        return sum(f.stat().st_size for name in snapshots.STRATA_DIRS if (exports / name).is_dir()
                   for f in (exports / name).resolve().glob("*.parquet"))


def volume_at(scale: float, root: Path = DEFAULT_ROOT, seed: int = 0, timeout: float | None = None,
              incremental: bool = True) -> dict:
    """At one scale of the realistic lake: floor scan, curate --full-refresh, export, floor write, then
    (``incremental``) the incremental curate + export after a 5 % teacher run."""
    with _segments_as_at_full_scale(scale):
        return _volume_at(scale, root, seed, timeout, incremental)


@contextlib.contextmanager
def _segments_as_at_full_scale(scale: float):
    """Export segments of 450 MB x scale: as many segments as the released data's 44 GB would have,
    so an incremental build rewrites the share of segments it would at full size (one 450 MB
    segment per stratum at scale 0.01 would be rewritten by any change)."""
    previous = os.environ.get(SEGMENT_BYTES_ENV)
    os.environ[SEGMENT_BYTES_ENV] = str(max(1 << 20, int(SEGMENT_BYTES_AT_FULL_SCALE * scale)))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(SEGMENT_BYTES_ENV, None)
        else:
            os.environ[SEGMENT_BYTES_ENV] = previous


def _volume_at(scale: float, root: Path, seed: int, timeout: float | None, incremental: bool) -> dict:
    workdir = workdir_for(root, scale, seed, "realistic")
    synthetic_lake.remove_run(workdir, synthetic_lake.EXTRA_RUN_ID)
    lake_stats = synthetic_lake.ensure_lake(workdir, scale, seed, text_profile="realistic")
    rows = lake_stats["total_generations"]
    out = {"scale": scale, "seed": seed, "workdir": str(workdir), "lake": lake_stats}
    _log(f"volume {scale:g}: {rows:,} solutions, {lake_stats['generations_bytes'] / 1e9:.2f} GB of generation "
         "parts; floor scan ...")
    out["floor_scan"] = run_floor(workdir, "scan", timeout)
    _log(f"volume {scale:g}: floor scan {out['floor_scan']['seconds']:.1f} s; reasonlite curate --full-refresh ...")
    out["curate"] = run_curate(workdir, full_refresh=True, timeout=timeout)
    _log(f"volume {scale:g}: curate {out['curate']['seconds']:.1f} s, peak RSS {out['curate']['peak_rss_gb']:.2f} GB"
         f", rc {out['curate']['returncode']}")
    if out["curate"]["returncode"] != 0:
        return out
    out["strata_bytes"] = _strata_bytes(workdir)
    out["export"] = run_export(workdir, timeout)
    _log(f"volume {scale:g}: export {out['export']['seconds']:.1f} s, rc {out['export']['returncode']}")
    out["floor_write"] = run_floor(workdir, "write", timeout)
    steps = (out["curate"], out["export"], out["floor_scan"], out["floor_write"])
    if any(s["returncode"] != 0 for s in steps):
        return out
    kept = out["curate"].get("funnel", {}).get("kept") or out["export"].get("rows")
    floor = out["floor_scan"]["seconds"] + out["floor_write"]["seconds"]
    ours = out["curate"]["seconds"] + out["export"]["seconds"]
    # CPU time too: on a machine shared with other work, wall time mostly measures the wait for a core.
    floor_cpu = (out["floor_scan"]["cpu_seconds"] or 0) + (out["floor_write"]["cpu_seconds"] or 0)
    ours_cpu = (out["curate"]["cpu_seconds"] or 0) + (out["export"]["cpu_seconds"] or 0)
    out.update(
        kept=kept, floor_cpu_seconds=round(floor_cpu, 2), curate_export_cpu_seconds=round(ours_cpu, 2),
        floor_cpu_ratio=round(ours_cpu / floor_cpu, 2) if floor_cpu else None,
        export_bytes_per_kept_row=round(out["export"]["bytes"] / out["export"]["rows"]) if out["export"].get("rows") else None,
        lake_bytes_per_row=round(lake_stats["generations_bytes"] / rows),
        floor_seconds=round(floor, 2), curate_export_seconds=round(ours, 2),
        floor_ratio=round(ours / floor, 2) if floor else None,
    )
    _log(f"volume {scale:g}: curate + export {ours:.1f} s vs floor {floor:.1f} s = {out['floor_ratio']}x; "
         f"export {out['export_bytes_per_kept_row']:,} B per kept row")
    if incremental:
        out["incremental"] = incremental_at_volume(workdir, ours, timeout)
    return out


def incremental_at_volume(workdir: Path, full_seconds: float, timeout: float | None = None) -> dict:
    """After the full build, per kind of teacher run (``synthetic_lake.EXTRA_RUN_PROBLEMS``: a block of
    problems, or problems scattered over the lake): one more run of 5 % of the lake's solutions
    (realistic texts), then ``reasonlite curate`` (incremental) + ``reasonlite export``, against the
    full curate + export just measured (goal: ≤ 25 %). The run is removed afterwards and the
    warehouse brought back by an incremental curate (timed, not counted), so each kind starts from
    the full build's state."""
    out = {}
    for problems in synthetic_lake.EXTRA_RUN_PROBLEMS:
        runs = []
        for _ in range(INCREMENTAL_REPEATS[problems]):
            runs.append(_incremental_run(workdir, full_seconds, problems, timeout))
            # A failed build is no figure, and after a failed restore the next run would not start
            # from the full build's state.
            if runs[-1].get("share_of_full") is None or runs[-1]["restore"]["returncode"] != 0:
                out[problems] = runs[-1]
                return out
        # The median run, with every run's share: on this machine one incremental build varies by ~25 %.
        runs.sort(key=lambda r: r["seconds"])
        out[problems] = {**runs[len(runs) // 2], "repeats": [r["share_of_full"] for r in runs]}
    return out


def _incremental_run(workdir: Path, full_seconds: float, problems: str, timeout: float | None) -> dict:
    extra = synthetic_lake.add_teacher_run(workdir, INCREMENTAL_FRACTION, progress=False, problems=problems)
    out: dict = {"added": extra}
    try:
        _log(f"incremental at volume ({problems}): +{extra['generations']:,} solutions; reasonlite curate + export ...")
        before = _export_indexes(workdir)
        curate = run_curate(workdir, full_refresh=False, timeout=timeout)
        out["curate"] = curate
        if curate["returncode"] != 0:
            return out
        out["curate"].update(node_seconds=node_seconds(workdir), sft_exports=sft_exports_report(workdir),
                             churn=export_churn(before, _export_indexes(workdir)))
        out["export"] = run_export(workdir, timeout)
        if out["export"]["returncode"] != 0:
            return out
        seconds = curate["seconds"] + out["export"]["seconds"]
        out.update(seconds=round(seconds, 2), full_seconds=round(full_seconds, 2),
                   share_of_full=round(seconds / full_seconds, 3) if full_seconds else None)
        _log(f"incremental at volume ({problems}): curate {curate['seconds']:.1f} s + export "
             f"{out['export']['seconds']:.1f} s = {out['share_of_full']:.0%} of the full build; "
             f"nodes {out['curate']['node_seconds']}; sft_exports {out['curate']['sft_exports']}")
        return out
    finally:
        synthetic_lake.remove_run(workdir, synthetic_lake.EXTRA_RUN_ID)
        restore = run_curate(workdir, full_refresh=False, timeout=timeout)
        out["restore"] = {**restore, "command": "reasonlite curate (back to the full build's lake)"}
        _log(f"incremental at volume ({problems}): run removed; curate back to the full build's lake "
             f"{restore['seconds']:.1f} s, rc {restore['returncode']}")


def _export_indexes(workdir: Path):
    """The published strata's segment indexes (key, row digest, segment) as one Arrow table."""
    import pyarrow as pa
    import pyarrow.feather as feather

    with synthetic_lake.using_workdir(workdir):
        exports = lake.exports_dir()
    tables = []
    for name in ("sft_short_cot", "sft_long_cot"):
        path = exports / name / "_index.arrow"
        if path.exists():
            table = feather.read_table(path, columns=["problem_id", "run_id", "sample_idx", "row_digest", "segment"])
            tables.append(table.append_column("stratum", pa.array([name] * table.num_rows)))
    return pa.concat_tables(tables) if tables else None


def export_churn(before, after) -> dict | None:
    """Why an incremental build rewrites exported segments: of the previous build's rows, by problem and
    by segment, those whose values changed (a label or label source moved with the vote) and those
    that left (the label's answer changed, so other samples are consistent now). A Parquet segment
    cannot change a row, so a segment holding either is rewritten: ``segments_with_change`` is what
    rows that carry their problem's label cost; ``segments_with_removal`` what they would cost if
    labels lived in a per-problem table (removals are rewrites either way)."""
    import duckdb

    if before is None or after is None:
        return None
    con = duckdb.connect()
    try:
        con.register("before_index", before)
        con.register("after_index", after)
        row = con.execute(
            "WITH status AS (SELECT b.problem_id, b.stratum || '/' || b.segment AS segment, "
            "a.problem_id IS NULL AS removed, a.problem_id IS NOT NULL AND a.row_digest <> b.row_digest AS changed "
            "FROM before_index AS b LEFT JOIN after_index AS a USING (stratum, problem_id, run_id, sample_idx)) "
            "SELECT count(DISTINCT problem_id), count(DISTINCT segment), "
            "count(DISTINCT problem_id) FILTER (WHERE changed OR removed), "
            "count(DISTINCT problem_id) FILTER (WHERE removed), "
            "count(DISTINCT segment) FILTER (WHERE changed OR removed), "
            "count(DISTINCT segment) FILTER (WHERE removed), "
            "count(*) FILTER (WHERE changed), count(*) FILTER (WHERE removed), "
            "(SELECT avg(n) FROM (SELECT count(DISTINCT problem_id) AS n FROM status GROUP BY segment)) "
            "FROM status").fetchone()
    finally:
        con.close()
    keys = ("problems", "segments", "problems_with_change", "problems_with_removal", "segments_with_change",
            "segments_with_removal", "rows_changed", "rows_removed", "problems_per_segment")
    out = dict(zip(keys, row, strict=True))
    out["problems_per_segment"] = round(out["problems_per_segment"] or 0, 1)
    return out


def node_seconds(workdir: Path) -> dict:
    """Seconds of the last build's dbt nodes, summed by kind (model, test, ...), from run_results.json."""
    totals: dict[str, float] = {}
    for r in _run_results(workdir):
        kind = r.get("unique_id", "?").split(".")[0]
        totals[kind] = round(totals.get(kind, 0.0) + (r.get("execution_time") or 0.0), 2)
    return totals


def sft_exports_report(workdir: Path) -> list[dict]:
    """What the last build's `sft_exports` did per stratum: segments carried, rewritten, written; rows
    carried, fetched, relabeled."""
    import duckdb

    con = duckdb.connect(lake.env_for_root(workdir)["REASONLITE_DB"], read_only=True)
    try:
        cur = con.execute("SELECT stratum, segments, carried_segments, rewritten_segments, written_segments, rows, "
                          "rows_carried, rows_fetched, rows_relabeled, full_write FROM sft_exports ORDER BY stratum")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def extrapolate(volume: dict, short: dict | None, solutions: int = PAPER_SOLUTIONS) -> dict | None:
    """curate + export time at ``solutions`` real-length solutions, from per-row and per-byte costs.

    Per row: the short-text lake at the same scale (same rows, ~1 % of the bytes). Per byte: what
    the realistic lake costs beyond that, over the bytes it adds. Both scale with the number of
    solutions at the realistic lake's bytes per solution (calibrated to the released dataset).
    """
    if not volume.get("floor_ratio") or not short or short.get("returncode") != 0:
        return None
    rows = volume["lake"]["total_generations"]
    long_bytes = volume["lake"]["generations_bytes"]
    short_bytes = short["lake"]["generations_bytes"]
    per_row = short["seconds"] / rows
    per_byte = max(0.0, volume["curate_export_seconds"] - short["seconds"]) / max(1, long_bytes - short_bytes)
    factor = solutions / rows
    seconds = solutions * per_row + long_bytes * factor * per_byte
    return {
        "solutions": solutions, "per_row_us": round(per_row * 1e6, 2), "per_gb_s": round(per_byte * 1e9, 2),
        "lake_bytes": round(long_bytes * factor), "seconds": round(seconds, 1),
        "floor_seconds": round(volume["floor_seconds"] * factor, 1),
    }


def bench_volume(scales: list[float], root: Path = DEFAULT_ROOT, seed: int = 0, timeout: float | None = None) -> dict:
    """The realistic lake at each scale (floor, curate, export); the largest scale also with short texts."""
    out: dict = {"scales": {}}
    for scale in scales:
        out["scales"][f"{scale:g}"] = volume_at(scale, root, seed, timeout)
    largest = max(scales)
    workdir = workdir_for(root, largest, seed)
    synthetic_lake.remove_run(workdir, synthetic_lake.EXTRA_RUN_ID)
    short_lake = synthetic_lake.ensure_lake(workdir, largest, seed)
    _log(f"volume: short-text lake at {largest:g} for the per-row cost; reasonlite curate --full-refresh ...")
    out["short"] = {**run_curate(workdir, full_refresh=True, timeout=timeout), "lake": short_lake}
    out["extrapolation"] = extrapolate(out["scales"][f"{largest:g}"], out["short"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="0.01", help="scale (several, comma-separated, with --volume)")
    parser.add_argument("--baseline", action="store_true", help="ours vs the upstream-style baseline instead")
    parser.add_argument("--volume", action="store_true",
                        help="real text volume instead: floor, curate, export at --scale (comma-separated scales)")
    parser.add_argument("--text-profile", choices=synthetic_lake.TEXT_PROFILES, default="short",
                        help="texts of the --baseline lake")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per curate / baseline process")
    parser.add_argument("--clean", action="store_true", help="remove the bench directory afterwards")
    args = parser.parse_args(argv)
    scales = [float(x) for x in str(args.scale).split(",") if x.strip()]
    if args.volume:
        result = bench_volume(scales, args.root, args.seed, args.timeout)
    elif args.baseline:
        result = bench_baseline(scales[0], args.root, args.seed, args.timeout, text_profile=args.text_profile)
    else:
        result = bench_curation(scales[0], args.root, args.seed, timeout=args.timeout)
    print(json.dumps(result, indent=2, default=str))
    if args.clean:
        profiles = ("short", "realistic") if args.volume else ("short", args.text_profile)
        for scale in scales:
            for profile in profiles:
                shutil.rmtree(workdir_for(args.root, scale, args.seed, profile), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
