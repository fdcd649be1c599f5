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
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warehouse import lake, snapshots
from warehouse.errors import UserError

PROJECT_DIR = lake.PACKAGE_DIR.parent / "dbt_project"
# Named sets of vars for `--vars-profile NAME` (paper.yml: upstream's vote semantics).
VARS_PROFILES_DIR = PROJECT_DIR / "vars"
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
    quarantined: list[str] = field(default_factory=list)  # parts in the lake's _quarantine/, excluded
    build_id: str | None = None  # the snapshot published (None when the build failed)


# What each dbt var may hold (the same kinds as dbt_project/macros/vars.sql, which renders them
# as SQL literals): ratio = number in (0, 1], count = integer >= 1, text = a string; lists of those.
VAR_KINDS: dict[str, str | tuple[str, ...]] = {
    "vote_ratio": "ratio",
    "min_votes": "count",
    "vote_runs": "texts",
    "vote_scope": ("pooled", "per_run"),
    "vote_denominator": ("answered", "all"),
    "curation_purposes": "texts",
    "unknown_run_purpose": "text",
    "require_reasoning": "boolean",
    "require_boxed": "boolean",
    "judge_runs": "texts",
    "stratify_by": ("reasoning_level", "tokens"),
    "long_reasoning_levels": "texts",
    "long_cot_min_tokens": "count",
    "max_per_problem": "count_or_null",
    "benchmark_sources": "texts",
    "contamination_ngram": "count",
    "near_duplicate_threshold": "ratio",
    "drop_near_duplicates": "boolean",
    "sweep_vote_ratios": "ratios",
    "sweep_min_votes": "counts",
    "eval_token_budgets": "counts",
    "eval_pass_ks": "counts",
}
_KIND_WORDS = {
    "ratio": "a number in (0, 1]",
    "count": "an integer >= 1",
    "count_or_null": "an integer >= 1 or null",
    "text": "a string",
    "boolean": "true or false",
}


def parse_vars(text: str | None) -> dict[str, Any]:
    """``--vars`` as YAML or JSON (JSON is YAML); must be a mapping of known vars, each of its kind."""
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
    return check_vars(value)


def profile_names() -> list[str]:
    return sorted(path.stem for path in VARS_PROFILES_DIR.glob("*.yml"))


def vars_profile(name: str) -> dict[str, Any]:
    """The vars of a named profile, dbt_project/vars/<name>.yml (``paper``: upstream's vote
    semantics), checked like ``--vars``."""
    import yaml

    path = VARS_PROFILES_DIR / f"{name}.yml"
    if name not in profile_names():
        raise UserError(f"--vars-profile: no profile {name!r} (profiles: {', '.join(profile_names()) or 'none'})")
    value = yaml.safe_load(path.read_text()) or {}
    if not isinstance(value, dict):
        raise UserError(f"--vars-profile: {path} must be a mapping of vars")
    return check_vars(value)


def check_vars(values: Mapping[Any, Any]) -> dict[str, Any]:
    """Refuse unknown vars (with "did you mean") and values of the wrong kind, in one line each.

    Returns the vars as dbt gets them: a text given as a YAML number (a run id ``2024``) becomes a
    string; everything else is passed through unchanged.
    """
    from generation.config import unknown_key_error

    checked = {}
    for name, value in values.items():
        kind = VAR_KINDS.get(name) if isinstance(name, str) else None
        if kind is None:
            raise unknown_key_error("--vars", str(name), VAR_KINDS, what="var")
        checked[name] = _check_var(name, kind, value)
    return checked


def _check_var(name: str, kind: str | tuple[str, ...], value: Any) -> Any:
    if isinstance(kind, tuple):
        if value not in kind:
            raise UserError(f"--vars: {name} must be one of {', '.join(map(repr, kind))}, got {value!r}")
        return value
    if kind in ("texts", "ratios", "counts"):
        if not isinstance(value, list):
            raise UserError(f"--vars: {name} must be a list, got {value!r}")
        return [_check_var(f"{name}[{i}]", kind[:-1], item) for i, item in enumerate(value)]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {
        "boolean": isinstance(value, bool),
        "ratio": is_number and 0 < value <= 1,
        "count": is_number and isinstance(value, int) and value >= 1,
        "count_or_null": value is None or (is_number and isinstance(value, int) and value >= 1),
        "text": isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)),
    }[kind]
    if not ok:
        raise UserError(f"--vars: {name} must be {_KIND_WORDS[kind]}, got {value!r}")
    return str(value) if kind == "text" else value


