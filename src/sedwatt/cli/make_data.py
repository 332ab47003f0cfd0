"""`sedwatt make-data OUT`: generate a synthetic dataset in DESED's exact layout (no download needed)."""

from __future__ import annotations

import argparse
import os


def _count(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.strip().lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"expected SET=N (e.g. weak=200), got {text!r}")
    return name.strip(), int(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-data",
        help="generate a synthetic DESED-layout dataset",
        description=(
            "Generate the five DESED sets (synthetic train, weak, unlabelled, synthetic validation, dev-test) "
            "with procedurally synthesised events of the 10 DESED classes, in DESED's folder layout and TSV "
            "formats. Deterministic for a given --seed; written atomically."
        ),
    )
    parser.add_argument("out", metavar="OUT", help="dataset root to create (holds audio/ and metadata/)")
    parser.add_argument(
        "--preset",
        default="small",
        choices=("tiny", "small", "desed-size"),
        help="clip counts: tiny (tests, seconds), small (DESED/12, the CPU demo), desed-size (DESED's counts)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="clip length in seconds (default 10, DESED)")
    parser.add_argument("--scale", type=float, default=None, help="DESED's counts times this factor (replaces --preset)")
    parser.add_argument(
        "--count",
        dest="counts",
        type=_count,
        action="append",
        default=[],
        metavar="SET=N",
        help="clips for one set: synth_train, weak, unlabelled, synth_val, devtest (repeatable)",
    )
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default: 2 or fewer)"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it holds a previously generated dataset")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sedwatt.data.synth import generate_dataset, resolve_counts, summarize

    counts = resolve_counts(args.preset, args.scale, dict(args.counts))
    out = generate_dataset(
        args.out,
        preset=args.preset if args.scale is None and not args.counts else "custom",
        seed=args.seed,
        clip_seconds=args.clip_seconds,
        counts=counts,
        workers=args.workers,
        force=args.force,
    )
    print(summarize(out))
    return 0
