"""MLproject entry point `analyze`: the analysis report of an experiment's training runs."""

import argparse

from _entry import run_cli

parser = argparse.ArgumentParser()
for flag in ("--experiment", "--filter", "--group-by", "--out"):
    parser.add_argument(flag, default="")
args = parser.parse_args()

argv = ["analyze", "--out", args.out or "analysis_out"]
# MLproject parameters are single strings: several experiments or group keys are comma-separated.
for name in filter(None, (s.strip() for s in args.experiment.split(","))):
    argv += ["--experiment", name]
if args.filter:
    argv += ["--filter", args.filter]
keys = [k.strip() for k in args.group_by.replace(",", " ").split() if k.strip()]
if keys:
    argv += ["--group-by", *keys]
run_cli(argv)
