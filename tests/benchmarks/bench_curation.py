"""Curation at scale: `reasonlite curate` on the synthetic lake, and side by side with the baseline.

* :func:`bench_curation` — wall time and peak RSS of ``reasonlite curate --full-refresh`` at a
  scale, then of the incremental build after one more teacher run of 5 % size; where the time went
  (dbt's per-model timings) and how many strings the grader saw (curate prints it).
* :func:`bench_baseline` — at a scale the baseline can finish: the same lake through
  ``reasonlite curate --full-refresh`` and through ``baseline_upstream`` (each in its own process),
  time and memory ratios, and how far the two agree on labels and kept solutions.

Each run gets its own bench directory (``<root>/scale-<s>-seed-<n>``) with every REASONLITE_*
path pointing into it, and its own dbt target/log folder, so neither the user's lake nor a
colleague's dbt run is touched. ``python -m tests.benchmarks.bench_curation --scale 0.01``.
"""

from __future__ import annotations

import argparse
import json
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


def workdir_for(root: Path, scale: float, seed: int) -> Path:
    return Path(root) / f"scale-{scale:g}-seed-{seed}"


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


def model_timings(workdir: Path, top: int = 10) -> list[dict]:
    """The slowest dbt nodes of the last build (from its run_results.json)."""
    path = Path(workdir) / "dbt_target" / "run_results.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    nodes = [
        {"node": r.get("unique_id", "?").split(".")[-1], "seconds": round(r.get("execution_time") or 0.0, 2),
         "status": r.get("status")}
        for r in data.get("results", [])
    ]
    nodes.sort(key=lambda r: -r["seconds"])
    return nodes[:top]


def run_curate(workdir: Path, full_refresh: bool, timeout: float | None = None, echo: bool = False) -> dict:
    cmd = [*_reasonlite(), "curate", "--quiet"] + (["--full-refresh"] if full_refresh else [])
    m: Measured = measure(cmd, env=_curate_env(workdir), cwd=str(REPO), timeout=timeout, echo=echo)
    result = {
        "command": "reasonlite curate" + (" --full-refresh" if full_refresh else ""),
        "returncode": m.returncode, "seconds": round(m.seconds, 2), "peak_rss_bytes": m.peak_rss_bytes,
        "peak_rss_gb": round(m.peak_rss_gb, 3), **parse_curate_output(m.stdout),
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


def bench_baseline(scale: float = 0.05, root: Path = DEFAULT_ROOT, seed: int = 0, timeout: float | None = None) -> dict:
    """Ours and the upstream-style baseline on the same lake, each in its own process."""
    workdir = workdir_for(root, scale, seed)
    synthetic_lake.remove_run(workdir, synthetic_lake.EXTRA_RUN_ID)
    lake_stats = synthetic_lake.ensure_lake(workdir, scale, seed)
    out = {"scale": scale, "seed": seed, "lake": lake_stats}
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
    if out["ours"]["returncode"] == 0:
        out["speedup"] = round(m.seconds / out["ours"]["seconds"], 2)
        out["memory_ratio"] = round(m.peak_rss_bytes / out["ours"]["peak_rss_bytes"], 2)
        out["agreement"] = compare_labels(_labels_ours(workdir), base["labels"])
        ours_kept = out["ours"].get("funnel", {}).get("kept")
        out["agreement"].update(kept_ours=ours_kept, kept_baseline=base["funnel"].get("kept"))
    _log(f"baseline {m.seconds:.0f} s / {m.peak_rss_gb:.2f} GB vs ours {out['ours']['seconds']:.0f} s / "
         f"{out['ours']['peak_rss_gb']:.2f} GB")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--baseline", action="store_true", help="ours vs the upstream-style baseline instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per curate / baseline process")
    parser.add_argument("--clean", action="store_true", help="remove the bench directory afterwards")
    args = parser.parse_args(argv)
    if args.baseline:
        result = bench_baseline(args.scale, args.root, args.seed, args.timeout)
    else:
        result = bench_curation(args.scale, args.root, args.seed, timeout=args.timeout)
    print(json.dumps(result, indent=2, default=str))
    if args.clean:
        shutil.rmtree(workdir_for(args.root, args.scale, args.seed), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
