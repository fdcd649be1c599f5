"""The `reasonlite` error boundary: user mistakes are one line, bugs keep their traceback, and
`--debug` works before or after the subcommand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse.cli import user_message

REPO = Path(__file__).resolve().parent.parent
REASONLITE = Path(sys.executable).with_name("reasonlite")


def reasonlite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REASONLITE), *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "REASONLITE_DEBUG": ""})


@pytest.mark.parametrize("argv", [
    ["ingest", "/nonexistent/problems.jsonl", "--source", "x", "--debug"],
    ["--debug", "ingest", "/nonexistent/problems.jsonl", "--source", "x"],
])
def test_debug_shows_the_traceback_before_or_after_the_subcommand(lake_env, argv):
    result = reasonlite(*argv)
    assert result.returncode != 0 and "Traceback (most recent call last)" in result.stderr, result.stderr


def test_without_debug_the_same_error_is_one_line(lake_env):
    result = reasonlite("ingest", "/nonexistent/problems.jsonl", "--source", "x")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("reasonlite ingest: error:"), lines
    assert "/nonexistent/problems.jsonl" in lines[0]


def test_duckdb_yaml_and_pydantic_errors_are_one_line():
    import duckdb
    import pydantic
    import yaml

    with pytest.raises(duckdb.Error) as binder:
        duckdb.connect().execute("SELECT nosuch FROM range(1)")
    message = user_message(binder.value)
    assert message.startswith("DuckDB: Binder Error:") and "nosuch" in message and "\n" not in message

    with pytest.raises(yaml.YAMLError) as bad_yaml:
        yaml.safe_load("a: [unclosed")
    assert user_message(bad_yaml.value).startswith("not valid YAML (")
    assert "\n" not in user_message(bad_yaml.value)

    class ModelConfig(pydantic.BaseModel):
        max_model_len: int

    with pytest.raises(pydantic.ValidationError) as invalid:
        ModelConfig(max_model_len="lots")
    # Not just "1 validation error for ModelConfig": which field, and why.
    assert user_message(invalid.value) == ("ModelConfig: max_model_len: Input should be a valid integer, "
                                           "unable to parse string as an integer")


def test_a_bug_is_not_dressed_up_as_a_user_error():
    assert user_message(TypeError("'>' not supported between instances of 'str' and 'int'")) is None
    assert user_message(KeyError("x")) is None


def test_sigterm_is_taken_only_while_a_command_runs_and_never_by_a_forked_child(monkeypatch):
    """The CLI raises SIGTERM as an interrupt so that a vLLM engine is shut down; main() called
    in-process must leave the handler as it found it, and a child forked meanwhile (a "fork" pool's
    worker, which its pool stops with SIGTERM) must keep the default. Both once went wrong: the
    handler stayed in the pytest process, and a pool worker forked later hung in terminate()."""
    import argparse
    import signal

    from warehouse import cli

    seen = {}

    def command(args):
        seen["during"] = signal.getsignal(signal.SIGTERM)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else 1)
        seen["child_exit"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        return 0

    parser = argparse.ArgumentParser()
    parser.set_defaults(handler=command, command="probe", debug=False)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    before = signal.getsignal(signal.SIGTERM)
    assert before == signal.SIG_DFL
    assert cli.main([]) == 0
    assert seen == {"during": cli._raise_terminated, "child_exit": 0}
    assert signal.getsignal(signal.SIGTERM) == before
