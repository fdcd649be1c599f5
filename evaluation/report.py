"""`reasonlite report`: the evaluation marts as a paper-style table and plots a person can read.

Everything comes from the dbt marts (``eval_scores``, ``eval_budget_curve``, ``eval_samples``,
``curation_funnel``) through the read-only DuckDB connection, so each number in the report is
the same number ``reasonlite sql "select * from eval_scores"`` shows, and names its run id.

Output, under ``warehouse.lake.reports_dir()/<UTC timestamp>/``:

* ``report.md`` — Table 1 of the paper (rows = models, columns = benchmark × {avg@16, pass@8})
  with the published rows beside ours, then every metric per run × benchmark;
* ``eval_scores.csv`` — the mart rows behind the tables;
* ``budget_curve.png``, ``completion_lengths.png``, ``curation_funnel.png`` (when the marts exist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from evaluation.benchmarks import BENCHMARKS, PAPER_BENCHMARKS
from warehouse import lake
from warehouse.errors import UserError

PAPER_RESULTS = Path(__file__).with_name("paper_results.yaml")
# The paper's two headline metrics; our column of the same name reads these mart columns.
TABLE_METRICS = (("avg@16", "avg_at_n"), ("pass@8", "pass_at_8"))
DASH = "—"


@dataclass
class Report:
    directory: Path
    files: list[Path] = field(default_factory=list)
    runs: int = 0
    skipped: list[str] = field(default_factory=list)  # plots not drawn, and why


# ------------------------------------------------------------------------------------------ data


def _relations(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def load_scores(con):
    """eval_scores as a list of dicts, one per run × benchmark (latest run first per model)."""
    if "eval_scores" not in _relations(con):
        raise UserError(
            "no eval_scores mart in the warehouse yet; run `reasonlite evaluate` (or `reasonlite curate`) first"
        )
    cursor = con.execute("SELECT * FROM eval_scores ORDER BY model_name, benchmark, finished_at DESC NULLS LAST, run_id")
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def load_paper_results(path: Path = PAPER_RESULTS) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot read the published results ({err})") from None
    if not isinstance(data.get("models"), list):
        raise UserError(f"{path}: models: expected a list of rows")
    return data


# ----------------------------------------------------------------------------------------- table


def _pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{100 * float(value):.1f}"


def _num(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{float(value):.{digits}f}"


def _settings(row: dict) -> str:
    return f"T={_num(row['temperature'], 2)}, top_p={_num(row['top_p'], 2)}, max_tokens={row['max_tokens']}"


def table_benchmarks(scores: list[dict]) -> list[str]:
    """The paper's benchmarks in its order (AMC23, AIME25, AIME24), then any other evaluated one."""
    paper_order = ["amc23", "aime25", "aime24"]
    assert set(paper_order) == set(PAPER_BENCHMARKS)
    others = [b for b in BENCHMARKS if b not in paper_order and any(r["benchmark"] == b for r in scores)]
    return paper_order + others


def table_rows(scores: list[dict]) -> list[tuple[str, dict[str, dict]]]:
    """One row per (model, sampling settings): benchmark → the newest run's scores."""
    rows: dict[tuple, dict[str, dict]] = {}
    for row in scores:  # newest run first within (model, benchmark): keep the first seen
        key = (row["model_name"], _settings(row))
        rows.setdefault(key, {}).setdefault(row["benchmark"], row)
    multi = {name for name, _ in rows if sum(1 for n, _ in rows if n == name) > 1}
    return [
        (f"{name} ({settings})" if name in multi else name, cells)
        for (name, settings), cells in sorted(rows.items())
    ]


