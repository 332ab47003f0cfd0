"""`sedwatt check-data DIR`: validate a DESED-layout dataset and list every problem found.

Problems exit with 2; warnings (exactly repeated strong-label rows, which DESED's own files may
hold) are listed on stderr but leave the exit status at 0.
"""

from __future__ import annotations

import argparse
import sys

from sedwatt.cli.common import add_config_flags


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-data",
        help="validate a DESED-layout dataset and list every problem",
        description="Read every TSV and probe every audio file of a DESED-layout dataset; list all problems.",
    )
    parser.add_argument("data", metavar="DIR", help="dataset root (the folder holding audio/ and metadata/)")
    parser.add_argument(
        "--sets",
        nargs="+",
        default=None,
        metavar="SET",
        help="sets to check (default: all five: synth_train weak unlabelled synth_val devtest)",
    )
    add_config_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sedwatt.config import load_config
    from sedwatt.data.layout import ALL_SETS, SETS_BY_NAME
    from sedwatt.data.scan import scan_dataset
    from sedwatt.errors import SedwattError

    config = load_config(args.config, args.overrides)
    sets = ALL_SETS
    if args.sets:
        unknown = [s for s in args.sets if s not in SETS_BY_NAME]
        if unknown:
            raise SedwattError(f"--sets: unknown set {unknown[0]!r} (expected {', '.join(SETS_BY_NAME)})")
        sets = tuple(SETS_BY_NAME[s] for s in args.sets)
    scan = scan_dataset(args.data, config, sets, progress=sys.stderr.isatty())
    for name, clip_set in scan.sets.items():
        events = sum(len(c.events or ()) for c in clip_set.clips)
        extra = f", {events} events" if clip_set.spec.kind == "strong" else ""
        print(f"{name:<12} {len(clip_set.clips):>6} clips{extra}")
    for warning in scan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if scan.problems:
        for problem in scan.problems:
            print(problem, file=sys.stderr)
        print(f"sedwatt check-data: {len(scan.problems)} problem(s) in {args.data}", file=sys.stderr)
        return 2
    noted = f", {len(scan.warnings)} warning(s)" if scan.warnings else ""
    print(f"{args.data}: OK{noted} (fingerprint {scan.fingerprint})")
    return 0
