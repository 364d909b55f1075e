"""The ``hraml`` command line: one parser, one sub-command module per area under ``commands/``.

Each module in :data:`COMMAND_MODULES` exposes ``register(subparsers)``, which adds its
sub-commands and sets ``func`` on them; ``func(args)`` returns the exit status.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "hraml_core.commands.datasets",
    "hraml_core.commands.train",
    "hraml_core.commands.runs",
    "hraml_core.commands.reproduce",
    "hraml_core.commands.dashboard",
)

from hraml_core.commands import CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hraml",
        description="HRAML Explorer: relation-alignment metric learning (train, evaluate, reproduce the paper).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a flag argparse refused (it has printed why)
        return int(exc.code or 0)
    from hraml_core.data.errors import DatasetError

    try:
        return int(args.func(args) or 0)
    except (CommandError, DatasetError) as exc:
        print(f"hraml {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # `python -m hraml_core.cli`; `python -m hraml_core` works too
    sys.exit(main())
