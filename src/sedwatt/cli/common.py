"""Flags shared by several subcommands."""

from __future__ import annotations

import argparse


def add_set_flag(parser: argparse.ArgumentParser, help: str = "override a config field, e.g. --set train.lr=5e-4") -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=f"{help} (repeatable)"
    )


def add_config_flags(
    parser: argparse.ArgumentParser, config_help: str = "YAML config (default: the DCASE 2022 recipe)"
) -> None:
    """``--config`` and ``--set``."""
    parser.add_argument("--config", default=None, help=config_help)
    add_set_flag(parser)