def render_table1(scores: list[dict], paper: dict) -> str:
    benches = table_benchmarks(scores)
    header = ["Model", "n"] + [f"{b.upper()} {m}" for b in benches for m, _ in TABLE_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, cells in table_rows(scores):
        ns = sorted({c["n"] for c in cells.values() if c.get("n") is not None})
        values = []
        for bench in benches:
            cell = cells.get(bench)
            # † marks a slice (--limit): fewer problems than the full benchmark.
            mark = "†" if cell and (BENCHMARKS[bench].size or 0) > (cell.get("n_problems") or 0) else ""
            values += [_pct(cell.get(col)) + (mark if cell.get(col) is not None else "") if cell else DASH
                       for _, col in TABLE_METRICS]
        lines.append(f"| **{label}** (ours) | {'/'.join(map(str, ns)) or DASH} | " + " | ".join(values) + " |")
    for model in paper["models"]:
        values = []
        for bench in benches:
            published = model.get(bench) or {}
            values += [_num(published.get(metric)) for metric, _ in TABLE_METRICS]
        lines.append(f"| {model['model']} (paper) | 16 | " + " | ".join(values) + " |")
    return "\n".join(lines)


DETAIL_COLUMNS = (
    ("run", "run_id", str), ("model", "model_name", str), ("benchmark", "benchmark", str),
    ("problems", "n_problems", str), ("n", "n", str), ("avg@n", "avg_at_n", _pct), ("± s.e.", "std_err", _pct),
    ("pass@1", "pass_at_1", _pct), ("pass@2", "pass_at_2", _pct), ("pass@4", "pass_at_4", _pct),
    ("pass@8", "pass_at_8", _pct), ("pass@16", "pass_at_16", _pct), ("maj@n", "maj_at_n", _pct),
    ("no answer %", "no_answer_rate", _pct), ("truncated %", "truncation_rate", _pct),
    ("mean tokens", "mean_completion_tokens", lambda v: _num(v, 0)), ("errors", "n_errors", str),
)


def render_details(scores: list[dict]) -> str:
    lines = ["| " + " | ".join(h for h, _, _ in DETAIL_COLUMNS) + " |", "|" + "---|" * len(DETAIL_COLUMNS)]
    for row in scores:
        lines.append("| " + " | ".join(fmt(row.get(col)) if row.get(col) is not None else DASH
                                       for _, col, fmt in DETAIL_COLUMNS) + " |")
    return "\n".join(lines)


def render_markdown(scores: list[dict], paper: dict, images: list[str], created: str) -> str:
    runs = sorted({r["run_id"] for r in scores})
    parts = [
        "# ReasonLite evaluation report",
        "",
        f"Generated {created} from the warehouse `{lake.database_path()}` (lake `{lake.lake_root()}`).",
        "",
        "## Table 1 — avg@16 and pass@8 (%)",
        "",
        "Ours: avg@n is the mean accuracy over the n samples of each problem (n is in the second "
        "column; the paper uses 16); pass@8 is the unbiased estimate 1 − C(n−c, 8)/C(n, 8), empty "
        "when n < 8. Paper rows are the published numbers "
        f"({paper.get('source', 'see evaluation/paper_results.yaml')}); {DASH} = not available; "
        "† = on a slice of the benchmark (see `problems` below).",
        "",
        render_table1(scores, paper),
        "",
        "## All metrics per run × benchmark",
        "",
        "± s.e. is the standard error of the per-problem accuracy across problems. maj@n votes by "
        "canonical answer key. Every row is a row of the `eval_scores` mart: "
        "`reasonlite sql \"select * from eval_scores where run_id = '<run>'\"`; the samples behind it "
        "are in `eval_samples` and the lake's `generations` table.",
        "",
        render_details(scores),
        "",
        f"Runs: {', '.join(f'`{r}`' for r in runs)}",
        "",
    ]
    if images:
        parts += ["## Plots", ""]
        parts += [f"![{name}]({name})" for name in images]
        parts.append("")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _grid(plt, count: int, width: float = 5.0, height: float = 3.6):
    cols = min(count, 3)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def plot_budget_curve(con, path: Path) -> bool:
    if "eval_budget_curve" not in _relations(con):
        return False
    rows = con.execute(
        "SELECT benchmark, model_name, run_id, budget, accuracy FROM eval_budget_curve "
        "ORDER BY benchmark, model_name, run_id, budget"
    ).fetchall()
    if not rows:
        return False
    plt = _pyplot()
    benches = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = _grid(plt, len(benches))
    for ax, bench in zip(axes, benches, strict=False):
        series: dict[tuple, list] = {}
        for b, model, run, budget, acc in rows:
            if b == bench:
                series.setdefault((model, run), []).append((budget, acc))
        labels = _series_labels(series)
        for key, points in series.items():
            ax.plot([p[0] for p in points], [100 * (p[1] or 0) for p in points], marker="o", label=labels[key])
        ax.set_xscale("log", base=2)
        ax.set_title(bench.upper())
        ax.set_xlabel("token budget (completion tokens)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Accuracy had generation stopped at each token budget")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _series_labels(series: dict[tuple, list]) -> dict[tuple, str]:
    """Model name, plus the run id only when a model has several runs on the same benchmark."""
    models = [model for model, _ in series]
    return {(m, r): m if models.count(m) == 1 else f"{m} [{r}]" for m, r in series}


def plot_completion_lengths(con, path: Path) -> bool:
    if "eval_samples" not in _relations(con):
        return False
    rows = con.execute(
        "SELECT benchmark, model_name, run_id, completion_tokens, is_correct FROM eval_samples "
        "WHERE is_scored AND completion_tokens IS NOT NULL ORDER BY benchmark, model_name, run_id"
    ).fetchall()
    if not rows:
        return False
    plt = _pyplot()
    benches = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = _grid(plt, len(benches))
    for ax, bench in zip(axes, benches, strict=False):
        series: dict[tuple, list] = {}
        for b, model, run, tokens, _ in rows:
            if b == bench:
                series.setdefault((model, run), []).append(tokens)
        labels = _series_labels(series)
        top = max(max(v) for v in series.values())
        bins = max(10, min(50, int(math.sqrt(sum(len(v) for v in series.values())))))
        for key, values in series.items():
            ax.hist(values, bins=bins, range=(0, max(top, 1)), histtype="step", linewidth=1.5,
                    label=f"{labels[key]} (median {sorted(values)[len(values) // 2]})")
        ax.set_title(bench.upper())
        ax.set_xlabel("completion tokens")
        ax.set_ylabel("samples")
        ax.legend(fontsize="small")
    fig.suptitle("Completion-length distributions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_curation_funnel(con, path: Path) -> bool:
    """Samples through each curation step, summed over curated runs and strata (`curation_funnel`)."""
    if "curation_funnel" not in _relations(con):
        return False
    rows = con.execute(
        "SELECT stage, stage_kind, sum(n_rows)::BIGINT AS n FROM curation_funnel "
        "GROUP BY stage, stage_kind, stage_order ORDER BY stage_order"
    ).fetchall()
    # Rules that removed nothing only add empty bars.
    rows = [r for r in rows if r[2] or r[1] == "count"]
    if not rows or not any(r[2] for r in rows):
        return False
    samples = next((r[2] for r in rows if r[0] == "samples"), None) or max(r[2] for r in rows)
    colors = {"count": "#4C72B0", "dropped": "#8C8C8C", "rejected": "#C44E52", "sft_dropped": "#DD8452"}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.6))
    bars = ax.barh(range(len(rows)), [r[2] for r in rows], color=[colors.get(r[1], "#4C72B0") for r in rows])
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    top = max(r[2] for r in rows)
    for bar, (_, _, n) in zip(bars, rows, strict=True):
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2,
                f"{n:,} ({100 * n / samples:.1f}%)", va="center", fontsize="small")
    ax.set_xlim(0, top * 1.3)
    ax.set_xlabel("samples (share of all samples); red: rejected by a rule, orange: dropped from SFT")
    ax.set_title("Curation funnel")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------ main


