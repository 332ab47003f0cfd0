"""MLproject entry point `search`: one Optuna worker; the project's run becomes the study's parent run."""

import argparse

from _entry import run_cli, set_flags

parser = argparse.ArgumentParser()
for flag in ("--config", "--data", "--storage", "--study-name", "--sampler", "--space", "--overrides"):
    parser.add_argument(flag, default="")
for flag in ("--n-trials", "--epochs", "--seed"):
    parser.add_argument(flag, type=int, required=True)
args = parser.parse_args()

argv = ["search", "--config", args.config, "--data", args.data, "--n-trials", str(args.n_trials),
        "--study-name", args.study_name, "--sampler", args.sampler, "--epochs", str(args.epochs), "--seed", str(args.seed)]
if args.storage:
    argv += ["--storage", args.storage]
if args.space:
    argv += ["--space", args.space]
run_cli(argv + set_flags(args.overrides))
