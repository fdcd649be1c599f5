"""curate --vars: typos refused with "did you mean", kinds checked, and every var rendered into
SQL as a literal by one macro (dbt_project/macros/vars.sql), so text cannot change the SQL."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.curation import lakes
from warehouse import curate, lake
from warehouse.cli import main

REPO = curate.PROJECT_DIR.parent


def _curate(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["curate", "--quiet", *args])
    return code, err.getvalue()


def test_misspelled_var_is_refused_with_a_suggestion(lake_env):
    code, err = _curate("--vars", "{vote_ration: 0.8}")
    assert code == 2
    assert err.strip() == ("reasonlite curate: error: --vars: unknown var 'vote_ration' "
                           "(did you mean 'vote_ratio'?)")
    assert not lake.database_path().exists() and not (lake.exports_dir() / "curation_vars.json").exists()


@pytest.mark.parametrize(("given", "message"), [
    ("{vote_ratio: true}", "vote_ratio must be a number in (0, 1], got True"),
    ("{vote_ratio: 0}", "vote_ratio must be a number in (0, 1], got 0"),
    ("{sweep_vote_ratios: [abc, 2.0, -1]}", "sweep_vote_ratios[0] must be a number in (0, 1], got 'abc'"),
    ("{sweep_vote_ratios: [0.5, 2.0]}", "sweep_vote_ratios[1] must be a number in (0, 1], got 2.0"),
    ("{sweep_min_votes: [1, 0]}", "sweep_min_votes[1] must be an integer >= 1, got 0"),
    ("{require_boxed: 'true) or (1=1'}", "require_boxed must be true or false, got 'true) or (1=1'"),
    ("{require_reasoning: 'no'}", "require_reasoning must be true or false, got 'no'"),
    ("{min_votes: 2.5}", "min_votes must be an integer >= 1, got 2.5"),
    ("{max_per_problem: 0}", "max_per_problem must be an integer >= 1 or null, got 0"),
    ("{vote_runs: teacher-high}", "vote_runs must be a list, got 'teacher-high'"),
    ("{unknown_run_purpose: 2024-01-01}", "unknown_run_purpose must be a string, got datetime.date(2024, 1, 1)"),
    ("{benchmark_sources: [aime24, 2024-01-01]}", "benchmark_sources[1] must be a string, got datetime.date"),
    ("{stratify_by: level}", "stratify_by must be one of 'reasoning_level', 'tokens', got 'level'"),
    ("{vote_scope: per-run}", "vote_scope must be one of 'pooled', 'per_run', got 'per-run'"),
    ("{vote_denominator: [all]}", "vote_denominator must be one of 'answered', 'all', got ['all']"),
    ("{drop_near_duplicates: 'yes'}", "drop_near_duplicates must be true or false, got 'yes'"),
    ("{near_duplicate_threshold: 75}", "near_duplicate_threshold must be a number in (0, 1], got 75"),
])
def test_values_of_the_wrong_kind_are_one_line_errors(lake_env, given, message):
    code, err = _curate("--vars", given)
    assert code == 2, err
    assert message in err and err.count("\n") == 1, err
    assert not lake.database_path().exists()


def test_yaml_date_is_one_line_from_a_real_process(lake_env):
    proc = subprocess.run([sys.executable, "-m", "warehouse.cli", "curate", "--vars", "{unknown_run_purpose: 2024-01-01}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "unknown_run_purpose must be a string" in proc.stderr


def test_every_var_is_declared_once_and_read_through_the_macro():
    declared = yaml.safe_load((curate.PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert set(declared) == set(curate.VAR_KINDS)
    assert curate.check_vars(declared) == declared  # the defaults are of their own kinds
    raw_reads = []
    for path in sorted(curate.PROJECT_DIR.glob("**/*.sql")) + sorted(curate.PROJECT_DIR.glob("**/*.py")):
        if path.name == "vars.sql" or "target" in path.parts:
            continue
        text = path.read_text()
        raw_reads += [f"{path.name}: {m.group(0)}" for m in re.finditer(r"(?<![\w.])var\(\s*['\"][^)]*\)", text)]
        # Each var a model reads is checked against the one kind VAR_KINDS gives it.
        for name, kind in re.findall(r"(?:var_sql|checked_var)\('(\w+)', '(\w+)'\)", text):
            assert curate.VAR_KINDS[name] == kind, (path, name, kind)
        for name, choices in re.findall(r"checked_choice\('(\w+)', \[([^\]]*)\]\)", text):
            assert curate.VAR_KINDS[name] == tuple(re.findall(r"'(\w+)'", choices)), (path, name, choices)
    assert raw_reads == []  # no var reaches SQL except through var_sql / checked_var / checked_choice


def test_unknown_vars_profile_is_a_one_line_error(lake_env):
    code, err = _curate("--vars-profile", "papr")
    assert code == 2
    assert err.strip() == "reasonlite curate: error: --vars-profile: no profile 'papr' (profiles: paper)"
    code, err = _curate("--vars-profile", "../dbt_project")
    assert code == 2 and "no profile '../dbt_project'" in err
    assert not lake.database_path().exists()


def test_every_vars_profile_holds_known_vars_of_their_kinds():
    for name in curate.profile_names():
        assert curate.vars_profile(name), name  # check_vars raises on an unknown var or a bad value


@pytest.mark.slow
def test_text_vars_reach_sql_as_literals(lake_env):
    """A quote in a var is data: `teacher's` is a purpose like any other, not a broken statement."""
    lakes.write_problems([{"problem_id": "t:0", "source": "t", "prompt": "1+1?", "expected_answer": "2"}])
    lakes.write_generations([lakes.sample("no-manifest", "t:0", i, "medium", "1+1?", answer="2") for i in range(4)])
    code, err = _curate("--vars", json.dumps({
        "unknown_run_purpose": "teacher's", "curation_purposes": ["teacher's"], "min_votes": 1,
        "benchmark_sources": ["it's"], "long_reasoning_levels": ["o'high"]}))
    assert code == 0, err
    import duckdb

    con = duckdb.connect(str(lake.database_path()), read_only=True)
    try:
        assert con.execute("SELECT DISTINCT purpose, keep FROM judged_generations").fetchall() == [("teacher's", True)]
        assert con.execute("SELECT count(*) FROM sft_examples").fetchone()[0] == 4
    finally:
        con.close()
    assert json.loads((lake.exports_dir() / "curation_vars.json").read_text())["unknown_run_purpose"] == "teacher's"


@pytest.mark.slow
@pytest.mark.parametrize(("given", "message"), [
    ({"require_boxed": "true) or (1=1"}, "var require_boxed must be a boolean, got true) or (1=1"),
    ({"vote_scope": "run_id) or (1=1"}, "var vote_scope must be one of pooled, per_run, got run_id) or (1=1"),
])
def test_bare_dbt_refuses_a_var_of_the_wrong_kind(lake_env, tmp_path, given, message):
    """The macros check kinds too, so `dbt build --vars` without reasonlite cannot inject either."""
    env = curate.dbt_env(tmp_path / "build" / lake.database_path().name, tmp_path / "build" / "exports")
    with curate._environment(env):
        result = curate.run_dbt(["compile", "--select", "judged_generations", "--vars", json.dumps(given)],
                                quiet=True)
    assert not result.success
    assert message in str(result.exception or result.result)
