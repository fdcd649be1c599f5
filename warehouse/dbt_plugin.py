"""dbt-duckdb plugin: the lake as SQL views and the grader as vectorized DuckDB functions.

profiles.yml names this module (``plugins: - module: warehouse.dbt_plugin``). On every DuckDB
connection dbt opens it

* creates the views ``lake.problems``, ``lake.generations``, ``lake.runs`` over the lake that
  ``warehouse.lake`` points at (so dbt sources never hard-code a path, and an empty table is an
  empty typed view rather than a failing glob);
* registers the grader (``evaluation.grading``) as Arrow UDFs:
  ``extract_answer(text)``, ``canonical_key(answer)``, ``answers_equal(gold, pred)`` (NULL when
  the grader cannot decide), ``grade_outcome(gold, pred)`` (``equal``, ``not_equal`` or why it is
  undecided: ``timeout``, ``refused``, ``unparseable``) and ``is_fallback_key(key)``. Each
  receives a whole vector (up to 2048 values) and calls the grader's batch function once, so
  there is no per-row round trip from SQL to Python.

Every value sent to the grader is counted in ``GRADER_CALLS`` (``reasonlite curate`` prints the
counts): the SQL models only ever send strings not graded before, so these counts are the
incremental work of a build.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin

from warehouse import db, lake

LAKE_SCHEMA = "lake"

GRADER_CALLS: Counter = Counter()
_CALLS_LOCK = threading.Lock()


def reset_grader_calls() -> None:
    with _CALLS_LOCK:
        GRADER_CALLS.clear()


def grader_calls() -> dict[str, int]:
    with _CALLS_LOCK:
        return dict(GRADER_CALLS)


def _count(name: str, n: int) -> None:
    with _CALLS_LOCK:
        GRADER_CALLS[name] += n


# --------------------------------------------------------------------------------------- lake views


def lake_select(table: str) -> str:
    """The SELECT behind ``lake.<table>``: the lake reader of ``warehouse.db`` plus row lineage.

    Parquet tables also expose ``_source_file`` / ``_source_row`` (which part, which row), the
    identity staging uses to pick one row among duplicates and to fetch long texts late.
    Partition values stay text (no autocast), so a run id like ``20240101`` is never a number.
    """
    base = db.lake_view_sql(table)
    if table in lake.RECORD_FILES:
        return base
    if not any(lake.iter_parts(table)):
        return base.replace(
            " WHERE false",
            ", CAST(NULL AS VARCHAR) AS _source_file, CAST(NULL AS BIGINT) AS _source_row WHERE false",
        )
    glob = db._sql_str(lake.parquet_glob(table))
    return (
        f"SELECT * RENAME (filename AS _source_file, file_row_number AS _source_row) "
        f"FROM read_parquet({glob}, hive_partitioning = true, hive_types_autocast = false, "
        "union_by_name = true, filename = true, file_row_number = true)"
    )


def create_lake_views(conn) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {LAKE_SCHEMA}")
    for table in ("problems", "generations", "runs"):
        conn.execute(f"CREATE OR REPLACE VIEW {LAKE_SCHEMA}.{table} AS {lake_select(table)}")


# ------------------------------------------------------------------------------------------- grader


def _grading():
    # Imported on first use: parsing a dbt project must not pay for sympy.
    from evaluation import grading

    return grading


def _safe_batch(batch: Callable[[list], list], single: Callable[[Any], Any], values: list) -> list:
    """Grade a batch; if the batch call fails, grade one by one so a single pathological value
    becomes NULL instead of failing the whole build."""
    try:
        out = list(batch(values))
        if len(out) == len(values):
            return out
    except Exception:  # noqa: BLE001 - a bad answer string must not crash curation
        pass
    results = []
    for value in values:
        try:
            results.append(single(value))
        except Exception:  # noqa: BLE001
            results.append(None)
    return results


def _unary(name: str, batch: Callable[[list], list], single: Callable[[Any], Any], out_type: pa.DataType):
    def udf(column: pa.Array) -> pa.Array:
        values = column.to_pylist()
        todo = [i for i, v in enumerate(values) if v is not None]
        results: list = [None] * len(values)
        if todo:
            _count(name, len(todo))
            graded = _safe_batch(batch, single, [values[i] for i in todo])
            for i, value in zip(todo, graded, strict=True):
                results[i] = value
        return pa.array(results, type=out_type)

    return udf


def _extract_answer_batch(values: Sequence[str]) -> list:
    return _grading().extract_answers(list(values))


def _extract_answer(value: str):
    return _grading().extract_answer(value)


def _canonical_key_batch(values: Sequence[str]) -> list:
    return _grading().canonical_keys(list(values))


def _canonical_key(value: str):
    return _grading().canonical_key(value)


def _is_fallback_key_udf(column: pa.Array) -> pa.Array:
    # A string-prefix test on keys the grader made: not grading work, so not counted.
    is_fallback = _grading().is_fallback_key
    return pa.array([None if k is None else bool(is_fallback(k)) for k in column.to_pylist()], type=pa.bool_())


def _pair_udf(name: str, value_of: Callable[[Any], Any], out_type: pa.DataType,
              batch: str = "grade_many", single: str = "grade"):
    """A (gold, pred) UDF over the grader's batch API (``batch``, ``single``: its function names);
    NULL when a side is NULL."""

    def udf(gold: pa.Array, pred: pa.Array) -> pa.Array:
        golds, preds = gold.to_pylist(), pred.to_pylist()
        todo = [i for i, (g, p) in enumerate(zip(golds, preds, strict=True)) if g is not None and p is not None]
        results: list = [None] * len(golds)
        if todo:
            _count(name, len(todo))
            grading = _grading()
            pairs = [(golds[i], preds[i]) for i in todo]
            graded = _safe_batch(getattr(grading, batch), lambda pair: getattr(grading, single)(*pair), pairs)
            for i, result in zip(todo, graded, strict=True):
                results[i] = None if result is None else value_of(result)
        return pa.array(results, type=out_type)

    return udf


def register_grader(conn) -> None:
    """Register the grader UDFs on a DuckDB connection (also usable outside dbt)."""
    functions = [
        ("extract_answer", _unary("extract_answer", _extract_answer_batch, _extract_answer, pa.string()),
         ["VARCHAR"], "VARCHAR"),
        ("canonical_key", _unary("canonical_key", _canonical_key_batch, _canonical_key, pa.string()),
         ["VARCHAR"], "VARCHAR"),
        ("is_fallback_key", _is_fallback_key_udf, ["VARCHAR"], "BOOLEAN"),
        # True / False, NULL when the grader could not decide (a time-out, a refused or an
        # unreadable side): an undecided pair is never stored as "not equal".
        ("answers_equal", _pair_udf("answers_equal", lambda r: r.verdict, pa.bool_()), ["VARCHAR", "VARCHAR"], "BOOLEAN"),
        # 'equal' | 'not_equal' | the undecided reason ('timeout', 'refused', 'unparseable')
        # (counted as answers_equal: the same work on the same pairs)
        ("grade_outcome", _pair_udf("answers_equal", lambda r: r.outcome, pa.string()), ["VARCHAR", "VARCHAR"],
         "VARCHAR"),
        # The same outcomes for (gold, whole eval response) under upstream's scoring (the eval marts'
        # scoring 'upstream'; evaluation/grading/upstream.py).
        ("grade_upstream_outcome", _pair_udf("grade_upstream", lambda r: r.outcome, pa.string(),
                                             "grade_upstream_many", "grade_upstream"), ["VARCHAR", "VARCHAR"], "VARCHAR"),
    ]
    for name, fn, params, returns in functions:
        with contextlib.suppress(Exception):  # not registered yet on this connection
            conn.remove_function(name)
        conn.create_function(
            name, fn, params, returns, type="arrow", null_handling="special", side_effects=False
        )


def register_judge(conn) -> None:
    """The LLM judge's parsers (evaluation/judge.py): judge_verdict, judge_tally, grader_abstains."""
    from evaluation.judge import register_udfs

    register_udfs(conn)


