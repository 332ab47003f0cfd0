"""MLproject entry point `analyze`: the analysis report of an experiment's training runs.

Under `mlflow run` the entry's own run is tagged ``sedwatt.kind = analysis`` (so no analysis ever
counts it as a training run) and gets the report folder as artifacts. ``-P policies="patience=10
slowdown=0.01:10"`` (or ``default``) also replays stopping rules over the runs' histories.
"""

import argparse
import os
import sys

parser = argparse.ArgumentParser()
for flag in ("--experiment", "--filter", "--group-by", "--out", "--policies"):
    parser.add_argument(flag, default="")
args = parser.parse_args()

out = args.out or "analysis_out"
argv = ["analyze", "--out", out]
# MLproject parameters are single strings: several experiments or group keys are comma-separated.
for name in filter(None, (s.strip() for s in args.experiment.split(","))):
    argv += ["--experiment", name]
if args.filter:
    argv += ["--filter", args.filter]
keys = [k.strip() for k in args.group_by.replace(",", " ").split() if k.strip()]
if keys:
    argv += ["--group-by", *keys]
# policies: "" replays no stopping rule; "default" the default grid; else a grid or a YAML file.
if args.policies.strip():
    argv += ["--policies", args.policies.strip()]

from sedwatt.cli import main  # noqa: E402

code = main(argv)
if code == 0 and os.environ.get("MLFLOW_RUN_ID"):
    import mlflow

    with mlflow.start_run():  # resumes the run `mlflow run` created
        mlflow.set_tag("sedwatt.kind", "analysis")
        mlflow.log_artifacts(out, artifact_path="report")
sys.exit(code)
