"""The ``sedwatt`` command: one subcommand per user task.

Each subcommand lives in its own module here with ``register(subparsers)``, which adds its parser
and sets ``func(args) -> int``. Heavy imports (torch, mlflow) happen inside ``func`` so that
``sedwatt --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sedwatt import __version__
from sedwatt.errors import SedwattError

# Module names under sedwatt.cli, in the order `sedwatt --help` lists them.
COMMANDS: tuple[str, ...] = (
    "make_data",
    "check_data",
    "train",
    "search",
    "analyze",
    "demo",
    "sync",
    "score",
    "evaluate",
    "calibrate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sedwatt",
        description="Train the DCASE 2022 Task 4 baseline and measure what every F1 point costs in energy.",
    )
    parser.add_argument("--version", action="version", version=f"sedwatt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"sedwatt.cli.{name}").register(subparsers)
    return parser


# Subcommands whose work is torch's: OpenMP's wait policy is chosen for them before torch starts.
COMPUTE_COMMANDS = frozenset({"train", "search", "demo", "evaluate", "calibrate"})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command in COMPUTE_COMMANDS:
        from sedwatt.threads import choose_wait_policy

        choose_wait_policy()  # before the subcommand imports torch
    try:
        return int(args.func(args) or 0)
    except SedwattError as exc:
        print(f"sedwatt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sedwatt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