def dbt_env(database: Path, exports: Path, build_id: str = "", previous_exports: Path | None = None) -> dict[str, str]:
    """The environment dbt runs in: the build's database file and exports folder, every other
    path resolved by warehouse.lake, all absolute. sft_exports names its new segments after
    ``build_id`` and carries unchanged ones from ``previous_exports`` (the published strata; None:
    write every row)."""
    exports.mkdir(parents=True, exist_ok=True)  # sft_exports writes here
    database.parent.mkdir(parents=True, exist_ok=True)
    return {
        "REASONLITE_BUILD_ID": build_id,
        "REASONLITE_PREVIOUS_EXPORTS": str(previous_exports.resolve()) if previous_exports else "",
        "REASONLITE_LAKE": str(lake.lake_root()),
        "REASONLITE_DB": str(database),
        "REASONLITE_EXPORTS": str(exports),
        "REASONLITE_TMP": str(lake.scratch_dir()),
        "DBT_TARGET_PATH": str(lake.dbt_target_dir()),
        "DBT_LOG_PATH": str(lake.dbt_log_dir()),
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


def _failed_nodes(result: Any) -> list[Any]:
    return [node for node in getattr(result.result, "results", None) or []
            if str(getattr(node, "status", "")).lower() in ("error", "fail", "runtime error")]


def _failures(result: Any) -> list[str]:
    return [f"{getattr(node.node, 'name', '?')}: "
            f"{(getattr(node, 'message', None) or str(node.status).lower()).strip().splitlines()[0]}"
            for node in _failed_nodes(result)]


def _failure_text(result: Any) -> str:
    """Every failed node's whole message (``_failures`` keeps their first lines)."""
    return "\n".join(str(getattr(node, "message", "") or "") for node in _failed_nodes(result))


# DuckDB read errors that do not say which file: a damaged page header fails in Thrift.
_UNNAMED_READ_ERROR = re.compile(r"TProtocolException|Invalid data|Corrupt")


def _name_unreadable_part() -> str:
    """Name the generation part a read error came from. Parts the published build already read whole
    (int_generation_text_features holds their rows) are not read again: only the new ones are."""
    import duckdb

    seen: set[str] = set()
    published = lake.database_path()
    if published.exists():
        try:
            con = duckdb.connect(str(published), read_only=True)
            try:
                seen = {f for (f,) in con.execute(
                    "SELECT DISTINCT _source_file FROM int_generation_text_features").fetchall()}
            finally:
                con.close()
        except duckdb.Error:
            seen = set()
    found = lake.unreadable_data_part("generations", seen)
    if found is None:
        return "no unreadable generation part found: the read error above comes from elsewhere"
    part, reason = found
    return (f"{part}: unreadable data pages ({reason}); move it out of the lake "
            f"(e.g. to {lake.quarantine_dir()}) and curate again")


def _funnel_totals(path: Path) -> list[dict[str, Any]]:
    """curation_funnel summed over runs and strata, in stage order."""
    import duckdb

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


def _new_dictionary_rows(path: Path, invocation_id: str | None) -> dict[str, int]:
    import duckdb

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


def _write_curation_vars(folder: Path, vars_used: Mapping[str, Any]) -> None:
    """Record the vars the strata were built with (`reasonlite export` puts them in the card)."""
    resolved = {**_project_vars(), **vars_used}
    (folder / snapshots.VARS_FILE).write_text(json.dumps(resolved, indent=2, sort_keys=True, default=str))


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
    allow_quarantined: bool = False,
) -> CurateResult:
    """Build the curation (``dbt build``; ``dbt run`` when ``test`` is False) into a new snapshot
    and publish it (marts, strata, vars) only when every node and test passed.

    Raises UserError when dbt cannot run (bad project, bad vars), when another curate holds the
    warehouse, or when lake parts are quarantined (see ``_check_quarantine``); a build whose nodes
    fail comes back with ``success=False``, the failures listed and nothing published.
    """
    from warehouse import dbt_plugin

    vars = check_vars(vars or {})
    keep = snapshots.keep_count()  # a bad setting fails now, not after the build
    _check_thread_settings()
    with snapshots.build_lock():
        for what in snapshots.recover():
            print(f"curate: finished an interrupted publish: {what}", file=sys.stderr)
        quarantined = _check_quarantine(publishes_strata=not select, allow=allow_quarantined)
        definitions = snapshots.incremental_definitions()
        stale = not full_refresh and _incremental_tables_stale(definitions)
        if stale and select:
            # A --select build keeps the tables it does not select: every incremental one (and
            # what it reads) joins the selection, so none is left from the old definitions.
            select = [*select, *(f"+{name}" for name in snapshots.incremental_models())]
        command = "build" if test else "run"
        args = [command]
        if vars:
            args += ["--vars", json.dumps(vars)]
        if full_refresh or stale:
            args.append("--full-refresh")
        if select:
            args += ["--select", *select]
        started = time.monotonic()
        build = snapshots.new_build("all" if select else "nothing" if full_refresh or stale else "incremental")
        try:
            # --full-refresh writes every stratum row anew; otherwise unchanged segments are carried.
            previous = None if full_refresh or snapshots.published_build() is None else lake.exports_dir()
            with _environment(dbt_env(build.database, build.exports, build.build_id, previous)):
                dbt_plugin.reset_grader_calls()
                result = run_dbt(args, quiet=quiet)
                calls = dbt_plugin.grader_calls()
                if result.exception is not None:
                    message = str(result.exception).strip().splitlines()
                    raise UserError(f"dbt {command} could not run: "
                                    f"{message[0] if message else type(result.exception).__name__}")
                invocation_id = _invocation_id(result)
                failures = _failures(result)
                if docs:
                    docs_result = run_dbt(["docs", "generate", *(["--vars", json.dumps(vars)] if vars else [])],
                                          quiet=quiet)
                    if not docs_result.success:
                        failures.append(f"dbt docs generate: {docs_result.exception or 'failed'}")
            funnel = _funnel_totals(build.database)
            new_rows = _new_dictionary_rows(build.database, invocation_id)
            success = bool(result.success) and not failures
            if not success and _UNNAMED_READ_ERROR.search(_failure_text(result)):
                failures.append(_name_unreadable_part())
            if success:
                if build.has_strata():
                    _write_curation_vars(build.exports, vars)
                snapshot = snapshots.finish(build, {"invocation_id": invocation_id, "vars": vars,
                                                    "select": list(select or []), "command": command,
                                                    "definitions": definitions})
                snapshots.publish(snapshot)
                snapshots.prune(keep)
        finally:
            if build.folder.exists() and build.folder.name.startswith(".build-"):
                shutil.rmtree(build.folder, ignore_errors=True)  # failed: the previous snapshot stays
    nodes = len(getattr(result.result, "results", None) or [])
    return CurateResult(
        success=success,
        command=command,
        seconds=time.monotonic() - started,
        vars=vars,
        grader_calls=calls,
        new_strings=new_rows,
        funnel=funnel,
        failures=failures,
        nodes=nodes,
        quarantined=[str(path) for _, path in quarantined],
        build_id=build.build_id if success else None,
    )


