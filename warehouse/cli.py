"""`reasonlite` — one command per pipeline stage; each stage package registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from warehouse.errors import UserError

# Each module has `register(subparsers)`; imports inside command handlers stay lazy so that
# `reasonlite --help` does not pay for torch or vLLM.
COMMAND_MODULES = (
    "warehouse.commands",
    "warehouse.curate",
    "warehouse.hub",
    "warehouse.serve",
    "generation.cli",
    "training.cli",
    "evaluation.cli",
    "evaluation.judge_cli",
)
DEBUG_HELP = "show tracebacks on errors"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reasonlite",
        description="ReasonLite Lakehouse: teacher samples -> lake -> SQL curation -> SFT -> evaluation.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():
        # `reasonlite ingest ... --debug` too; SUPPRESS keeps a subcommand from resetting the global flag.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def _is_from(err: BaseException, *modules: str) -> bool:
    """Whether the exception's class comes from one of these packages (checked without importing them)."""
    return any(cls.__module__.split(".")[0] in modules for cls in type(err).__mro__)


def user_message(err: BaseException) -> str | None:
    """One line for an error the user can fix (bad input, bad config, bad SQL); None for a bug."""
    text = str(err).strip()
    first_line = text.splitlines()[0] if text else type(err).__name__
    if _is_from(err, "duckdb", "_duckdb"):
        # Binder/Parser/IO/Conversion errors name the bad column, table or file on their first line.
        return f"DuckDB: {first_line}"
    if _is_from(err, "yaml"):
        return f"not valid YAML ({' '.join(text.split())})"
    if callable(getattr(err, "errors", None)) and _is_from(err, "pydantic", "pydantic_core"):
        # "1 validation error for ModelConfig" alone hides which field and why.
        title = getattr(err, "title", "config")
        first = err.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "value"
        return f"{title}: {where}: {first.get('msg', first_line)}"
    if isinstance(err, UserError | ValueError | OSError):
        return first_line
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C: `finally` blocks run, so a vLLM engine's
    processes are shut down with the command instead of living on, orphaned, with their memory."""


def _raise_terminated(signum, frame):
    raise Terminated


def _default_sigterm_after_fork() -> None:
    # A forked child (a multiprocessing "fork" pool's worker, the sql query process) is stopped by
    # SIGTERM from its parent and must die then, not raise inside whatever it was doing.
    if signal.getsignal(signal.SIGTERM) is _raise_terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_sigterm_after_fork)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("REASONLITE_DEBUG") == "1"
    # Only where SIGTERM is still Python's default, and only while the command runs: main() is also
    # called in-process (tests, notebooks), whose handler must come back as it was.
    takes_sigterm = (threading.current_thread() is threading.main_thread()
                     and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    if takes_sigterm:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.handler(args) or 0)
    except Terminated:
        print("reasonlite: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("reasonlite: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        message = user_message(err)
        if debug or message is None:
            raise
        print(f"reasonlite {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if takes_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
