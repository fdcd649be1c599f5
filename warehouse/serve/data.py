"""What `reasonlite serve` reads: read-only DuckDB sessions over the lake and the marts, and an
in-memory index of problems so that the filtered, paged problem list stays fast on a big lake.

Every query here is a fixed SQL text with ``?`` parameters; no value a request carries is ever
formatted into SQL. Filters and sort keys are chosen from the fixed tables below.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from warehouse import db, lake

PAGE_SIZES = (25, 50, 100, 200)
LABEL_SOURCES = ("vote", "dataset", "none")
PROMPT_PREVIEW_CHARS = 200
SAMPLES_SHOWN = 500  # per problem page; a problem with more says so


class Busy(Exception):
    """Another process holds the marts database for writing (a `reasonlite curate` is running)."""


class BadFilter(ValueError):
    """A query-string value that does not fit its filter; the message names the field."""


def rows(cursor: duckdb.DuckDBPyConnection) -> list[dict]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()").fetchall()}


@contextlib.contextmanager
def session() -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for one request: lake views plus the marts, if built.

    Opened per request and closed after it, so the app never holds a marts snapshot between
    requests. The session cannot read other files, reach the network or load extensions
    (``db.readonly_session``), and every query here is a fixed text with ``?`` parameters."""
    try:
        con = db.readonly_session()
    except duckdb.IOException as err:
        if "lock" in str(err).lower():
            raise Busy(str(err).splitlines()[0]) from None
        raise
    try:
        yield con
    finally:
        con.close()


# ----------------------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class ProblemFilter:
    source: str | None = None
    label_source: str | None = None
    share_min: float | None = None
    share_max: float | None = None
    kept_min: int | None = None
    kept_max: int | None = None
    contaminated: bool | None = None
    page: int = 1
    per_page: int = 50

    # Field -> SQL condition over problem_index, one `?` each. Only these fragments reach the SQL.
    CONDITIONS = {
        "source": "source = ?",
        "label_source": "label_source = ?",
        "share_min": "top_share >= ?",
        "share_max": "top_share <= ?",
        "kept_min": "kept >= ?",
        "kept_max": "kept <= ?",
        "contaminated": "contaminated = ?",
    }

    @classmethod
    def from_query(cls, params) -> ProblemFilter:
        """From a request's query string; empty values mean 'any'. Raises BadFilter."""

        def text(name):
            value = (params.get(name) or "").strip()
            return value or None

        def number(name, kind, low=None, high=None):
            value = text(name)
            if value is None:
                return None
            try:
                parsed = kind(value)
            except ValueError:
                raise BadFilter(f"{name}: {value!r} is not a{'n integer' if kind is int else ' number'}") from None
            if parsed != parsed or (low is not None and parsed < low) or (high is not None and parsed > high):
                raise BadFilter(f"{name}: {value!r} is outside {low}..{high if high is not None else '∞'}")
            return parsed

        label_source = text("label_source")
        if label_source is not None and label_source not in LABEL_SOURCES:
            raise BadFilter(f"label_source: {label_source!r} is not one of {', '.join(LABEL_SOURCES)}")
        contaminated = text("contaminated")
        if contaminated not in (None, "yes", "no"):
            raise BadFilter(f"contaminated: {contaminated!r} is not yes or no")
        per_page = number("per_page", int) or 50
        if per_page not in PAGE_SIZES:
            raise BadFilter(f"per_page: {per_page} is not one of {', '.join(map(str, PAGE_SIZES))}")
        return cls(
            source=text("source"), label_source=label_source,
            share_min=number("share_min", float, 0, 1), share_max=number("share_max", float, 0, 1),
            kept_min=number("kept_min", int, 0), kept_max=number("kept_max", int, 0),
            contaminated=None if contaminated is None else contaminated == "yes",
            page=number("page", int, 1) or 1, per_page=per_page,
        )

    def where(self) -> tuple[str, list]:
        conditions, values = [], []
        for name, condition in self.CONDITIONS.items():
            value = getattr(self, name)
            if value is not None:
                conditions.append(condition)
                values.append(value)
        return (" WHERE " + " AND ".join(conditions)) if conditions else "", values

    def query_string(self, **changes) -> dict[str, str]:
        """The filter as query-string pairs (for links to other pages of the same list)."""
        values = {name: getattr(self, name) for name in (*self.CONDITIONS, "page", "per_page")}
        values.update(changes)
        if values["contaminated"] is not None:
            values["contaminated"] = "yes" if values["contaminated"] else "no"
        if values["per_page"] == 50:
            values["per_page"] = None
        if values["page"] == 1:
            values["page"] = None
        return {k: str(v) for k, v in values.items() if v is not None}