def _check_thread_settings() -> None:
    """dbt's and DuckDB's thread counts, refused before anything is built: inside dbt a bad one is
    a plugin's traceback (DuckDB's) or silently 0 (dbt's, through the profile's `| int`)."""
    for name in ("REASONLITE_DBT_THREADS", "REASONLITE_DUCKDB_THREADS"):
        text = os.environ.get(name, "")
        if text and (not text.isdigit() or int(text) < 1):
            raise UserError(f"{name}={text!r}: must be a positive integer")


def _incremental_tables_stale(definitions: str) -> bool:
    """Whether the published incremental tables (answer dictionaries, grader verdicts, text features)
    were built from other definitions than today's (``snapshots.incremental_definitions``): then
    this build rebuilds them, as ``--full-refresh`` does (the strata still carry what is unchanged)."""
    if not lake.database_path().exists():
        return False
    recorded = snapshots.published_definitions()
    if recorded == definitions:
        return False
    print(f"curate: the grader or the incremental models changed since the published build (definitions "
          f"{recorded or 'not recorded'}, now {definitions}): rebuilding the answer dictionaries, grader "
          "verdicts and text features (as --full-refresh; unchanged strata segments are still carried)",
          file=sys.stderr)
    return True


def _check_quarantine(publishes_strata: bool, allow: bool) -> list[tuple[str, Path]]:
    """Move corrupt parts aside (they would fail every read of their table) and say loudly what
    the quarantine holds, this curate's and earlier ones': those rows are missing from the build.

    Refused (UserError) when a table has no readable part left, and, for a build that publishes
    strata, whenever anything is quarantined unless ``allow`` (``--allow-quarantined``): strata
    that silently shrink are worse than no new strata.
    """
    for table in ("problems", "generations"):
        for path, reason in lake.quarantine_corrupt_parts(table):
            print(f"curate: {table}: quarantined corrupt part {path} ({reason})", file=sys.stderr)
    held = [(table, path) for table in ("problems", "generations")
            for path in sorted((lake.quarantine_dir() / table).rglob("*.parquet"))]
    if not held:
        return held
    for table, path in held:
        print(f"curate: EXCLUDED from this build: {table} part {path}", file=sys.stderr)
    emptied = [table for table in ("problems", "generations")
               if any(t == table for t, _ in held) and not any(lake.iter_parts(table))]
    where = lake.quarantine_dir()
    if emptied:
        raise UserError(f"every {' and '.join(emptied)} part is quarantined in {where}: nothing left to curate; "
                        "the previous build stays published")
    if publishes_strata and not allow:
        raise UserError(f"{len(held)} quarantined part(s) in {where} would be missing from the strata; repair "
                        "or delete them, or pass --allow-quarantined; the previous build stays published")
    return held


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
    if result.success:
        lines.append(f"published build {result.build_id}")
    else:
        lines.append("nothing published: readers and `reasonlite export` keep the previous build")
    if result.quarantined:
        lines.append(f"EXCLUDED: {len(result.quarantined)} quarantined part(s) in {lake.quarantine_dir()}")
    return "\n".join(lines)


