"""`sedwatt sync SPOOL`: send what a run logged while the tracking server was away.

During an outage the tracking callback keeps every record in ``<out_dir>/mlflow-spool.jsonl`` and
ends with a one-line hint naming this command. Records are sent in order; the sent ones leave the
file, and the file is removed once empty, so running it twice never sends twice.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="send records a run kept while the MLflow server was unreachable",
        description="Replay a tracking spool (written during a server outage) to the MLflow server.",
    )
    parser.add_argument("spool", nargs="+", metavar="SPOOL", help="spool file(s), e.g. outputs/<run_id>/mlflow-spool.jsonl")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="send to this server instead of the one each record names (credentials: MLFLOW_TRACKING_USERNAME/PASSWORD)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sedwatt.tracking.resilient import read_spool, replay_spool

    paths = [Path(p) for p in args.spool]
    for path in paths:
        read_spool(path)  # validate every file before sending anything
    failed = 0
    for path in paths:
        result = replay_spool(path, tracking_uri=args.tracking_uri)
        if result.left:
            failed += 1
            print(f"{path}: sent {result.sent}, {result.left} left (kept in the file)", file=sys.stderr)
            for error in result.errors[:5]:
                print(f"  {error}", file=sys.stderr)
        else:
            print(f"{path}: sent {result.sent} record(s); spool removed")
    return 1 if failed else 0
