"""`reasonlite report`: the table and the plots exist, are valid, and show the marts' numbers."""

from __future__ import annotations

import struct

import pytest

from tests.evaluation.test_metrics import build_marts, fetch, isolated_lake, write_lake

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """Width and height from the IHDR chunk; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report_lake(tmp_path_factory, benchmarks_dir):
    with isolated_lake(tmp_path_factory.mktemp("eval-report")) as root:
        write_lake(benchmarks_dir)
        build_marts(full=True)  # curation marts too: the report plots the curation funnel
        yield root


@pytest.mark.slow
def test_report_writes_table_and_valid_plots(report_lake):
    from matplotlib import image

    from warehouse.cli import main

    assert main(["report"]) == 0
    folders = sorted((report_lake / "reports").iterdir())
    assert len(folders) == 1
    folder = folders[0]
    names = {p.name for p in folder.iterdir()}
    assert {"report.md", "report.html", "eval_scores.csv", "budget_curve.png", "completion_lengths.png",
            "curation_funnel.png"} <= names
    for name in ("budget_curve.png", "completion_lengths.png", "curation_funnel.png"):
        width, height = png_size(folder / name)
        assert width > 200 and height > 200
        pixels = image.imread(folder / name)  # decodes the whole image
        assert pixels.shape[:2] == (height, width)
        assert pixels.std() > 0.01  # not a blank canvas

    markdown = (folder / "report.md").read_text()
    # Table 1 layout: the paper's benchmarks x {avg@16, pass@8}, published rows beside ours.
    assert "| Model | n | AMC23 avg@16 | AMC23 pass@8 | AIME25 avg@16 | AIME25 pass@8 | AIME24 avg@16 | AIME24 pass@8 |" in markdown
    assert "| ReasonLite-0.6B (paper) | 16 | 95.2 | 100.0 | 62.9 | 84.1 | 75.2 | 90.2 |" in markdown
    assert "| ReasonLite-0.6B-Turbo (paper) | 16 | 81.6 | 99.3 | 42.7 | 69.2 | 57.1 | 79.6 |" in markdown
    # Our rows carry the eval_scores numbers (percent, one decimal; † = a slice of the 40 AMC23
    # problems); no AIME run -> dashes.
    for row in fetch("SELECT model_name, n, avg_at_n, pass_at_8 FROM eval_scores"):
        pass8 = "—" if row["pass_at_8"] is None else f"{100 * row['pass_at_8']:.1f}†"
        expected = (f"| **{row['model_name']}** (ours) | {row['n']} | {100 * row['avg_at_n']:.1f}† | {pass8} "
                    "| — | — | — | — |")
        assert expected in markdown
    assert "eval-a" in markdown and "eval-b" in markdown  # every number names its run


@pytest.mark.slow
def test_report_twice_gets_two_folders(report_lake):
    from evaluation.report import build_report

    first, second = build_report(), build_report()
    assert first.directory != second.directory
    assert (second.directory / "report.md").exists()


def test_report_without_warehouse_is_one_line_error(lake_env, capsys):
    from warehouse.cli import main

    assert main(["report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reasonlite report: error:" in err[0] and "reasonlite evaluate" in err[0]


def test_table1_leaves_unknown_cells_empty():
    from evaluation.report import render_table1

    paper = {"models": [{"model": "Only-AIME24", "aime24": {"avg@16": 11.0}}]}
    scores = [{"run_id": "r", "benchmark": "aime24", "model_name": "m", "temperature": 0.6, "top_p": 0.95,
               "max_tokens": 100, "n": 4, "n_problems": 30, "avg_at_n": 0.25, "pass_at_8": None}]
    table = render_table1(scores, paper)
    assert "| **m** (ours) | 4 | — | — | — | — | 25.0 | — |" in table
    assert "| Only-AIME24 (paper) | 16 | — | — | — | — | 11.0 | — |" in table


def test_table1_takes_the_paper_scoring_and_the_details_show_both():
    """eval_scores has a row per scoring; Table 1 reads upstream's (the paper's), whatever the row order."""
    import duckdb

    from evaluation.report import load_scores, render_details, render_table1

    con = duckdb.connect()
    con.execute("CREATE TABLE eval_scores (run_id TEXT, benchmark TEXT, model_name TEXT, scoring TEXT, "
                "finished_at TIMESTAMP, temperature DOUBLE, top_p DOUBLE, max_tokens INT, n INT, n_problems INT, "
                "avg_at_n DOUBLE, pass_at_8 DOUBLE)")
    con.execute("INSERT INTO eval_scores VALUES ('r', 'aime24', 'm', 'strict', NULL, 0.6, 0.95, 100, 16, 30, 0.25, 0.5), "
                "('r', 'aime24', 'm', 'upstream', NULL, 0.6, 0.95, 100, 16, 30, 0.75, 0.875)")
    scores = load_scores(con)
    assert [row["scoring"] for row in scores] == ["upstream", "strict"]
    for rows in (scores, scores[::-1]):
        assert "| **m** (ours) | 16 | — | — | — | — | 75.0 | 87.5 |" in render_table1(rows, {"models": []})
    details = render_details(scores)
    assert "| r | m | aime24 | upstream | 30 | 16 | 75.0 |" in details
    assert "| r | m | aime24 | strict | 30 | 16 | 25.0 |" in details


# ------------------------------------------------------------------------------------ report.html


def html_tables(page: str) -> dict[str, list[list[str]]]:
    """Captioned tables of report.html: caption -> rows of unescaped cell texts."""
    import html
    import re

    tables = {}
    for caption, body in re.findall(r"<caption>(.*?)</caption>.*?<tbody>(.*?)</tbody>", page, re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
        tables[html.unescape(caption)] = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", r, re.S)]
                                          for r in rows]
    return tables


def assert_self_contained(page: str) -> None:
    """Nothing in report.html asks for another file: no external script, style, image, font or frame."""
    import re

    for pattern in (r"<script[^>]*\ssrc\s*=", r"<link\b", r"<img\b", r"<iframe\b", r"@import", r"url\(\s*['\"]?https?:"):
        assert not re.search(pattern, page, re.I), pattern
    assert page.count("Plotly.newPlot(") >= 5  # the charts, drawn by the inline Plotly


@pytest.fixture(scope="module")
def curation_only_lake(tmp_path_factory, benchmarks_dir):
    from tests.curation.lakes import scenario_lake
    from warehouse.curate import curate

    with isolated_lake(tmp_path_factory.mktemp("report-curation-only")) as root:
        scenario_lake(benchmarks_dir)  # teacher runs only: no evaluation at all
        result = curate(test=False, quiet=True)
        assert result.success, result.failures
        yield root


@pytest.mark.slow
def test_report_with_curation_alone_writes_html_md_and_funnel(curation_only_lake, capsys):
    from warehouse.cli import main

    with isolated_lake(curation_only_lake):  # this file's module fixtures each set the environment: take ours
        assert fetch("SELECT count(*) AS n FROM eval_scores")[0]["n"] == 0  # the case that used to refuse
        assert main(["report"]) == 0
        groups = fetch("SELECT DISTINCT run_id, stratum FROM curation_funnel ORDER BY run_id, stratum")
        funnel_rows = {(g["run_id"], g["stratum"]): fetch(
            f"SELECT stage, n_rows FROM curation_funnel WHERE run_id = '{g['run_id']}' "
            f"AND stratum = '{g['stratum']}' AND stage_kind <> 'llm'") for g in groups}
        kept = {r["stratum"]: r["n"] for r in fetch("SELECT stratum, count(*) AS n FROM judged_generations "
                                                     "WHERE keep GROUP BY stratum")}
    assert "(no eval_scores.csv: no evaluation yet)" in capsys.readouterr().out
    folder = next((curation_only_lake / "reports").iterdir())
    names = {p.name for p in folder.iterdir()}
    assert {"report.html", "report.md", "curation_funnel.png"} <= names
    assert "eval_scores.csv" not in names and "budget_curve.png" not in names
    assert "No evaluation in the warehouse yet" in (folder / "report.md").read_text()

    page = (folder / "report.html").read_text()
    assert_self_contained(page)
    for title in ("Curation funnel", "Threshold sweep", "Votes and labels", "CoT lengths per stratum",
                  "Contamination", "Evaluation scores"):
        assert f"<h2>{title}</h2>" in page
    assert "No evaluation in the warehouse yet" in page
    tables = html_tables(page)
    # The funnel table holds curation_funnel's numbers, per run / stratum.
    funnel = tables["samples (share of the run's samples in that stratum)"]
    by_stage = {row[0]: row[1:] for row in funnel}
    assert len(groups) == 2
    for i, group in enumerate(groups):
        for row in funnel_rows[(group["run_id"], group["stratum"])]:
            if row["stage"] in by_stage:
                assert by_stage[row["stage"]][i].startswith(f"{row['n_rows']:,} ("), (group, row)
    # Contamination: the scenario copies two AIME problems (exact and n-gram).
    contamination = tables["Contaminated training problems per source and benchmark"]
    assert {(r[2], r[3]) for r in contamination} == {("exact", "1"), ("ngram", "1")}
    # CoT lengths: per stratum, the kept samples' count.
    cot = tables["Completion tokens of the kept samples per stratum"]
    assert {r[0]: int(r[1].replace(",", "")) for r in cot} == kept


@pytest.mark.slow
def test_report_html_with_evaluations_has_the_score_tables(report_lake):
    import pandas as pd

    from evaluation import compare
    from evaluation.report import build_report, load_paper_results
    from warehouse import db

    with isolated_lake(report_lake):  # this file's module fixtures each set the environment: take ours
        report = build_report()
        scores = fetch("SELECT run_id, avg_at_n, std_err FROM eval_scores")
        con = db.connect(read_only=True)
        try:
            expected = compare.table1_intervals(con, load_paper_results()).to_dict("records")
        finally:
            con.close()
    page = (report.directory / "report.html").read_text()
    assert_self_contained(page)
    tables = html_tables(page)
    table1 = tables["Table 1 — avg@16 and pass@8 (%)"]
    assert ["ReasonLite-0.6B (paper)", "16", "95.2", "100.0", "62.9", "84.1", "75.2", "90.2"] in table1
    details = tables["All metrics per run × benchmark (%)"]
    for row in scores:
        shown = next(r for r in details if r[0] == row["run_id"])
        low, high = max(0, row["avg_at_n"] - 1.96 * row["std_err"]), min(1, row["avg_at_n"] + 1.96 * row["std_err"])
        assert f"{100 * low:.1f}–{100 * high:.1f}" in shown
    for title in ("Accuracy under a token budget", "Completion lengths"):
        assert f"<h2>{title}</h2>" in page
    # The comparison work's bootstrap intervals (mart eval_problem_results): Table 1 with intervals, pass@k.
    with_intervals = next(rows for caption, rows in tables.items() if caption.startswith("Table 1 with 95 % intervals"))
    assert len(with_intervals) == len(expected) >= 2
    for row, want in zip(with_intervals, expected, strict=True):
        if pd.notna(want["ours"]) and pd.notna(want["ci_low"]):
            assert row[3] == f"{want['ours']:.1f} [{want['ci_low']:.1f}, {want['ci_high']:.1f}]"
        else:  # no figure (pass@8 with n < 8) or no interval
            assert row[3].startswith("—") or "[—, —]" in row[3]
    # pass@k is drawn per model (a line per benchmark), not per benchmark.
    assert "pass@k, AMC23 (95 % interval)" not in page


# The designed runs (tests/evaluation/test_metrics.py): right samples per problem on amc23.
# eval-a: n = 16, c = 0, 16, 1, 5, 13 -> pass@1 = 35/80, pass@16 = 4/5 (one problem never right).
# eval-b: n = 4 (one errored sample leaves amc23:0 four), c = 2, 1, 4 -> pass@1 = 1.75/3, pass@4 = 1.
KNOWN_PASS_AT_K = {"eval-a": {1: 100 * 35 / 80, 16: 80.0}, "eval-b": {1: 100 * 1.75 / 3, 4: 100.0}}


def _bootstrap_tables(report_lake):
    from evaluation import compare
    from evaluation.report import build_report, load_paper_results
    from warehouse import db

    with isolated_lake(report_lake):  # this file's module fixtures each set the environment: take ours
        report = build_report()
        con = db.connect(read_only=True)
        try:
            return report, compare.table1_intervals(con, load_paper_results()), compare.pass_curves(con)
        finally:
            con.close()


@pytest.mark.slow
def test_report_md_has_table1_with_intervals_and_the_pass_at_k_table(report_lake):
    from evaluation import compare

    report, table1, curves = _bootstrap_tables(report_lake)
    markdown = (report.directory / "report.md").read_text()
    assert "## Table 1 with 95 % intervals (%)" in markdown
    assert not table1.empty and compare.table1_markdown(table1) in markdown
    assert "## pass@k for k = 1..n (%)" in markdown
    assert compare.pass_curves_markdown(curves) in markdown
    section = markdown.split("## pass@k for k = 1..n (%)")[1].split("\n## ")[0]
    lines = [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    columns, rows = lines[0], {cells[0]: dict(zip(lines[0], cells, strict=True)) for cells in lines[1:]}
    assert columns[:3] == ["model", "benchmark", "n"] and columns[3:] == [f"pass@{k}" for k in range(1, 17)]
    for run_id, known in KNOWN_PASS_AT_K.items():
        cells = rows[curves.loc[curves["run_id"] == run_id, "model"].iloc[0]]
        for k, value in known.items():
            assert cells[f"pass@{k}"] == f"{value:.1f}", (run_id, k, cells)
    assert cells["pass@5"] == "—"  # eval-b has n = 4: no pass@5


@pytest.mark.slow
def test_report_html_has_the_pass_at_k_table_and_a_plot_per_model(report_lake):
    import re

    report, _, curves = _bootstrap_tables(report_lake)
    page = (report.directory / "report.html").read_text()
    table = next(rows for caption, rows in html_tables(page).items() if caption.startswith("pass@k for k = 1..n"))
    header_row = page[page.index("<caption>pass@k for k = 1..n"):].split("</thead>")[0]
    header = re.findall(r"<th>(.*?)</th>", header_row)
    assert header[:4] == ["model", "benchmark", "n", "problems"] and header[4:-1] == [f"pass@{k}" for k in range(1, 17)]
    assert len(table) == 2
    for run_id, known in KNOWN_PASS_AT_K.items():
        row = next(r for r in table if r[-1] == run_id)
        cells = dict(zip(header, row, strict=True))
        for k, value in known.items():
            shown = curves[(curves["run_id"] == run_id) & (curves["k"] == k)].iloc[0]
            assert cells[f"pass@{k}"] == f"{value:.1f} [{shown['ci_low']:.1f}, {shown['ci_high']:.1f}]", cells
            assert shown["ci_low"] <= value + 1e-9 <= shown["ci_high"] + 1e-9
    assert cells["pass@5"] == "—"  # eval-b has n = 4
    for model in curves["model"].unique():
        assert f"pass@k, {model} (95 % interval)" in page
