"""MLproject entry point `analyze`: the analysis report of an experiment's training runs.

Under `mlflow run` the entry's own run is tagged ``sedwatt.kind = analysis`` (so no analysis ever
counts it as a training run) and gets the report folder as artifacts.
"""

import argparse
import os
import sys

parser = argparse.ArgumentParser()
for flag in ("--experiment", "--filter", "--group-by", "--out"):
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

from sedwatt.cli import main  # noqa: E402

code = main(argv)
if code == 0 and os.environ.get("MLFLOW_RUN_ID"):
    import mlflow

    with mlflow.start_run():  # resumes the run `mlflow run` created
        mlflow.set_tag("sedwatt.kind", "analysis")
        mlflow.log_artifacts(out, artifact_path="report")
sys.exit(code)
