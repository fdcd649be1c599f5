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
    assert {"report.md", "eval_scores.csv", "budget_curve.png", "completion_lengths.png",
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