# -------------------------------------------------------------------------------- near duplicates
# Problem texts compared as sets of token 3-grams (mart problem_duplicates). Tokens: LaTeX commands,
# words, numbers and other symbols, after lower-casing and dropping what does not change a
# problem (LaTeX spacing and delimiters, \left/\right, $, sentence punctuation; \dfrac = \frac).
# MinHash (datasketch) only finds candidates; the exact Jaccard of the two sets decides.

MINHASH_PERMUTATIONS = 128  # problem_duplicates bands them as 32 bands x 4 rows
MINHASH_SEED = 1
SHINGLE_TOKENS = 3
_LATEX_FRACTION = re.compile(r"\\[dt]frac(?![a-z])")
_NOT_CONTENT = re.compile(r"\\[,;:! ]|\\q?quad(?![a-z])|\\(?:left|right|displaystyle)(?![a-z])|\\[()\[\]]|[$~]")
_TOKEN = re.compile(r"\\[a-z]+|[a-z]+|\d+(?:\.\d+)?|[^\sa-z\d.,;:!?'\"]")
_minhash_permutations = None


def problem_tokens(text: str) -> list[str]:
    text = _NOT_CONTENT.sub(" ", _LATEX_FRACTION.sub(r"\\frac", text.lower()))
    return _TOKEN.findall(text)


