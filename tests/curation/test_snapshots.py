"""Readers and the build never block each other (warehouse/snapshots.py): a curate builds a new
snapshot and publishes it, with its strata and vars, only when it succeeded. Real processes:
`reasonlite curate` and `reasonlite sql` as children, a DuckDB reader held open in this one."""

from __future__ import annotations

import json
import os
import shutil

import duckdb
import pytest

from tests.curation import lakes
from tests.reliability.conftest import cli_env, popen_cli, run_cli, wait_until
from warehouse import lake, snapshots
from warehouse.errors import UserError

pytestmark = pytest.mark.slow

VOTES = "SELECT count(*) FILTER (WHERE label_source = 'vote') FROM pseudo_labels"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, benchmarks_dir):
    root = tmp_path_factory.mktemp("snapshots") / "warehouse"
    env = lake.env_for_root(root)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        lakes.scenario_lake(benchmarks_dir)
        first = run_cli("curate", "--quiet", env=cli_env(**env))
        assert first.returncode == 0, first.stdout + first.stderr
        yield env


def _read(sql: str) -> list[tuple]:
    con = duckdb.connect(str(lake.database_path()), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _published_exports() -> dict[str, bytes]:
    """The published vars, build record and every stratum file (segments and index), by name."""
    exports = lake.exports_dir()
    names = [*(p.name for p in exports.iterdir() if p.is_file()), *snapshots.strata_files(exports)]
    return {name: (exports / name).read_bytes() for name in sorted(names)}


def _sql(env, query: str) -> str:
    proc = run_cli("sql", query, "--format", "csv", env=cli_env(**env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_a_reader_holds_the_marts_open_through_a_whole_curate(warehouse):
    reader = duckdb.connect(str(lake.database_path()), read_only=True)  # a notebook left open
    try:
        build, votes = reader.execute(f"SELECT (SELECT build_id FROM curation_build), ({VOTES})").fetchone()
        proc = run_cli("curate", "--quiet", "--vars", "{vote_ratio: 0.5}", env=cli_env(**warehouse))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The reader still sees its build, whole; a new reader sees the new one.
        assert reader.execute(f"SELECT (SELECT build_id FROM curation_build), ({VOTES})").fetchone() == (build, votes)
        # (A new process: this one's duckdb.connect(path) would share the open instance, DuckDB caches it.)
        new_build, new_votes = _sql(warehouse, "SELECT build_id FROM curation_build"), int(_sql(warehouse, VOTES))
        assert new_build != build and new_votes > votes
        assert snapshots.check_published_exports()["build_id"] == new_build
        assert json.loads((lake.exports_dir() / "curation_vars.json").read_text())["vote_ratio"] == 0.5
    finally:
        reader.close()


def test_sql_during_a_curate_reads_the_previous_build_and_a_second_curate_is_refused(warehouse, tmp_path):
    before = _sql(warehouse, "SELECT build_id FROM curation_build")
    votes_before = _sql(warehouse, VOTES)
    log = tmp_path / "curate.log"
    proc = popen_cli("curate", "--quiet", "--vars", "{vote_ratio: 0.9}", env=cli_env(**warehouse), log=log)
    try:
        building = lambda: any(lake.snapshots_dir().glob(f".build-*/{lake.database_path().name}"))  # noqa: E731
        assert wait_until(building, timeout=120), log.read_text()[-2000:]
        assert _sql(warehouse, "SELECT build_id FROM curation_build") == before
        assert _sql(warehouse, VOTES) == votes_before
        status = run_cli("status", env=cli_env(**warehouse))  # says which build it reads
        assert status.returncode == 0 and f"build: {before} (dbt invocation" in status.stdout, status.stdout
        assert proc.poll() is None  # the reads overlapped the build

        second = run_cli("curate", "--quiet", env=cli_env(**warehouse))
        assert second.returncode == 2
        assert f"another curate is building this warehouse (pid {proc.pid} on " in second.stderr
        assert second.stderr.count("\n") == 1, second.stderr
        assert proc.poll() is None or proc.returncode == 0
    finally:
        code = proc.wait(timeout=600)
    assert code == 0, log.read_text()[-3000:]
    assert _sql(warehouse, "SELECT build_id FROM curation_build") != before
    assert int(_sql(warehouse, VOTES)) < int(votes_before)


def test_a_failing_build_publishes_nothing(warehouse):
    """A data test fails in a mart unrelated to the strata (an eval sample of an unknown problem has
    no benchmark): the strata, the vars and the marts stay the previous build's."""
    database = lake.database_path()
    marts_before, exports_before = database.read_bytes(), _published_exports()
    build_before = _read("SELECT build_id FROM curation_build")
    lakes.write_run("eval-orphan", "medium", purpose="eval")
    lakes.write_generations([lakes.sample("eval-orphan", "nowhere:0", 0, "medium", "?", answer="1")])
    try:
        proc = run_cli("curate", "--quiet", "--vars", "{vote_ratio: 0.5}", env=cli_env(**warehouse))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "not_null_eval_samples_benchmark" in proc.stdout
        assert "nothing published" in proc.stdout
        assert database.read_bytes() == marts_before and _published_exports() == exports_before
        assert _read("SELECT build_id FROM curation_build") == build_before
        assert not list(lake.snapshots_dir().glob(".build-*"))
    finally:
        shutil.rmtree(lake.partition_dir("generations", {"run_id": "eval-orphan", "shard": 0}).parent)
        shutil.rmtree(lake.manifest_path("eval-orphan").parent)


def test_an_interrupted_publish_is_caught_by_export_and_finished_by_the_next_curate(warehouse):
    published = snapshots.check_published_exports()
    short = snapshots.stratum_segments(lake.exports_dir() / "sft_short_cot")[0]
    good = short.read_bytes()
    # A segment the build did not record (another build's, in the folder readers list).
    stray = short.with_name("part-another-build-00000.parquet")
    stray.write_bytes(good)
    with pytest.raises(UserError, match="a segment build .* did not publish"):
        snapshots.check_published_exports()
    # What a kill between two renames leaves: one segment that is not the recorded build's.
    tmp = short.with_name(".tmp-other")
    tmp.write_bytes(good[:-10] + b"0123456789")
    os.replace(tmp, short)
    with pytest.raises(UserError, match="not the file build .* published"):
        snapshots.check_published_exports()
    # A cheap curate (one staging view) finishes the publish before it builds.
    proc = run_cli("curate", "--quiet", "--no-test", "--select", "stg_lake__problems", env=cli_env(**warehouse))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "finished an interrupted publish: strata of build" in proc.stderr
    assert short.read_bytes() == good and not stray.exists()
    assert snapshots.check_published_exports()["build_id"] == published["build_id"]


def test_old_snapshots_are_pruned_and_published_files_survive(warehouse):
    env = cli_env(**warehouse, REASONLITE_KEEP_SNAPSHOTS="2")
    for _ in range(2):
        proc = run_cli("curate", "--quiet", "--no-test", "--select", "stg_lake__problems", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    kept = snapshots.snapshots()
    assert len(kept) == 2
    assert os.path.samefile(kept[-1].database, lake.database_path())
    # The strata came from an older, pruned build: still published, still whole.
    assert snapshots.check_published_exports()["build_id"] not in {b.build_id for b in kept}
    sizes = {b.build_id: sum(p.stat().st_size for p in b.folder.rglob("*") if p.is_file()) for b in kept}
    print(f"\nsnapshots kept: {len(kept)}, bytes each: {sizes}")
    bad_settings = {"REASONLITE_KEEP_SNAPSHOTS": "0", "REASONLITE_DUCKDB_THREADS": "two",
                    "REASONLITE_DBT_THREADS": "0"}
    for name, value in bad_settings.items():
        bad = run_cli("curate", "--quiet", env=cli_env(**warehouse, **{name: value}))
        assert bad.returncode == 2 and f"{name}={value!r}" in bad.stderr, (name, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert [b.build_id for b in snapshots.snapshots()] == [b.build_id for b in kept]  # nothing built
    assert os.path.samefile(kept[-1].database, lake.database_path())
