"""Flags shared by several subcommands."""

from __future__ import annotations

import argparse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML config (default: the DCASE 2022 recipe)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.lr=5e-4 (repeatable)",
    )
