"""The dbt profile's DuckDB settings survive a spill. dbt-duckdb opens a new cursor for each model and
thread and runs the profile's `settings` on it again; DuckDB refuses `SET temp_directory` once a
query has spilled there, so with the temp directory among `settings` one spill failed every later
model of the build (seen at scale 0.05 with real-length texts). Through dbt-duckdb's own
environment, with this project's profile."""

from __future__ import annotations

import jinja2
import yaml
from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.adapters.duckdb.environments.local import LocalEnvironment

from warehouse.curate import PROJECT_DIR


def _profile_output(env: dict[str, str]) -> dict:
    text = (PROJECT_DIR / "profiles.yml").read_text()
    rendered = jinja2.Template(text).render(env_var=lambda name, default=None: env.get(name, default))
    return yaml.safe_load(rendered)["reasonlite"]["outputs"]["local"]


def test_a_new_cursor_after_a_spill_keeps_working_with_the_profiles_settings(tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    output = _profile_output({"REASONLITE_DB": str(tmp_path / "w.duckdb"), "REASONLITE_TMP": str(spill),
                              "REASONLITE_DUCKDB_MEMORY": "128MB"})
    creds = DuckDBCredentials(path=output["path"], config_options=output.get("config_options"),
                              settings=output.get("settings"))
    environment = LocalEnvironment(creds)
    first = environment.handle().cursor()
    first.execute("CREATE TABLE t AS SELECT range AS i, repeat('x', 200) || range AS s FROM range(2000000)")
    first.execute("SELECT * FROM t ORDER BY s DESC").fetchone()  # a full sort of ~450 MB in 128 MB
    assert any(spill.iterdir()), "the sort did not spill: the test proves nothing"
    later = environment.handle().cursor()  # what dbt does for the next model
    assert later.execute("SELECT count(*) FROM t").fetchall() == [(2_000_000,)]
    assert later.execute("SELECT current_setting('memory_limit')").fetchall()[0][0].startswith("122")
