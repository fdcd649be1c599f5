"""`reasonlite curate`: build the curation marts with dbt (dbt_project/) over the lake.

Runs ``dbt build`` in-process (``dbtRunner``) with every path taken from ``warehouse.lake`` and
handed to dbt as environment variables (profiles.yml and the plugin read them), then prints a
short summary: the funnel, how many strings the grader saw (only new ones: the answer dictionaries
are incremental), and the time taken.

Public API: :func:`curate` (returns a :class:`CurateResult`), :data:`PROJECT_DIR`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warehouse import lake
from warehouse.errors import UserError

PROJECT_DIR = lake.PACKAGE_DIR.parent / "dbt_project"
# The marts' answer dictionaries: new rows per build = grader work of that build.
_DICTIONARIES = ("int_answer_extractions", "int_answer_dictionary", "int_answer_equivalence")


@dataclass
class CurateResult:
    success: bool
    command: str
    seconds: float
    vars: dict[str, Any]
    grader_calls: dict[str, int] = field(default_factory=dict)  # values sent to each grader UDF
    new_strings: dict[str, int] = field(default_factory=dict)  # rows this build added per dictionary
    funnel: list[dict[str, Any]] = field(default_factory=list)  # curation_funnel summed over runs
    failures: list[str] = field(default_factory=list)
    nodes: int = 0
    quarantined: list[str] = field(default_factory=list)  # corrupt parts moved to the lake's _quarantine/


def parse_vars(text: str | None) -> dict[str, Any]:
    """``--vars`` as YAML or JSON (JSON is YAML); must be a mapping."""
    if not text:
        return {}
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"--vars: not valid YAML/JSON ({first})") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"--vars: expected a mapping like '{{vote_ratio: 0.8}}', got {type(value).__name__}")
    _check_vars(value)
    return value


def _check_vars(values: Mapping[str, Any]) -> None:
    """Catch the easy mistakes before dbt does, with a one-line message."""
    for name in ("vote_ratio",):
        if name in values and not (isinstance(values[name], int | float) and 0 <= values[name] <= 1):
            raise UserError(f"--vars: {name} must be a number between 0 and 1, got {values[name]!r}")
    for name in ("min_votes", "long_cot_min_tokens", "contamination_ngram"):
        if name in values and not (isinstance(values[name], int) and values[name] >= 1):
            raise UserError(f"--vars: {name} must be a positive integer, got {values[name]!r}")
    if "max_per_problem" in values and values["max_per_problem"] is not None and not (
        isinstance(values["max_per_problem"], int) and values["max_per_problem"] >= 1
    ):
        raise UserError(f"--vars: max_per_problem must be a positive integer or null, got {values['max_per_problem']!r}")
    if "stratify_by" in values and values["stratify_by"] not in ("reasoning_level", "tokens"):
        raise UserError(f"--vars: stratify_by must be 'reasoning_level' or 'tokens', got {values['stratify_by']!r}")


def dbt_env() -> dict[str, str]:
    """The environment dbt runs in: every path resolved by warehouse.lake, made absolute."""
    exports = lake.exports_dir()
    exports.mkdir(parents=True, exist_ok=True)  # external models write here
    database = lake.database_path()
    database.parent.mkdir(parents=True, exist_ok=True)
    return {
        "REASONLITE_LAKE": str(lake.lake_root()),
        "REASONLITE_DB": str(database),
        "REASONLITE_EXPORTS": str(exports),
        "REASONLITE_TMP": str(lake.scratch_dir()),
    }


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _release_duckdb() -> None:
    """dbt-duckdb keeps its DuckDB instance in a class attribute; close it so the database file
    can be opened again (``reasonlite sql``, the next curate) from this process."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    env = DuckDBConnectionManager._ENV
    if env is not None:
        with contextlib.suppress(Exception):
            env.close()
    DuckDBConnectionManager.close_all_connections()


