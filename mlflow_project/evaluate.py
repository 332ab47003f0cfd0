"""MLproject entry point `evaluate`: dev-test scores and inference energy of a logged model (config "" = the training run's)."""

import argparse

from _entry import run_cli, set_flags

parser = argparse.ArgumentParser()
parser.add_argument("--model-uri", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--config", default="")
parser.add_argument("--overrides", default="")
args = parser.parse_args()

argv = ["evaluate", "--model-uri", args.model_uri, "--data", args.data]
if args.config:
    argv += ["--config", args.config]
run_cli([*argv, *set_flags(args.overrides)])
