"""`reasonlite report`: the curation and evaluation marts as tables and plots a person can read.

Everything comes from the dbt marts (``curation_funnel``, ``threshold_sweep``, ``pseudo_labels``,
``judged_generations``, ``contamination``, ``judge_agreement``, ``eval_scores``,
``eval_budget_curve``, ``eval_samples``) through the read-only DuckDB connection, so each number in
the report is the same number ``reasonlite sql`` shows, and names its run id. A lake with teacher
runs only (no evaluation yet) gets the curation part.

Output, under ``warehouse.lake.reports_dir()/<UTC timestamp>/``:

* ``report.html`` — one self-contained page (Plotly's JavaScript, styles and data inline; it makes
  no request): the curation funnel per run and stratum, the threshold sweep as heatmaps, vote
  shares and label sources per problem source, CoT lengths per stratum, contamination, the judge
  agreement when present; with evaluations, Table 1 beside the paper, every metric with its
  interval, Table 1 with bootstrap intervals and pass@k for k = 1..n (a table, and a plot per
  model) from the eval_problem_results mart, budget curves and completion lengths. Text from
  the lake (run ids, model names, answers) is escaped, in the tables and in the charts;
* ``report.md`` — Table 1 of the paper (rows = models, columns = benchmark × {avg@16, pass@8})
  with the published rows beside ours, the same with bootstrap intervals, pass@k for k = 1..n,
  then every metric per run × benchmark (or, before any evaluation, the curation funnel);
* ``eval_scores.csv`` — the mart rows behind the tables (when there are evaluations);
* ``budget_curve.png``, ``completion_lengths.png``, ``curation_funnel.png`` (when the marts exist).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import markupsafe
import yaml

from evaluation.benchmarks import BENCHMARKS, PAPER_BENCHMARKS
from evaluation.compare import DEFAULT_SCORING as PAPER_SCORING
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


@dataclass
class Intervals:
    """The bootstrap numbers of evaluation/compare.py over the eval_problem_results mart, computed once
    for report.html and report.md: Table 1 with 95 % intervals, and pass@k for k = 1..n per run."""

    table1: object  # DataFrame: compare.table1_intervals
    curves: object  # DataFrame: compare.pass_curves


# ------------------------------------------------------------------------------------------ data


def _relations(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def load_scores(con):
    """eval_scores as a list of dicts, one per run × benchmark (latest run first per model)."""
    if "eval_scores" not in _relations(con):
        return []
    # Each run is scored twice (column scoring): upstream's protocol, the paper's, first.
    cursor = con.execute("SELECT * FROM eval_scores ORDER BY model_name, benchmark, finished_at DESC NULLS LAST, "
                         f"run_id, scoring <> '{PAPER_SCORING}', scoring")
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def paper_scored(scores: list[dict]) -> list[dict]:
    """The rows scored as the paper scored (Table 1 compares only like with like)."""
    return [row for row in scores if row.get("scoring", PAPER_SCORING) == PAPER_SCORING]


def load_intervals(con, scores: list[dict], paper: dict) -> Intervals | None:
    """None before any evaluation or without the eval_problem_results mart."""
    from evaluation import compare

    if not scores or "eval_problem_results" not in _relations(con):
        return None
    return Intervals(compare.table1_intervals(con, paper), compare.pass_curves(con))


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


def table1(scores: list[dict], paper: dict) -> tuple[list[str], list[list[str]]]:
    """Table 1 of the paper: header and rows (ours first, marked **bold** in markdown, then the paper's),
    ours scored by the paper's protocol."""
    scores = paper_scored(scores)
    benches = table_benchmarks(scores)
    header = ["Model", "n"] + [f"{b.upper()} {m}" for b in benches for m, _ in TABLE_METRICS]
    rows = []
    for label, cells in table_rows(scores):
        ns = sorted({c["n"] for c in cells.values() if c.get("n") is not None})
        values = []
        for bench in benches:
            cell = cells.get(bench)
            # † marks a slice (--limit): fewer problems than the full benchmark.
            mark = "†" if cell and (BENCHMARKS[bench].size or 0) > (cell.get("n_problems") or 0) else ""
            values += [_pct(cell.get(col)) + (mark if cell.get(col) is not None else "") if cell else DASH
                       for _, col in TABLE_METRICS]
        rows.append([f"**{label}** (ours)", "/".join(map(str, ns)) or DASH, *values])
    for model in paper["models"]:
        values = []
        for bench in benches:
            published = model.get(bench) or {}
            values += [_num(published.get(metric)) for metric, _ in TABLE_METRICS]
        rows.append([f"{model['model']} (paper)", "16", *values])
    return header, rows


def render_table1(scores: list[dict], paper: dict) -> str:
    header, rows = table1(scores, paper)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


DETAIL_COLUMNS = (
    ("run", "run_id", str), ("model", "model_name", str), ("benchmark", "benchmark", str), ("scoring", "scoring", str),
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


def render_funnel_markdown(funnel: list[dict]) -> str:
    lines = ["| stage | samples | share of samples |", "|---|---|---|"]
    for row in funnel:
        lines.append(f"| {row['stage']} | {row['n_rows']:,} | {_pct(row['share'])} |")
    return "\n".join(lines)


def render_markdown(scores: list[dict], paper: dict, images: list[str], created: str,
                    funnel: list[dict] | None = None, intervals: Intervals | None = None) -> str:
    runs = sorted({r["run_id"] for r in scores})
    parts = [
        "# ReasonLite report",
        "",
        f"Generated {created} from the warehouse `{lake.database_path()}` (lake `{lake.lake_root()}`). "
        "`report.html` beside this file has every chart of the curation and the evaluations.",
        "",
    ]
    if funnel:
        parts += [
            "## Curation funnel (all curated runs and strata, %)",
            "",
            render_funnel_markdown(funnel),
            "",
        ]
    if not scores:
        parts += ["No evaluation in the warehouse yet (`reasonlite evaluate`).", ""]
        if images:
            parts += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
        return "\n".join(parts)
    parts += [
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
        *_markdown_intervals(intervals),
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


def _markdown_intervals(intervals: Intervals | None) -> list[str]:
    """Table 1 with bootstrap intervals beside the paper, and pass@k for k = 1..n (compare.py's renderers)."""
    from evaluation import compare

    if intervals is None:
        return []
    parts = []
    if not intervals.table1.empty:
        parts += [
            "## Table 1 with 95 % intervals (%)",
            "",
            "Our avg@n and pass@8 on the paper's benchmarks with a 95 % interval (bootstrap over the problems "
            f"and the samples within each problem, {compare.DEFAULT_RESAMPLES} resamples; `reasonlite compare`'s "
            "method), beside the paper's figure; ✗ marks a published number outside our interval.",
            "",
            compare.table1_markdown(intervals.table1),
            "",
        ]
    if not intervals.curves.empty:
        parts += [
            "## pass@k for k = 1..n (%)",
            "",
            "Unbiased estimator 1 − C(n−c, k)/C(n, k) from the n samples of each problem (c of them right), "
            "averaged over the problems; report.html has each value's 95 % interval and a plot per model.",
            "",
            compare.pass_curves_markdown(intervals.curves),
            "",
        ]
    return parts


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
        f"WHERE scoring = '{PAPER_SCORING}' "
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


# ------------------------------------------------------------------------------------------ html

HTML_TEMPLATE = Path(__file__).with_name("templates") / "report.html"
PLOT_HEIGHT = 380
COLORS = {"count": "#4C72B0", "dropped": "#8C8C8C", "rejected": "#C44E52", "sft_dropped": "#DD8452"}


@dataclass
class HtmlTable:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    """One part of report.html: a title, a sentence on what it shows, charts and tables."""

    title: str
    anchor: str
    intro: str = ""
    figures: list[str] = field(default_factory=list)  # Plotly's HTML for each chart
    tables: list[HtmlTable] = field(default_factory=list)
    empty: str = ""  # shown instead when the mart is missing or empty


def _text(value) -> str:
    """Lake text as a chart label: Plotly.js reads a subset of HTML in labels (<b>, <a href>, <br>),
    so label text is entity-escaped and shows as the characters it is."""
    return html.escape(str(value), quote=False)


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _figure_html(fig, height: int = PLOT_HEIGHT) -> str:
    fig.update_layout(template="plotly_white", height=height, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      font={"size": 12}, legend={"font": {"size": 11}})
    return fig.to_html(full_html=False, include_plotlyjs=False,
                       config={"displaylogo": False, "responsive": True})


def _bin_width(top: float, bins: int = 40) -> int:
    """A round histogram bin width (1, 2, 5 x 10^k) giving about ``bins`` bins up to ``top``."""
    raw = max(1.0, top / bins)
    power = 10 ** math.floor(math.log10(raw))
    return int(next(step * power for step in (1, 2, 5, 10) if step * power >= raw))


def section_funnel(con, have: set[str]) -> Section:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    section = Section("Curation funnel", "funnel", "Samples through each curation step, per curated run and "
                      "stratum (mart curation_funnel). A sample counts under the first rule it fails; red: rejected "
                      "by a rule, orange: dropped from SFT, grey: duplicate lake rows.")
    if "curation_funnel" not in have:
        section.empty = "No curation_funnel mart yet: run `reasonlite curate`."
        return section
    rows = _rows(con, "SELECT run_id, stratum, stage, stage_kind, stage_order, n_rows, share FROM curation_funnel "
                      "WHERE stage_kind <> 'llm' ORDER BY run_id, stratum, stage_order")
    shown = {r["stage"] for r in rows if r["n_rows"] or r["stage_kind"] == "count"}
    rows = [r for r in rows if r["stage"] in shown]
    if not rows:
        section.empty = "The curation_funnel mart is empty (no curated samples yet)."
        return section
    stages = list(dict.fromkeys(r["stage"] for r in sorted(rows, key=lambda r: r["stage_order"])))
    kinds = {r["stage"]: r["stage_kind"] for r in rows}
    groups = list(dict.fromkeys((r["run_id"], r["stratum"]) for r in rows))
    # One small chart per run / stratum, stages in flow order, coloured by what the stage does.
    cols = min(3, len(groups))
    fig = make_subplots(rows=math.ceil(len(groups) / cols), cols=cols, shared_yaxes=True,
                        subplot_titles=[_text(f"{run} / {stratum}") for run, stratum in groups],
                        horizontal_spacing=0.03, vertical_spacing=0.08)
    for i, (run_id, stratum) in enumerate(groups):
        counts = {r["stage"]: r["n_rows"] for r in rows if (r["run_id"], r["stratum"]) == (run_id, stratum)}
        fig.add_trace(go.Bar(y=stages, x=[counts.get(s, 0) for s in stages], orientation="h", showlegend=False,
                             marker_color=[COLORS.get(kinds[s], "#4C72B0") for s in stages],
                             name=_text(f"{run_id} / {stratum}"), hovertemplate="%{y}: %{x:,}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="samples")
    fig.update_layout(title="Curation funnel per run / stratum")
    section.figures.append(_figure_html(fig, height=max(PLOT_HEIGHT, (24 * len(stages) + 80)
                                                        * math.ceil(len(groups) / cols))))
    header = ["stage"] + [f"{run} / {stratum}" for run, stratum in groups]
    table = []
    for stage in stages:
        cells = []
        for group in groups:
            match = next((r for r in rows if (r["run_id"], r["stratum"]) == group and r["stage"] == stage), None)
            cells.append(f"{match['n_rows']:,} ({_pct(match['share'])} %)" if match else DASH)
        table.append([stage, *cells])
    section.tables.append(HtmlTable(header, table, "samples (share of the run's samples in that stratum)"))
    return section


def section_threshold_sweep(con, have: set[str]) -> Section:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    section = Section("Threshold sweep", "sweep", "What the vote rule would do at each vote_ratio × min_votes "
                      "(mart threshold_sweep); the current setting is outlined. Rebuild with "
                      "`reasonlite curate --vars '{vote_ratio: 0.8, min_votes: 3}'` to pick another.")
    if "threshold_sweep" not in have:
        section.empty = "No threshold_sweep mart yet: run `reasonlite curate`."
        return section
    rows = _rows(con, "SELECT * FROM threshold_sweep ORDER BY vote_ratio, min_votes")
    if not rows:
        section.empty = "The threshold_sweep mart is empty."
        return section
    ratios = sorted({r["vote_ratio"] for r in rows})
    mins = sorted({r["min_votes"] for r in rows})
    metrics = [("solutions_kept", "solutions kept"), ("problems_labeled_by_vote", "problems labeled by vote"),
               ("labels_changed_from_dataset", "labels changed from the dataset")]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[title for _, title in metrics],
                        horizontal_spacing=0.07)
    cell = {(r["vote_ratio"], r["min_votes"]): r for r in rows}
    for col, (metric, title) in enumerate(metrics, start=1):
        z = [[cell[(ratio, m)][metric] if (ratio, m) in cell else None for m in mins] for ratio in ratios]
        fig.add_trace(go.Heatmap(z=z, x=[str(m) for m in mins], y=[f"{ratio:g}" for ratio in ratios],
                                 colorscale="Blues", showscale=False, texttemplate="%{z:,}", name=title,
                                 hovertemplate="vote_ratio %{y}, min_votes %{x}: %{z:,} " + title + "<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text="min_votes", type="category", row=1, col=col)
        fig.update_yaxes(title_text="vote_ratio" if col == 1 else None, type="category", row=1, col=col)
        current = next((r for r in rows if r.get("is_current")), None)
        if current:
            fig.add_shape(type="rect", xref=f"x{col if col > 1 else ''}", yref=f"y{col if col > 1 else ''}",
                          x0=mins.index(current["min_votes"]) - 0.5, x1=mins.index(current["min_votes"]) + 0.5,
                          y0=ratios.index(current["vote_ratio"]) - 0.5, y1=ratios.index(current["vote_ratio"]) + 0.5,
                          line={"color": "#C44E52", "width": 3})
    section.figures.append(_figure_html(fig, height=max(PLOT_HEIGHT, 40 * len(ratios) + 140)))
    return section


def section_labels(con, have: set[str]) -> Section:
    import plotly.graph_objects as go

    section = Section("Votes and labels", "labels", "Per problem source: the share of the top answer in each "
                      "problem's vote (mart pseudo_labels; problems without a vote are left out), and where each "
                      "problem's label comes from: the vote, the dataset, or none.")
    if "pseudo_labels" not in have:
        section.empty = "No pseudo_labels mart yet: run `reasonlite curate`."
        return section
    shares = _rows(con, "SELECT source, least(floor(top_share * 20), 19) / 20 AS bin, count(*) AS n FROM pseudo_labels "
                        "WHERE top_share IS NOT NULL GROUP BY ALL ORDER BY source, bin")
    sources = _rows(con, "SELECT source, label_source, count(*) AS n FROM pseudo_labels GROUP BY ALL "
                         "ORDER BY source, label_source")
    if not sources:
        section.empty = "The pseudo_labels mart is empty (no problems yet)."
        return section
    if shares:
        fig = go.Figure()
        for source in dict.fromkeys(r["source"] for r in shares):
            points = [r for r in shares if r["source"] == source]
            fig.add_trace(go.Bar(x=[r["bin"] + 0.025 for r in points], y=[r["n"] for r in points], width=0.05,
                                 name=_text(source), opacity=0.75))
        fig.update_layout(barmode="overlay", title="Top-answer vote share per problem",
                          xaxis={"title": "share of the answered samples that gave the top answer", "range": [0, 1]},
                          yaxis_title="problems")
        section.figures.append(_figure_html(fig))
    fig = go.Figure()
    names = list(dict.fromkeys(r["source"] for r in sources))
    for label_source, color in (("vote", "#4C72B0"), ("dataset", "#55A868"), ("none", "#8C8C8C")):
        counts = {r["source"]: r["n"] for r in sources if r["label_source"] == label_source}
        fig.add_trace(go.Bar(x=[_text(s) for s in names], y=[counts.get(s, 0) for s in names], name=label_source,
                             marker_color=color))
    fig.update_layout(barmode="stack", title="Label source per problem source", yaxis_title="problems",
                      xaxis={"type": "category"})
    section.figures.append(_figure_html(fig))
    return section


def section_cot_lengths(con, have: set[str]) -> Section:
    import plotly.graph_objects as go

    section = Section("CoT lengths per stratum", "cot", "Completion tokens of the kept samples (mart "
                      "judged_generations, keep = true) in each stratum: what the two SFT stages train on.")
    if "judged_generations" not in have:
        section.empty = "No judged_generations mart yet: run `reasonlite curate`."
        return section
    stats = _rows(con, """
        SELECT stratum, count(*) AS samples, min(completion_tokens) AS min, quantile_cont(completion_tokens, 0.1) AS p10,
               median(completion_tokens) AS median, quantile_cont(completion_tokens, 0.9) AS p90,
               max(completion_tokens) AS max, avg(completion_tokens) AS mean
        FROM judged_generations WHERE keep AND completion_tokens IS NOT NULL GROUP BY stratum ORDER BY stratum""")
    if not stats:
        section.empty = "No kept sample with a token count yet."
        return section
    width = _bin_width(max(s["max"] for s in stats))
    bins = _rows(con, "SELECT stratum, floor(completion_tokens / ?) * ? AS bin, count(*) AS n FROM judged_generations "
                      "WHERE keep AND completion_tokens IS NOT NULL GROUP BY ALL ORDER BY stratum, bin", [width, width])
    fig = go.Figure()
    for stratum in dict.fromkeys(r["stratum"] for r in bins):
        points = [r for r in bins if r["stratum"] == stratum]
        fig.add_trace(go.Bar(x=[r["bin"] + width / 2 for r in points], y=[r["n"] for r in points], width=width,
                             name=_text(stratum), opacity=0.75))
    fig.update_layout(barmode="overlay", title="Completion tokens of kept samples", xaxis_title="completion tokens",
                      yaxis_title="samples")
    section.figures.append(_figure_html(fig))
    section.tables.append(HtmlTable(
        ["stratum", "kept samples", "min", "p10", "median", "p90", "max", "mean"],
        [[str(s["stratum"]), f"{s['samples']:,}", *(_num(s[k], 0) for k in ("min", "p10", "median", "p90", "max", "mean"))]
         for s in stats], "Completion tokens of the kept samples per stratum"))
    return section


def section_contamination(con, have: set[str]) -> Section:
    import plotly.graph_objects as go

    section = Section("Contamination", "contamination", "Training problems matching a benchmark problem after "
                      "text normalization (mart contamination): the same text ('exact') or a shared word n-gram "
                      "('ngram'). They are excluded from the SFT data.")
    if "contamination" not in have:
        section.empty = "No contamination mart yet: run `reasonlite curate`."
        return section
    rows = _rows(con, "SELECT source, benchmark_source, match_type, count(DISTINCT problem_id) AS problems, "
                      "count(*) AS pairs FROM contamination GROUP BY ALL ORDER BY source, benchmark_source, match_type")
    if not rows:
        section.empty = "No training problem matches a benchmark problem."
        return section
    fig = go.Figure()
    for match_type in dict.fromkeys(r["match_type"] for r in rows):
        points = [r for r in rows if r["match_type"] == match_type]
        fig.add_trace(go.Bar(x=[_text(f"{r['source']} → {r['benchmark_source']}") for r in points],
                             y=[r["problems"] for r in points], name=_text(match_type)))
    fig.update_layout(barmode="group", title="Contaminated training problems", yaxis_title="problems",
                      xaxis={"type": "category", "title": "training source → benchmark"})
    section.figures.append(_figure_html(fig))
    section.tables.append(HtmlTable(["training source", "benchmark", "match", "problems", "pairs"],
                                    [[str(r["source"]), str(r["benchmark_source"]), str(r["match_type"]),
                                      f"{r['problems']:,}", f"{r['pairs']:,}"] for r in rows],
                                    "Contaminated training problems per source and benchmark"))
    return section


def section_judge_agreement(con, have: set[str]) -> Section | None:
    """Only when an LLM judge ran: the symbolic grader against the LLM (mart judge_agreement)."""
    if "judge_agreement" not in have:
        return None
    rows = _rows(con, "SELECT comparison, scope, n_llm, n_compared, n_agree, n_disagree, agreement_rate, "
                      "n_llm_no_verdict, n_samples, llm_tokens FROM judge_agreement WHERE row_type = 'summary' "
                      "ORDER BY comparison, scope")
    if not any(r["n_llm"] for r in rows):
        return None
    disagreements = _rows(con, "SELECT comparison, scope, problem_id, gold, answer, symbolic, llm FROM judge_agreement "
                               "WHERE row_type = 'disagreement' ORDER BY comparison, scope, problem_id LIMIT 100")
    section = Section("Judge agreement", "judge", "The symbolic grader against the LLM judge where both spoke "
                      "(mart judge_agreement): per (label, answer) pair ('verdict') and per problem vote ('tally').")
    section.tables.append(HtmlTable(
        ["comparison", "scope", "LLM outputs", "compared", "agree", "disagree", "agreement", "no verdict", "samples",
         "LLM tokens"],
        [[r["comparison"], r["scope"], *(f"{r[k]:,}" if r[k] is not None else DASH
                                         for k in ("n_llm", "n_compared", "n_agree", "n_disagree")),
          _pct(r["agreement_rate"]) + " %", *(f"{r[k]:,}" if r[k] is not None else DASH
                                              for k in ("n_llm_no_verdict", "n_samples", "llm_tokens"))]
         for r in rows], "Agreement per comparison and scope"))
    if disagreements:
        section.tables.append(HtmlTable(
            ["comparison", "scope", "problem", "gold", "answer", "grader", "LLM"],
            [[str(r[k]) if r[k] is not None else DASH for k in ("comparison", "scope", "problem_id", "gold", "answer",
                                                                "symbolic", "llm")] for r in disagreements],
            "disagreements (first 100)"))
    return section


INTERVAL_Z = 1.96  # normal approximation: avg@n ± 1.96 standard errors across problems


def section_scores(scores: list[dict], paper: dict, intervals: Intervals | None) -> Section:
    section = Section("Evaluation scores", "scores", "Table 1 of the paper beside ours (% ; † = on a slice of the "
                      "benchmark), then every metric per run × benchmark (mart eval_scores). The interval is "
                      f"avg@n ± {INTERVAL_Z} standard errors of the per-problem accuracy (normal approximation); "
                      "where the eval_problem_results mart exists, Table 1 also comes with bootstrap intervals "
                      "beside the paper's figures, and pass@k for every k with its interval, as a table and a "
                      "plot per model.")
    if not scores:
        section.empty = "No evaluation in the warehouse yet: run `reasonlite evaluate`."
        return section
    header, rows = table1(scores, paper)
    section.tables.append(HtmlTable(header, [[row[0].replace("**", ""), *row[1:]] for row in rows],
                                    "Table 1 — avg@16 and pass@8 (%)"))
    detail_header = [h for h, _, _ in DETAIL_COLUMNS]
    detail_header.insert(detail_header.index("± s.e.") + 1, "95 % interval")
    detail_rows = []
    for row in scores:
        cells = [fmt(row.get(col)) if row.get(col) is not None else DASH for _, col, fmt in DETAIL_COLUMNS]
        avg, err = row.get("avg_at_n"), row.get("std_err")
        interval = (f"{_pct(max(0.0, avg - INTERVAL_Z * err))}–{_pct(min(1.0, avg + INTERVAL_Z * err))}"
                    if avg is not None and err is not None else DASH)
        cells.insert(detail_header.index("95 % interval"), interval)
        detail_rows.append(cells)
    section.tables.append(HtmlTable(detail_header, detail_rows, "All metrics per run × benchmark (%)"))
    if intervals is not None:
        _add_bootstrap_intervals(section, intervals)
    return section


def _add_bootstrap_intervals(section: Section, intervals: Intervals) -> None:
    """The comparison work's intervals (evaluation/compare.py: bootstrap over problems and samples of
    the eval_problem_results mart): Table 1 with 95 % intervals beside the paper; pass@k for k = 1..n
    as a table and as one plot per model (a line per benchmark)."""
    import plotly.graph_objects as go

    from evaluation import compare

    table = intervals.table1
    if not table.empty:
        marks = {True: "✗ outside", False: "inside", None: DASH}
        rows = []
        for r in table.to_dict("records"):
            ours = (f"{_num(r['ours'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
                    if r["ours"] is not None and not _missing(r["ours"]) else DASH)
            published = f"{_num(r['paper'])} ({r['paper_model']})" if not _missing(r["paper"]) else DASH
            rows.append([str(r["model"]), str(r["benchmark"]), str(r["metric_ours"]), ours, published,
                         marks[None if _missing(r["paper_outside"]) else bool(r["paper_outside"])], str(r["run_id"])])
        section.tables.append(HtmlTable(
            ["model", "benchmark", "metric", "ours (95 % CI)", "paper", "paper outside ours", "run"], rows,
            f"Table 1 with 95 % intervals (%): bootstrap over the problems and the samples within each problem, "
            f"{compare.DEFAULT_RESAMPLES} resamples, percentile interval (reasonlite compare's method)"))
    curves = intervals.curves
    if curves.empty:
        return
    ks = sorted(int(k) for k in curves["k"].unique())
    rows = []
    for (model, bench), group in curves.groupby(["model", "benchmark"], sort=True):
        by_k = {int(r["k"]): r for r in group.to_dict("records")}
        rows.append([str(model), str(bench), str(group["n"].iloc[0]), str(group["n_problems"].iloc[0]),
                     *(_value_interval(by_k[k]) if k in by_k else DASH for k in ks), str(group["run_id"].iloc[0])])
    section.tables.append(HtmlTable(
        ["model", "benchmark", "n", "problems", *(f"pass@{k}" for k in ks), "run"], rows,
        "pass@k for k = 1..n (%): unbiased estimator 1 − C(n−c, k)/C(n, k) from the n samples of each problem, "
        f"95 % bootstrap interval in brackets ({compare.DEFAULT_RESAMPLES} resamples)"))
    for model, group in curves.groupby("model", sort=True):
        fig = go.Figure()
        for bench, points in group.groupby("benchmark", sort=True):
            points = points.sort_values("k")
            fig.add_trace(go.Scatter(
                x=list(points["k"]), y=list(points["pass_at_k"]), mode="lines+markers", name=_text(bench.upper()),
                error_y={"type": "data", "symmetric": False,
                         "array": [None if _missing(h) else h - v for h, v in zip(points["ci_high"], points["pass_at_k"],
                                                                               strict=True)],
                         "arrayminus": [None if _missing(lo) else v - lo for lo, v in zip(points["ci_low"],
                                                                                     points["pass_at_k"], strict=True)]}))
        fig.update_layout(title=_text(f"pass@k, {model} (95 % interval)"), showlegend=True,
                          xaxis={"title": "k", "dtick": 1}, yaxis={"title": "pass@k (%)", "rangemode": "tozero"})
        section.figures.append(_figure_html(fig))


def _value_interval(row: dict) -> str:
    value = _num(row["pass_at_k"])
    return value if _missing(row["ci_low"]) else f"{value} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def section_budget_curve(con, have: set[str]) -> Section | None:
    import plotly.graph_objects as go

    if "eval_budget_curve" not in have:
        return None
    rows = _rows(con, "SELECT benchmark, model_name, run_id, budget, accuracy FROM eval_budget_curve "
        f"WHERE scoring = '{PAPER_SCORING}' "
                      "ORDER BY benchmark, model_name, run_id, budget")
    if not rows:
        return None
    section = Section("Accuracy under a token budget", "budget", "Accuracy had generation stopped at each token "
                      "budget (mart eval_budget_curve): a sample counts as correct at budget B when it is correct "
                      "within B completion tokens.")
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        series: dict[tuple, list] = {}
        for r in rows:
            if r["benchmark"] == bench:
                series.setdefault((r["model_name"], r["run_id"]), []).append(r)
        labels = _series_labels(series)
        fig = go.Figure()
        for key, points in series.items():
            fig.add_trace(go.Scatter(x=[p["budget"] for p in points], y=[100 * (p["accuracy"] or 0) for p in points],
                                     mode="lines+markers", name=_text(labels[key])))
        fig.update_layout(title=_text(bench.upper()), showlegend=True,
                          xaxis={"type": "log", "title": "token budget (completion tokens)"},
                          yaxis={"title": "accuracy (%)", "rangemode": "tozero"})
        section.figures.append(_figure_html(fig))
    return section


def section_completion_lengths(con, have: set[str]) -> Section | None:
    import plotly.graph_objects as go

    if "eval_samples" not in have:
        return None
    top = con.execute("SELECT max(completion_tokens) FROM eval_samples WHERE is_scored").fetchone()[0]
    if top is None:
        return None
    width = _bin_width(top)
    rows = _rows(con, "SELECT benchmark, model_name, run_id, floor(completion_tokens / ?) * ? AS bin, count(*) AS n "
                      "FROM eval_samples WHERE is_scored AND completion_tokens IS NOT NULL GROUP BY ALL "
                      "ORDER BY benchmark, model_name, run_id, bin", [width, width])
    section = Section("Completion lengths", "lengths", "Completion tokens of the scored evaluation samples "
                      "(mart eval_samples), per benchmark and model.")
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        series: dict[tuple, list] = {}
        for r in rows:
            if r["benchmark"] == bench:
                series.setdefault((r["model_name"], r["run_id"]), []).append(r)
        labels = _series_labels(series)
        fig = go.Figure()
        for key, points in series.items():
            fig.add_trace(go.Bar(x=[p["bin"] + width / 2 for p in points], y=[p["n"] for p in points], width=width,
                                 name=_text(labels[key]), opacity=0.7))
        fig.update_layout(barmode="overlay", title=_text(bench.upper()), showlegend=True, xaxis_title="completion tokens",
                          yaxis_title="samples")
        section.figures.append(_figure_html(fig))
    return section


def render_html(con, scores: list[dict], paper: dict, created: str, intervals: Intervals | None = None) -> str:
    import jinja2
    from plotly.offline import get_plotlyjs

    from warehouse.serve.data import published_build_id

    have = _relations(con)
    sections = [
        section_funnel(con, have),
        section_threshold_sweep(con, have),
        section_labels(con, have),
        section_cot_lengths(con, have),
        section_contamination(con, have),
        section_judge_agreement(con, have),
        section_scores(scores, paper, intervals),
        section_budget_curve(con, have),
        section_completion_lengths(con, have),
    ]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HTML_TEMPLATE.parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(HTML_TEMPLATE.name).render(
        sections=[s for s in sections if s is not None],
        figures=lambda s: [markupsafe.Markup(f) for f in s.figures],  # Plotly's own markup, data JSON-escaped
        plotly_js=markupsafe.Markup(get_plotlyjs()),
        created=created, database=str(lake.database_path()), lake_root=str(lake.lake_root()),
        build_id=published_build_id(),
        runs=sorted({r["run_id"] for r in scores}),
    )


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


CURATION_MARTS = {"curation_funnel", "pseudo_labels", "judged_generations", "threshold_sweep"}


def load_funnel_totals(con) -> list[dict]:
    """curation_funnel summed over runs and strata: stage, samples, share of all samples."""
    if "curation_funnel" not in _relations(con):
        return []
    rows = _rows(con, """
        SELECT stage, stage_kind, sum(n_rows)::BIGINT AS n_rows FROM curation_funnel WHERE stage_kind <> 'llm'
        GROUP BY stage, stage_kind, stage_order ORDER BY stage_order""")
    samples = next((r["n_rows"] for r in rows if r["stage"] == "samples"), 0)
    return [{**r, "share": r["n_rows"] / samples if samples else None}
            for r in rows if r["n_rows"] or r["stage_kind"] == "count"]


def build_report(out_root: Path | None = None) -> Report:
    import csv

    from warehouse import db

    if not lake.database_path().exists():
        raise UserError(f"{lake.database_path()}: no warehouse yet; run `reasonlite curate` (teacher runs) or "
                        "`reasonlite evaluate` first")
    con = db.readonly_session()
    try:
        scores = load_scores(con)
        if not scores and not CURATION_MARTS & _relations(con):
            raise UserError(f"{lake.database_path()}: neither curation marts nor eval_scores to report; run "
                            "`reasonlite curate` or `reasonlite evaluate` first")
        paper = load_paper_results()
        now = datetime.now(UTC)
        created = now.isoformat(timespec="seconds")
        report = Report(directory=_new_directory(Path(out_root or lake.reports_dir()), now))
        report.runs = len({r["run_id"] for r in scores})

        page = report.directory / "report.html"
        intervals = load_intervals(con, scores, paper)
        page.write_text(render_html(con, scores, paper, created, intervals), encoding="utf-8")
        report.files.append(page)

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

        if scores:
            table = report.directory / "eval_scores.csv"
            with open(table, "w", newline="") as sink:
                writer = csv.DictWriter(sink, fieldnames=list(scores[0]))
                writer.writeheader()
                writer.writerows(scores)
            report.files.append(table)
        else:
            report.skipped.append("eval_scores.csv: no evaluation yet")

        markdown = report.directory / "report.md"
        markdown.write_text(render_markdown(scores, paper, images, created, load_funnel_totals(con), intervals))
        report.files.insert(0, markdown)
        return report
    finally:
        con.close()