# ------------------------------------------------------------------------------------------- index


INDEX_FROM_MARTS = f"""
WITH judged AS (
    SELECT problem_id, count(*) AS judged, count(*) FILTER (WHERE keep) AS kept
    FROM judged_generations GROUP BY problem_id
),
contaminated AS (SELECT DISTINCT problem_id FROM contamination)
SELECT l.problem_id, l.source, left(p.prompt, {PROMPT_PREVIEW_CHARS}) AS prompt_preview,
       l.label, l.label_source, l.dataset_label, l.top_answer, l.top_share, l.top_votes, l.n_answered,
       l.n_samples, coalesce(j.kept, 0) AS kept, coalesce(j.judged, 0) AS judged,
       c.problem_id IS NOT NULL AS contaminated
FROM pseudo_labels AS l
LEFT JOIN problems AS p USING (problem_id)
LEFT JOIN judged AS j USING (problem_id)
LEFT JOIN contaminated AS c USING (problem_id)
"""

# Before the first `reasonlite curate`: the lake's problems, without votes or verdicts.
INDEX_FROM_LAKE = f"""
SELECT problem_id, source, left(prompt, {PROMPT_PREVIEW_CHARS}) AS prompt_preview,
       CAST(NULL AS VARCHAR) AS label, CAST(NULL AS VARCHAR) AS label_source, expected_answer AS dataset_label,
       CAST(NULL AS VARCHAR) AS top_answer, CAST(NULL AS DOUBLE) AS top_share, CAST(NULL AS BIGINT) AS top_votes,
       CAST(NULL AS BIGINT) AS n_answered, CAST(NULL AS BIGINT) AS n_samples, 0 AS kept, 0 AS judged,
       false AS contaminated
FROM problems
"""

# Problems in a stable, natural order: by source, then the row number in "<source>:<row>".
INDEX_ORDER = """
SELECT row_number() OVER (ORDER BY source, try_cast(regexp_extract(problem_id, ':([0-9]+)$', 1) AS BIGINT)
                          NULLS LAST, problem_id) AS ord, *
FROM incoming
"""


@dataclass
class Build:
    """Which warehouse the app shows: the marts file, when it was last written, its snapshot's id."""

    database: str
    built_at: datetime | None
    has_marts: bool
    stamp: tuple
    build_id: str | None = None


def published_build_id() -> str | None:
    """The id of the curate snapshot the marts file is (a hard link to its database), if any."""
    import os

    from warehouse import snapshots

    database = lake.database_path()
    for snapshot in reversed(snapshots.snapshots()):
        with contextlib.suppress(OSError):
            if os.path.samefile(snapshot.database, database):
                return snapshot.build_id
    return None


def current_build() -> Build:
    path = lake.database_path()
    try:
        stat = path.stat()
    except FileNotFoundError:
        stat = None
    problems_parts = tuple(str(p) for p in lake.iter_parts("problems"))
    stamp = ((stat.st_ino, stat.st_mtime_ns, stat.st_size) if stat else None, problems_parts)
    built_at = datetime.fromtimestamp(stat.st_mtime, UTC) if stat else None
    return Build(database=str(path), built_at=built_at, has_marts=stat is not None, stamp=stamp)


