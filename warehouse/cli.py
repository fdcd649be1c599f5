"""`reasonlite` — one command per pipeline stage; each stage package registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from warehouse.errors import UserError

# Each module has `register(subparsers)`; imports inside command handlers stay lazy so that
# `reasonlite --help` does not pay for torch or vLLM.
COMMAND_MODULES = (
    "warehouse.commands",
    "warehouse.curate",
    "warehouse.hub",
    "generation.cli",
    "training.cli",
    "evaluation.cli",
    "evaluation.judge_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reasonlite",
        description="ReasonLite Lakehouse: teacher samples -> lake -> SQL curation -> SFT -> evaluation.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("REASONLITE_DEBUG") == "1"
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("reasonlite: interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError, PermissionError, OSError) as err:
        if debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"reasonlite {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