def run_dbt(args: Sequence[str], quiet: bool = False) -> Any:
    """Invoke dbt in-process on dbt_project/ (profiles.yml lives there too)."""
    from dbt.cli.main import dbtRunner

    # Subcommand words first ("build", "docs generate"), then options.
    n = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    full = [*args[:n], "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR), *args[n:]]
    if quiet:
        full.insert(0, "--quiet")
    try:
        return dbtRunner().invoke(full)
    finally:
        _release_duckdb()


def _failures(result: Any) -> list[str]:
    out = []
    for node in getattr(result.result, "results", None) or []:
        status = str(getattr(node, "status", "")).lower()
        if status in ("error", "fail", "runtime error"):
            name = getattr(node.node, "name", "?")
            message = (getattr(node, "message", None) or status).strip().splitlines()[0]
            out.append(f"{name}: {message}")
    return out


def _funnel_totals() -> list[dict[str, Any]]:
    """curation_funnel summed over runs and strata, in stage order."""
    import duckdb

    path = lake.database_path()
    if not path.exists():
        return []
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT stage, stage_kind, sum(n_rows) AS n FROM main.curation_funnel "
            "GROUP BY stage, stage_kind, stage_order ORDER BY stage_order"
        ).fetchall()
    except duckdb.Error:  # not built (yet): nothing to summarize
        return []
    finally:
        con.close()
    return [{"stage": s, "kind": k, "n": int(n)} for s, k, n in rows]


def _new_dictionary_rows(invocation_id: str | None) -> dict[str, int]:
    import duckdb

    path = lake.database_path()
    if not invocation_id or not path.exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table in _DICTIONARIES:
            with contextlib.suppress(duckdb.Error):
                out[table] = con.execute(
                    f"SELECT count(*) FROM main.{table} WHERE graded_in = ?", [invocation_id]
                ).fetchone()[0]
        return out
    finally:
        con.close()


def _write_curation_vars(vars_used: Mapping[str, Any]) -> None:
    """Record the vars the exports were built with (`reasonlite export` puts them in the card)."""
    path = lake.exports_dir() / "curation_vars.json"
    resolved = {**_project_vars(), **vars_used}
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(resolved, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _project_vars() -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text()) or {}
    return dict(data.get("vars") or {})


def curate(
    vars: Mapping[str, Any] | None = None,
    full_refresh: bool = False,
    select: Sequence[str] | None = None,
    test: bool = True,
    docs: bool = False,
    quiet: bool = False,
) -> CurateResult:
    """Build the curation (``dbt build``; ``dbt run`` when ``test`` is False) and return a summary.

    Raises UserError when dbt cannot run (bad project, bad vars); a build whose nodes fail comes
    back with ``success=False`` and the failures listed.
    """
    from warehouse import dbt_plugin

    vars = dict(vars or {})
    _check_vars(vars)
    # A part with an unreadable footer would fail every read of its table: move it aside, name it.
    quarantined = [(table, path, reason) for table in ("problems", "generations")
                   for path, reason in lake.quarantine_corrupt_parts(table)]
    for table, path, reason in quarantined:
        print(f"curate: {table}: quarantined corrupt part {path} ({reason})", file=sys.stderr)
    command = "build" if test else "run"
    args = [command]
    if vars:
        args += ["--vars", json.dumps(vars)]
    if full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", *select]
    started = time.monotonic()
    with _environment(dbt_env()):
        dbt_plugin.reset_grader_calls()
        result = run_dbt(args, quiet=quiet)
        calls = dbt_plugin.grader_calls()
        if result.exception is not None:
            message = str(result.exception).strip().splitlines()
            raise UserError(f"dbt {command} could not run: {message[0] if message else type(result.exception).__name__}")
        invocation_id = _invocation_id(result)
        failures = _failures(result)
        if docs:
            docs_result = run_dbt(["docs", "generate", *(["--vars", json.dumps(vars)] if vars else [])], quiet=quiet)
            if not docs_result.success:
                failures.append(f"dbt docs generate: {docs_result.exception or 'failed'}")
        funnel = _funnel_totals()
        new_rows = _new_dictionary_rows(invocation_id)
        if result.success and not select:
            _write_curation_vars(vars)
    nodes = len(getattr(result.result, "results", None) or [])
    return CurateResult(
        success=bool(result.success) and not failures,
        command=command,
        seconds=time.monotonic() - started,
        vars=vars,
        grader_calls=calls,
        new_strings=new_rows,
        funnel=funnel,
        failures=failures,
        nodes=nodes,
        quarantined=[str(path) for _, path, _ in quarantined],
    )


