"""MLproject entry point `make_data`: generate a DESED-like synthetic dataset."""

import argparse

from _entry import run_cli

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--preset", default="small")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--clip-seconds", type=float, default=10.0)
args = parser.parse_args()

run_cli(["make-data", args.out, "--preset", args.preset, "--seed", str(args.seed), "--clip-seconds", str(args.clip_seconds)])
