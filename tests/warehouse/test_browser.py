"""The report and the app in a real headless Chromium (Debian's `chromium`, driven by Playwright):
hostile text from the lake never runs, report.html makes no request at all, the app's pages load
and link up (problem list -> problem page -> back), and screenshots are taken.

The lake is tests/warehouse/viewer_lake.py: payloads that would set ``window.__xss`` or open a
dialog, brought in by `reasonlite ingest` / `import-generations` and curated by the real dbt build.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.warehouse import viewer_lake
from tests.warehouse.serve_process import serving
from tests.warehouse.viewer_lake import BREAKOUT, EVAL_MODEL, HOSTILE_ANSWER, PAYLOADS, SOURCE, TEMPLATE

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium); "
                       "`apt-get install -y chromium` (.ci/run does it)"),
]

# Elements or attributes a payload would have created had it been parsed as HTML.
INJECTED = ("img[onerror], svg[onload], [onmouseover], a[href^='javascript:'], "
            "script:not([data-trusted])")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return viewer_lake.built_root(tmp_path_factory)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Watched:
    """A page whose dialogs, script errors and requests are recorded."""

    def __init__(self, browser, allowed_prefix: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r):
            self.requests.append(r.request.url)
            if r.request.url.startswith(allowed_prefix):
                r.continue_()
            else:  # nothing may leave the machine: refuse and remember
                self.blocked.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)

    def nothing_ran(self) -> None:
        assert self.page.evaluate("typeof window.__xss") == "undefined", self.page.evaluate("window.__xss")
        assert self.dialogs == []
        assert self.blocked == []

    def open_everything(self) -> None:
        # Collapsed texts open, so their contents are parsed and rendered too.
        self.page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        self.page.wait_for_timeout(200)

    def close(self) -> None:
        self.context.close()


def test_report_html_is_self_contained_and_hostile_text_never_runs(root, browser, tmp_path):
    from evaluation.report import build_report

    with viewer_lake.environment(root):
        report = build_report(tmp_path / "reports")
    page_file = report.directory / "report.html"
    url = page_file.as_uri()
    watched = Watched(browser, url)
    try:
        page = watched.page
        page.goto(url)
        page.wait_for_selector(".js-plotly-plot .main-svg")
        # Every chart rendered: the curation ones and, with the eval run, budget curve and lengths.
        charts = page.locator(".js-plotly-plot")
        assert charts.count() >= 7
        for i in range(charts.count()):
            assert charts.nth(i).locator(".main-svg").count() >= 1
        # Hover over every chart (hover labels render trace names, which come from the lake).
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            if box:
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(300)
        watched.nothing_ran()
        assert watched.requests == [url]  # the file itself and nothing else: scripts and data are inline
        assert watched.errors == []
        # Our scripts are Plotly's and the charts'; none came from the lake.
        assert page.locator("img, svg[onload], a[href^='javascript:'], [onerror], [onmouseover]").count() == 0
        # Hostile names show as the text they are, in tables and in chart legends.
        assert page.locator("td", has_text=EVAL_MODEL).count() >= 1
        assert page.locator(".legend text", has_text=EVAL_MODEL).count() >= 1
        text = page.inner_text("body")
        assert "Curation funnel" in text and "Threshold sweep" in text and "Evaluation scores" in text
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        watched.close()


def test_app_problem_list_to_problem_page_and_back_with_hostile_text_inert(root, browser, tmp_path):
    with serving(root) as base:
        watched = Watched(browser, base)
        try:
            page = watched.page
            page.goto(base + "/")
            assert page.locator("h1").inner_text() == "Overview"
            page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

            # A filtered list, through the form as a person would use it.
            page.click("nav >> text=Problems")
            page.select_option("select[name=source]", SOURCE)
            page.fill("input[name=kept_min]", "5")  # the hostile problems keep 7 of 8; plain ones at most 4
            page.click("button[type=submit]")
            page.wait_for_load_state()
            assert "source=web" in page.url and "kept_min=5" in page.url
            list_url = page.url
            rows = page.locator("table.problems tbody tr")
            assert rows.count() >= 2
            page.screenshot(path=str(tmp_path / "problems.png"), full_page=True)
            watched.nothing_ran()

            # Click through to the problem whose statement breaks out of its tags if unescaped.
            page.click(f"a.problem-link:text-is('{SOURCE}:3')")
            page.wait_for_load_state()
            assert page.url.startswith(f"{base}/problems/{SOURCE}%3A3")
            assert page.locator("h1").inner_text() == f"Problem {SOURCE}:3"
            watched.open_everything()
            statement = page.inner_text("pre.statement")
            assert TEMPLATE in statement and BREAKOUT in statement  # verbatim, as text
            body = page.inner_text("body")
            for payload in PAYLOADS:
                assert payload in body, payload
            assert HOSTILE_ANSWER in page.inner_text("table.tally")
            assert page.locator("table.samples tbody tr").count() == 12  # 8 teacher + 4 eval samples
            assert page.locator(INJECTED).count() == 0
            watched.nothing_ran()
            page.screenshot(path=str(tmp_path / "problem.png"), full_page=True)

            # Back to the same filtered page, by the page's own link and by the browser's button.
            page.click("#back")
            page.wait_for_load_state()
            assert page.url == list_url
            page.go_back()
            page.wait_for_load_state()
            assert page.url.startswith(f"{base}/problems/{SOURCE}%3A3")
            page.go_back()
            page.wait_for_load_state()
            assert page.url == list_url and page.locator("table.problems tbody tr").count() == rows.count()

            # Every other page with hostile text, details open.
            for path in ["/runs", "/runs/teacher-web", "/runs/eval-web"] + [f"/problems/{SOURCE}:{i}" for i in range(3)]:
                page.goto(base + path)
                watched.open_everything()
                assert page.locator(INJECTED).count() == 0, path
                watched.nothing_ran()
            assert watched.errors == []
            assert all(u.startswith(base) for u in watched.requests)
        finally:
            watched.close()
    for name in ("overview", "problems", "problem"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000