class ProblemIndex:
    """One row per problem with what the list filters on, held in an in-memory DuckDB.

    Built from the marts (kept counts aggregate every judged sample, too slow to do per request on a
    9.1M-solution lake) and rebuilt when the marts file or the lake's problem parts change."""

    def __init__(self):
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stamp: tuple | None = None
        self.build: Build | None = None
        self.sources: list[str] = []
        self.run_samples: dict[str, int] = {}

    def cursor(self) -> duckdb.DuckDBPyConnection:
        build = current_build()
        with self._lock:
            if self._con is None or build.stamp != self._stamp:
                self._rebuild(build)
            return self._con.cursor()

    def _rebuild(self, build: Build) -> None:
        with session() as con:
            have = relations(con)
            from_marts = {"pseudo_labels", "judged_generations", "contamination"} <= have
            incoming = con.sql(INDEX_FROM_MARTS if from_marts else INDEX_FROM_LAKE).to_arrow_table()
            run_samples = dict(con.execute("SELECT run_id, count(*) FROM generations GROUP BY run_id").fetchall())
        index = duckdb.connect()
        index.register("incoming", incoming)
        index.execute(f"CREATE TABLE problem_index AS {INDEX_ORDER}")
        index.unregister("incoming")
        self.sources = [r[0] for r in index.execute(
            "SELECT DISTINCT source FROM problem_index WHERE source IS NOT NULL ORDER BY 1").fetchall()]
        self.run_samples = run_samples
        build.has_marts = from_marts
        build.build_id = published_build_id()
        self._con, self._stamp, self.build = index, build.stamp, build

    def page(self, flt: ProblemFilter) -> tuple[list[dict], int]:
        where, values = flt.where()
        cursor = self.cursor()
        try:
            total = cursor.execute(f"SELECT count(*) FROM problem_index{where}", values).fetchone()[0]
            cursor.execute(
                f"SELECT * FROM problem_index{where} ORDER BY ord LIMIT ? OFFSET ?",
                [*values, flt.per_page, (flt.page - 1) * flt.per_page],
            )
            return rows(cursor), total
        finally:
            cursor.close()

    def summary(self) -> dict:
        cursor = self.cursor()
        try:
            by_source = rows(cursor.execute("""
                SELECT source, count(*) AS problems,
                       count(*) FILTER (WHERE label_source = 'vote') AS vote,
                       count(*) FILTER (WHERE label_source = 'dataset') AS dataset,
                       count(*) FILTER (WHERE label_source = 'none') AS none,
                       sum(kept)::BIGINT AS kept, sum(judged)::BIGINT AS judged,
                       count(*) FILTER (WHERE contaminated) AS contaminated
                FROM problem_index GROUP BY source ORDER BY source"""))
            return {"by_source": by_source}
        finally:
            cursor.close()


# ------------------------------------------------------------------------------------------ detail


def problem_detail(problem_id: str) -> dict | None:
    """Everything the problem page shows, or None when the lake has no such problem."""
    with session() as con:
        have = relations(con)
        problem = rows(con.execute("SELECT * FROM problems WHERE problem_id = ? LIMIT 1", [problem_id]))
        # The lake is append-only: a sample may have several rows; keep the one staging keeps
        # (no error first, then the latest). Deduplicated here: a problem has few rows, and a
        # window over the text columns would cost more than the scan.
        candidates = con.execute("""
            SELECT run_id, sample_idx, model, reasoning_level, finish_reason, prompt_tokens, completion_tokens,
                   error, reasoning, "final", completion
            FROM generations WHERE problem_id = ?
            ORDER BY run_id, sample_idx, (error IS NULL) DESC, created_at DESC NULLS LAST""", [problem_id])
        samples, seen = [], set()
        for sample in rows(candidates):
            key = (sample["run_id"], sample["sample_idx"])
            if key not in seen:
                seen.add(key)
                samples.append(sample)
        if not problem and not samples:
            return None
        detail = {
            "problem_id": problem_id,
            "problem": problem[0] if problem else None,
            "label": None, "tally": [], "contamination": [], "evals": [],
            "samples": samples[:SAMPLES_SHOWN], "samples_truncated": len(samples) > SAMPLES_SHOWN,
        }
        if "pseudo_labels" in have:
            label = rows(con.execute("SELECT * FROM pseudo_labels WHERE problem_id = ?", [problem_id]))
            detail["label"] = label[0] if label else None
        if "int_answer_tallies" in have:
            detail["tally"] = rows(con.execute(
                "SELECT display_answer, answer_key, votes, share, n_surface_forms FROM int_answer_tallies "
                "WHERE problem_id = ? ORDER BY vote_rank", [problem_id]))
        if "contamination" in have:
            detail["contamination"] = rows(con.execute(
                "SELECT problem_id, benchmark_problem_id, match_type, shared_ngrams, benchmark_ngram_overlap "
                "FROM contamination WHERE problem_id = ? OR benchmark_problem_id = ? "
                "ORDER BY problem_id, benchmark_problem_id", [problem_id, problem_id]))
        verdicts: dict[tuple, dict] = {}
        if "judged_generations" in have:
            for row in rows(con.execute(
                    "SELECT run_id, sample_idx, answer, answer_key, keep, reject_reason, is_consistent, stratum, "
                    "judge_source FROM judged_generations WHERE problem_id = ?", [problem_id])):
                verdicts[(row["run_id"], row["sample_idx"])] = {**row, "kind": "curation"}
        if "eval_samples" in have:
            for row in rows(con.execute(
                    "SELECT run_id, sample_idx, answer, answer_key, is_correct, is_scored FROM eval_samples "
                    "WHERE problem_id = ?", [problem_id])):
                verdicts[(row["run_id"], row["sample_idx"])] = {**row, "kind": "eval"}
            detail["evals"] = rows(con.execute("""
                SELECT run_id, model_name, benchmark, count(*) FILTER (WHERE is_scored) AS scored,
                       count(*) FILTER (WHERE is_correct) AS correct,
                       avg(CASE WHEN is_correct THEN 1.0 WHEN is_scored THEN 0.0 END) AS accuracy,
                       any_value(expected_answer) AS gold
                FROM eval_samples WHERE problem_id = ? GROUP BY ALL ORDER BY run_id""", [problem_id]))
        for sample in detail["samples"]:
            sample["verdict"] = verdicts.get((sample["run_id"], sample["sample_idx"]))
        return detail


