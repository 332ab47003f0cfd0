"""MLproject entry point `main`: train the CRNN with F1 and energy logged to the run `mlflow run` opened.

``-P epochs=N -P batch_size=B -P seed=S`` are optional: MLflow passes undeclared parameters on as
``--epochs N --batch_size B --seed S``; without them the config's values are used.
"""

import argparse

from _entry import run_cli, set_flags

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--epochs", type=int, default=None)
parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=None)
parser.add_argument("--seed", type=int, default=None)
parser.add_argument("--overrides", default="")
args = parser.parse_args()

flags = ["train", "--config", args.config, "--data", args.data]
for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--seed", args.seed)):
    if value is not None:
        flags += [flag, str(value)]
run_cli([*flags, *set_flags(args.overrides)])