def _handle(args) -> int:
    profile = vars_profile(args.vars_profile) if args.vars_profile else {}
    result = curate(
        vars={**profile, **parse_vars(args.vars)},
        full_refresh=args.full_refresh,
        select=args.select,
        test=not args.no_test,
        docs=args.docs,
        quiet=args.quiet,
        allow_quarantined=args.allow_quarantined,
    )
    print(format_summary(result))
    if args.docs and result.success:
        target = lake.dbt_target_dir()
        print(f"docs: {target / 'index.html'} (serve with: cd dbt_project && dbt docs serve --profiles-dir . "
              f"--target-path {target})")
    return 0 if result.success else 1


def register(sub) -> None:
    p = sub.add_parser(
        "curate",
        help="build pseudo-labels, judged generations, SFT strata (dbt build over the lake)",
        description=(
            "Run the dbt project (dbt_project/) over the lake: pseudo_labels, judged_generations, "
            "sft_examples, curation_funnel, threshold_sweep, contamination, and the exports "
            "sft_short_cot/ and sft_long_cot/ (Parquet segments; unchanged ones carried from the published "
            "build). Only answer strings never graded before go to the grader."
        ),
    )
    p.add_argument("--vars", metavar="YAML", help="dbt vars, e.g. '{vote_ratio: 0.8, min_votes: 3}'")
    p.add_argument("--vars-profile", metavar="NAME",
                   help="a named set of vars, dbt_project/vars/NAME.yml ('paper': upstream's vote semantics); "
                        "--vars overrides single values")
    p.add_argument("--full-refresh", action="store_true", help="rebuild the incremental answer dictionaries and rewrite every stratum segment too")
    p.add_argument("--select", nargs="+", metavar="SELECTOR", help="dbt node selection (default: everything)")
    p.add_argument("--docs", action="store_true", help="also run `dbt docs generate` (into the dbt target folder beside the marts)")
    p.add_argument("--no-test", action="store_true", help="models only (dbt run), skip the data and unit tests")
    p.add_argument("--quiet", action="store_true", help="print dbt errors and the summary only")
    p.add_argument("--allow-quarantined", action="store_true",
                   help="build and publish strata although lake parts are quarantined (they are left out)")
    p.set_defaults(handler=_handle)


if __name__ == "__main__":  # pragma: no cover
    from warehouse.cli import main

    sys.exit(main(["curate", *sys.argv[1:]]))