def _invocation_id(result: Any) -> str | None:
    args = getattr(getattr(result, "result", None), "args", None) or {}
    if isinstance(args, dict) and args.get("invocation_id"):
        return args["invocation_id"]
    try:
        from dbt_common.invocation import get_invocation_id

        return get_invocation_id()
    except ImportError:
        return None


def format_summary(result: CurateResult) -> str:
    lines = []
    if result.funnel:
        width = max(len(r["stage"]) for r in result.funnel)
        samples = next((r["n"] for r in result.funnel if r["stage"] == "samples"), 0) or 1
        lines.append("curation funnel (all curated runs):")
        for row in result.funnel:
            if row["n"] == 0 and row["kind"] in ("rejected", "sft_dropped"):
                continue
            marker = "  -" if row["kind"] in ("rejected", "sft_dropped", "dropped") else "   "
            lines.append(f"{marker} {row['stage']:<{width}} {row['n']:>10,}  {100 * row['n'] / samples:5.1f}%")
    graded = ", ".join(f"{name} {n:,}" for name, n in sorted(result.grader_calls.items())) or "none"
    lines.append(f"grader calls on new strings: {graded}")
    if result.new_strings:
        lines.append(
            "new dictionary rows: "
            + ", ".join(f"{name.removeprefix('int_answer_')} {n:,}" for name, n in result.new_strings.items())
        )
    status = "ok" if result.success else f"FAILED ({len(result.failures)})"
    lines.append(f"dbt {result.command}: {result.nodes} nodes, {status}, {result.seconds:.1f} s")
    for failure in result.failures[:10]:
        lines.append(f"  ! {failure}")
    return "\n".join(lines)


def _handle(args) -> int:
    result = curate(
        vars=parse_vars(args.vars),
        full_refresh=args.full_refresh,
        select=args.select,
        test=not args.no_test,
        docs=args.docs,
        quiet=args.quiet,
    )
    print(format_summary(result))
    if args.docs and result.success:
        target = Path(os.environ.get("DBT_TARGET_PATH") or PROJECT_DIR / "target")
        print(f"docs: {target / 'index.html'} (serve with: cd dbt_project && dbt docs serve --profiles-dir .)")
    return 0 if result.success else 1


def register(sub) -> None:
    p = sub.add_parser(
        "curate",
        help="build pseudo-labels, judged generations, SFT strata (dbt build over the lake)",
        description=(
            "Run the dbt project (dbt_project/) over the lake: pseudo_labels, judged_generations, "
            "sft_examples, curation_funnel, threshold_sweep, contamination, and the exports "
            "sft_short_cot/sft_long_cot.parquet. Only answer strings never graded before go to the grader."
        ),
    )
    p.add_argument("--vars", metavar="YAML", help="dbt vars, e.g. '{vote_ratio: 0.8, min_votes: 3}'")
    p.add_argument("--full-refresh", action="store_true", help="rebuild the incremental answer dictionaries too")
    p.add_argument("--select", nargs="+", metavar="SELECTOR", help="dbt node selection (default: everything)")
    p.add_argument("--docs", action="store_true", help="also run `dbt docs generate` (dbt_project/target)")
    p.add_argument("--no-test", action="store_true", help="models only (dbt run), skip the data and unit tests")
    p.add_argument("--quiet", action="store_true", help="print dbt errors and the summary only")
    p.set_defaults(handler=_handle)


if __name__ == "__main__":  # pragma: no cover
    from warehouse.cli import main

    sys.exit(main(["curate", *sys.argv[1:]]))