def runs_overview(run_samples: dict[str, int]) -> list[dict]:
    with session() as con:
        runs = rows(con.execute(
            "SELECT run_id, purpose, model, backend, reasoning_level, n_samples, temperature, top_p, max_tokens, "
            "status, created_at, finished_at FROM runs ORDER BY run_id"))
    known = {r["run_id"] for r in runs}
    # Samples whose run has no manifest still show up, as a run without details.
    columns = list(runs[0]) if runs else ["run_id", "purpose", "model", "reasoning_level", "status", "finished_at"]
    runs += [{**dict.fromkeys(columns), "run_id": run_id, "status": "no manifest"}
             for run_id in sorted(run_samples) if run_id not in known]
    for run in runs:
        run["samples"] = run_samples.get(run["run_id"], 0)
    return runs


def run_detail(run_id: str) -> dict | None:
    with session() as con:
        have = relations(con)
        manifest = rows(con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        samples = con.execute("SELECT count(*) FROM generations WHERE run_id = ?", [run_id]).fetchone()[0]
        if not manifest and not samples:
            return None
        detail = {"run_id": run_id, "manifest": manifest[0] if manifest else None, "samples": samples,
                  "funnel": [], "scores": [], "problems": []}
        if "curation_funnel" in have:
            detail["funnel"] = rows(con.execute(
                "SELECT stratum, stage, stage_kind, n_rows, share FROM curation_funnel WHERE run_id = ? "
                "ORDER BY stratum, stage_order", [run_id]))
        if "eval_scores" in have:
            detail["scores"] = rows(con.execute("SELECT * FROM eval_scores WHERE run_id = ? "
                                                "ORDER BY benchmark, scoring DESC", [run_id]))
        if "eval_samples" in have:
            detail["problems"] = rows(con.execute("""
                SELECT problem_id, any_value(expected_answer) AS gold, count(*) FILTER (WHERE is_scored) AS scored,
                       count(*) FILTER (WHERE is_correct) AS correct,
                       avg(CASE WHEN is_correct THEN 1.0 WHEN is_scored THEN 0.0 END) AS accuracy,
                       count(*) FILTER (WHERE NOT has_answer) AS no_answer
                FROM eval_samples WHERE run_id = ? GROUP BY problem_id
                ORDER BY try_cast(regexp_extract(problem_id, ':([0-9]+)$', 1) AS BIGINT) NULLS LAST, problem_id""",
                [run_id]))
        return detail


def overview() -> dict:
    with session() as con:
        have = relations(con)
        funnel = []
        if "curation_funnel" in have:
            funnel = rows(con.execute("""
                SELECT stage, stage_kind, sum(n_rows)::BIGINT AS n_rows FROM curation_funnel
                WHERE stage_kind <> 'llm' GROUP BY stage, stage_kind, stage_order
                HAVING sum(n_rows) > 0 OR stage_kind = 'count' ORDER BY stage_order"""))
        scores = []
        if "eval_scores" in have:
            scores = rows(con.execute(
                "SELECT run_id, model_name, benchmark, scoring, n_problems, n, avg_at_n, std_err, pass_at_8 "
                "FROM eval_scores ORDER BY model_name, benchmark, run_id, scoring DESC"))
    return {"funnel": funnel, "scores": scores}