def _new_directory(root: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(100):  # two reports in one second get distinct folders
        path = root / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"{root}: cannot create a new report folder for {stamp}")


def build_report(out_root: Path | None = None) -> Report:
    import csv

    from warehouse import db

    if not lake.database_path().exists():
        raise UserError(f"{lake.database_path()}: no warehouse yet; run `reasonlite evaluate` first")
    con = db.connect(read_only=True)
    try:
        scores = load_scores(con)
        if not scores:
            raise UserError("eval_scores is empty: no evaluation run in the lake; run `reasonlite evaluate` first")
        paper = load_paper_results()
        now = datetime.now(UTC)
        report = Report(directory=_new_directory(Path(out_root or lake.reports_dir()), now))
        report.runs = len({r["run_id"] for r in scores})

        images = []
        for name, draw in (("budget_curve.png", plot_budget_curve),
                           ("completion_lengths.png", plot_completion_lengths),
                           ("curation_funnel.png", plot_curation_funnel)):
            path = report.directory / name
            if draw(con, path):
                images.append(name)
                report.files.append(path)
            else:
                report.skipped.append(f"{name}: its mart is missing or empty")

        table = report.directory / "eval_scores.csv"
        with open(table, "w", newline="") as sink:
            writer = csv.DictWriter(sink, fieldnames=list(scores[0]))
            writer.writeheader()
            writer.writerows(scores)
        report.files.append(table)

        markdown = report.directory / "report.md"
        markdown.write_text(render_markdown(scores, paper, images, now.isoformat(timespec="seconds")))
        report.files.insert(0, markdown)
        return report
    finally:
        con.close()