def problem_shingles(text: str) -> set[str]:
    tokens = problem_tokens(text)
    if len(tokens) <= SHINGLE_TOKENS:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i:i + SHINGLE_TOKENS]) for i in range(len(tokens) - SHINGLE_TOKENS + 1)}


def problem_numbers(text: str) -> str:
    """The problem's numbers, sorted: problems that differ in a number are different problems."""
    return " ".join(sorted(t for t in problem_tokens(text) if t[0].isdigit()))


def problem_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' token 3-gram sets (1.0 = same text up to case, spacing,
    LaTeX spacing and punctuation)."""
    sa, sb = problem_shingles(a), problem_shingles(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def problem_minhash(text: str) -> list[int] | None:
    """datasketch MinHash of the token 3-grams (affine32 scheme, fixed seed: stable across builds)."""
    from datasketch import MinHash

    global _minhash_permutations
    shingles = problem_shingles(text)
    if not shingles:
        return None
    if _minhash_permutations is None:
        _minhash_permutations = MinHash(num_perm=MINHASH_PERMUTATIONS, seed=MINHASH_SEED).permutations
    minhash = MinHash(num_perm=MINHASH_PERMUTATIONS, seed=MINHASH_SEED, permutations=_minhash_permutations,
                      scheme="affine32")
    minhash.update_batch([s.encode() for s in shingles])
    return minhash.hashvalues.tolist()


def _text_udf(name: str, fn: Callable[[str], Any], out_type: pa.DataType):
    def udf(column: pa.Array) -> pa.Array:
        values = column.to_pylist()
        _count(name, sum(v is not None for v in values))
        return pa.array([None if v is None else fn(v) for v in values], type=out_type)

    return udf


def _similarity_udf(a: pa.Array, b: pa.Array) -> pa.Array:
    return pa.array([None if x is None or y is None else problem_similarity(x, y)
                     for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)], type=pa.float64())


def register_near_duplicates(conn) -> None:
    """problem_minhash(text) UINTEGER[], problem_numbers(text), problem_similarity(a, b)."""
    functions = [
        ("problem_minhash", _text_udf("problem_minhash", problem_minhash, pa.list_(pa.uint32())), ["VARCHAR"],
         "UINTEGER[]"),
        ("problem_numbers", _text_udf("problem_numbers", problem_numbers, pa.string()), ["VARCHAR"], "VARCHAR"),
        ("problem_similarity", _similarity_udf, ["VARCHAR", "VARCHAR"], "DOUBLE"),
    ]
    for name, fn, params, returns in functions:
        with contextlib.suppress(Exception):  # not registered yet on this connection
            conn.remove_function(name)
        conn.create_function(
            name, fn, params, returns, type="arrow", null_handling="special", side_effects=False
        )


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        # DuckDB uses every core by default; a fixed count (tests: 1, so that an unordered COPY lays
        # rows out the same way on every run) or a share of a busy machine is set here.
        threads = os.environ.get("REASONLITE_DUCKDB_THREADS")
        if threads:
            if not threads.isdigit() or int(threads) < 1:
                raise ValueError(f"REASONLITE_DUCKDB_THREADS={threads!r}: expected a positive integer")
            conn.execute(f"SET threads = {int(threads)}")
        create_lake_views(conn)
        register_grader(conn)
        register_judge(conn)
        register_near_duplicates(conn)
