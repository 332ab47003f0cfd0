"""What every MLproject entry script shares: split the ``overrides`` parameter and call the CLI."""

from __future__ import annotations

import shlex
import sys


def set_flags(overrides: str) -> list[str]:
    """MLproject passes all overrides as one string: "train.lr=5e-4 model.fast_dropout=true"."""
    flags: list[str] = []
    for item in shlex.split(overrides or ""):
        flags += ["--set", item]
    return flags


def run_cli(argv: list[str]) -> None:
    from sedwatt.cli import main

    sys.exit(main(argv))
