"""MLproject entry point `main`: train the CRNN with F1 and energy logged to the run `mlflow run` opened."""

import argparse

from _entry import run_cli, set_flags

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--batch-size", type=int, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--overrides", default="")
args = parser.parse_args()

run_cli(
    ["train", "--config", args.config, "--data", args.data, "--epochs", str(args.epochs),
     "--batch-size", str(args.batch_size), "--seed", str(args.seed), *set_flags(args.overrides)]
)
