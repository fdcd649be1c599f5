"""`reasonlite serve` as a real process over a real lake (ingest + import-generations + curate):
what each page shows is what the marts say, filters and paging agree with SQL, hostile text is
escaped, nothing is written, a curate can run while it serves, a busy port is one line.

The same pages in a real browser: tests/warehouse/test_browser.py."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import subprocess

import httpx
import markupsafe
import pytest

from tests.warehouse import viewer_lake
from tests.warehouse.serve_process import REASONLITE, cli_env, free_port, serving
from tests.warehouse.viewer_lake import EVAL_RUN, PAYLOADS, SOURCE, TEACHER_RUN

pytestmark = pytest.mark.slow  # a real dbt build and a real server process


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return viewer_lake.built_root(tmp_path_factory)


@pytest.fixture(scope="module")
def base(root):
    with serving(root) as url:
        yield url


def sql(root, query: str, params: list | None = None) -> list[tuple]:
    from warehouse import db

    with viewer_lake.environment(root):
        con = db.connect(read_only=True)
        try:
            return con.execute(query, params or []).fetchall()
        finally:
            con.close()


def escape(text: str) -> str:
    """As the templates escape (Jinja's autoescape is markupsafe's)."""
    return str(markupsafe.escape(text))


def get(base: str, path: str, status: int = 200) -> httpx.Response:
    response = httpx.get(base + path, timeout=60)
    assert response.status_code == status, (path, response.status_code, response.text[:300])
    return response


def listed_ids(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'class="problem-link" href="[^"]*">([^<]*)</a>', page)]


def shown_total(page: str) -> int:
    match = re.search(r'<p class="count">([\d,]+) problems?', page)
    assert match, "no count line"
    return int(match.group(1).replace(",", ""))


# ------------------------------------------------------------------------------------ the list


FILTERS = [
    ("", "true"),
    (f"source={SOURCE}", f"l.source = '{SOURCE}'"),
    ("label_source=vote", "l.label_source = 'vote'"),
    ("label_source=dataset&share_max=0.8", "l.label_source = 'dataset' AND l.top_share <= 0.8"),
    ("share_min=0.5&share_max=0.75", "l.top_share BETWEEN 0.5 AND 0.75"),
    ("kept_min=2&kept_max=3", "coalesce(k.kept, 0) BETWEEN 2 AND 3"),
    ("kept_max=0", "coalesce(k.kept, 0) = 0"),
    ("contaminated=no&kept_min=1", "c.problem_id IS NULL AND coalesce(k.kept, 0) >= 1"),
]


@pytest.mark.parametrize("query,condition", FILTERS, ids=[q or "all" for q, _ in FILTERS])
def test_problem_list_filters_agree_with_the_marts(root, base, query, condition):
    expected = sql(root, f"""
        SELECT l.problem_id FROM pseudo_labels AS l
        LEFT JOIN (SELECT problem_id, count(*) FILTER (WHERE keep) AS kept FROM judged_generations GROUP BY ALL) AS k
            USING (problem_id)
        LEFT JOIN (SELECT DISTINCT problem_id FROM contamination) AS c USING (problem_id)
        WHERE {condition}""")
    expected_ids = {row[0] for row in expected}
    page = get(base, f"/problems?{query}&per_page=200").text
    assert shown_total(page) == len(expected_ids)
    assert set(listed_ids(page)) == expected_ids


def test_problem_list_pages_cover_every_problem_once_in_order(root, base):
    total = sql(root, "SELECT count(*) FROM pseudo_labels")[0][0]
    assert total > 25  # more than a page
    seen, page_no, next_links = [], 1, 0
    while True:
        page = get(base, f"/problems?per_page=25&page={page_no}").text
        seen += listed_ids(page)
        link = re.search(r'rel="next" href="([^"]*)"', page)
        if not link:
            break
        assert html.unescape(link.group(1)) == f"/problems?page={page_no + 1}&per_page=25"
        next_links += 1
        page_no += 1
    assert len(seen) == len(set(seen)) == total
    assert next_links == (total - 1) // 25
    # Natural order: web:2 before web:10.
    assert seen.index(f"{SOURCE}:2") < seen.index(f"{SOURCE}:10")
    # Past the end: an empty page, not an error.
    assert listed_ids(get(base, "/problems?per_page=25&page=999").text) == []


@pytest.mark.parametrize("query,field", [
    ("share_min=abc", "share_min"), ("share_max=1.5", "share_max"), ("kept_min=-1", "kept_min"),
    ("label_source=<script>", "label_source"), ("contaminated=maybe", "contaminated"), ("per_page=7", "per_page"),
    ("page=0", "page"),
])
def test_a_bad_filter_is_a_400_naming_the_field(base, query, field):
    page = get(base, f"/problems?{query}", status=400).text
    message = re.search(r'<p class="error">(.*?)</p>', page, re.S).group(1)
    assert message.startswith(f"{field}:") and "\n" not in message.strip()
    assert "<script>" not in page


# ------------------------------------------------------------------------------ problem & runs


def test_problem_page_shows_label_tally_and_every_sample_with_its_verdict(root, base):
    problem_id = f"{SOURCE}:2"
    page = get(base, f"/problems/{problem_id}").text
    label, label_source, dataset_label = sql(root, "SELECT label, label_source, dataset_label FROM pseudo_labels "
                                                   "WHERE problem_id = ?", [problem_id])[0]
    assert f"{escape(label)}</code> (source: <strong>{label_source}</strong>" in page
    assert f"dataset label</dt><dd><code>{escape(dataset_label)}</code>" in page
    tally = sql(root, "SELECT display_answer, answer_key, votes FROM int_answer_tallies WHERE problem_id = ? "
                      "ORDER BY vote_rank", [problem_id])
    assert len(tally) == 2
    shown = re.findall(r'<tr><td><code>(.*?)</code></td><td><code>(.*?)</code></td><td class="num">(\d+)</td>',
                       page.split('class="narrow tally"')[1].split("</table>")[0])
    assert [(html.unescape(a), html.unescape(k), int(v)) for a, k, v in shown] == [tuple(t) for t in tally]

    samples = page.split('<table class="samples">')[1]
    judged = sql(root, "SELECT count(*) FILTER (WHERE keep), count(*) FILTER (WHERE NOT keep) FROM judged_generations "
                       "WHERE problem_id = ?", [problem_id])[0]
    evals = sql(root, "SELECT count(*) FILTER (WHERE is_correct), count(*) FILTER (WHERE NOT is_correct) "
                      "FROM eval_samples WHERE problem_id = ?", [problem_id])[0]
    assert samples.count('<tr class="sample kept">') == judged[0] + evals[0]
    assert samples.count('<tr class="sample rejected">') == judged[1] + evals[1]
    reasons = sql(root, "SELECT reject_reason, count(*) FROM judged_generations WHERE problem_id = ? AND NOT keep "
                        "GROUP BY ALL", [problem_id])
    for reason, count in reasons:
        assert samples.count(f"<td>{reason}</td>") == count
    assert samples.count("<details><summary>reasoning") == 12  # 8 teacher + 4 eval samples, texts collapsed
    assert "<details open" not in samples
    # Per-problem evaluation results, as eval_samples counts them.
    assert f'<td class="num">{evals[0]} / {evals[0] + evals[1]}</td>' in page


def test_run_pages_show_the_manifest_the_funnel_and_per_problem_eval_results(root, base):
    runs = get(base, "/runs").text
    for run_id in (TEACHER_RUN, EVAL_RUN):
        assert f'href="/runs/{run_id}"' in runs
    teacher = get(base, f"/runs/{TEACHER_RUN}").text
    kept = sql(root, "SELECT stratum, n_rows FROM curation_funnel WHERE run_id = ? AND stage = 'kept'", [TEACHER_RUN])
    assert len(kept) == 2  # medium -> short, high -> long
    for stratum, n in kept:
        assert f'<td>{stratum}</td><td>kept</td><td class="num">{n:,}</td>' in teacher
    evaluation = get(base, f"/runs/{EVAL_RUN}").text
    per_problem = sql(root, "SELECT problem_id, count(*) FILTER (WHERE is_correct), count(*) FROM eval_samples "
                            "WHERE run_id = ? GROUP BY problem_id", [EVAL_RUN])
    assert len(per_problem) == 4
    for problem_id, correct, scored in per_problem:
        assert re.search(rf'href="/problems/{re.escape(problem_id.replace(":", "%3A"))}">{problem_id}</a></td>'
                         rf'<td><code>[^<]*</code></td><td class="num">{correct} / {scored}</td>', evaluation)


def test_unknown_ids_are_404_and_writes_are_refused(base):
    assert "no problem" in get(base, "/problems/web:does-not-exist", status=404).text
    assert "no run" in get(base, "/runs/no-such-run", status=404).text
    for path in ("/problems", f"/problems/{SOURCE}:0", "/runs"):
        assert httpx.post(base + path, timeout=30).status_code == 405


# ----------------------------------------------------------------------------------- hostile text


PAGES = ["/", "/problems", f"/problems?source={SOURCE}&per_page=200", "/runs", f"/runs/{TEACHER_RUN}",
         f"/runs/{EVAL_RUN}"] + [f"/problems/{SOURCE}:{i}" for i in range(4)]


@pytest.mark.parametrize("path", PAGES)
def test_hostile_text_is_escaped_on_every_page(base, path):
    response = get(base, path)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    body = response.text.lower()
    # The app has no script of its own: any <script>, handler or javascript: link would be injected.
    for needle in ("<script", "<img", "<svg", 'href="javascript:'):
        assert needle not in body, (path, needle)
    assert not re.search(r"<[a-z][^>]*\son\w+\s*=", body), path  # no event-handler attribute on any tag


def test_hostile_text_shows_verbatim_as_text(base):
    statement_pages = "".join(get(base, f"/problems/{SOURCE}:{i}").text for i in range(4))
    for payload in PAYLOADS:
        assert escape(payload) in statement_pages, payload
    assert escape(viewer_lake.HOSTILE_MODEL) in get(base, "/runs").text
    assert "{{ 7*7 }}" in statement_pages and ">49<" not in statement_pages  # no template evaluation


# ------------------------------------------------------------------------------ the process


def test_second_serve_on_a_busy_port_says_so_in_one_line(root, base):
    port = base.rsplit(":", 1)[1]
    proc = subprocess.run([*REASONLITE, "serve", "--port", port], env=cli_env(root), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and port in lines[0], proc.stderr
    assert httpx.get(base + "/runs", timeout=30).status_code == 200  # the first one is unharmed


def test_serve_binds_to_localhost_unless_told(root):
    from warehouse.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    port = free_port()
    proc = subprocess.Popen([*REASONLITE, "serve", "--port", str(port)], env=cli_env(root), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first and "read-only" in first
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def _digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "tmp" not in p.relative_to(root).parts}


def test_serve_writes_nothing_and_a_curate_runs_while_it_serves(root, tmp_path):
    copy = tmp_path / "warehouse"
    shutil.copytree(root, copy)
    before = _digest(copy)
    with serving(copy) as url:
        for path in PAGES:
            get(url, path)
        assert _digest(copy) == before  # read-only: not a byte of the lake or the marts changed
        # The app holds no connection between requests, so a curate can take the marts file.
        votes_before = shown_total(get(url, "/problems?label_source=vote").text)
        proc = subprocess.run([*REASONLITE, "curate", "--vars", "{vote_ratio: 0.5}"], env=cli_env(copy),
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        expected = sql(copy, "SELECT count(*) FROM pseudo_labels WHERE label_source = 'vote'")[0][0]
        assert expected > votes_before
        # ... and the list follows the new build.
        assert shown_total(get(url, "/problems?label_source=vote").text) == expected
