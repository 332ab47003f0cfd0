"""`sedwatt train`: one tracked training run (the MLproject ``main`` entry point calls this)."""

from __future__ import annotations

import argparse

from sedwatt.cli.common import add_config_flags


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `train` and `search` (applied to every trial)."""
    add_config_flags(parser)
    parser.add_argument("--data", required=True, metavar="DIR", help="DESED-layout dataset root")
    parser.add_argument("--epochs", type=int, default=None, metavar="N", help="override train.epochs")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="override train.seed")
    parser.add_argument(
        "--experiment",
        default=None,
        metavar="NAME",
        help="MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME, else tracking.experiment = sedwatt)",
    )


def training_overrides(args: argparse.Namespace) -> list[str]:
    """Turn the convenience flags into config overrides (flags win over --set and the YAML)."""
    import os

    from sedwatt.config import Override

    overrides: list[str] = list(args.overrides)
    if args.epochs is not None:
        overrides.append(Override(f"train.epochs={args.epochs}", f"--epochs {args.epochs}"))
    if args.seed is not None:
        overrides.append(Override(f"train.seed={args.seed}", f"--seed {args.seed}"))
    if getattr(args, "batch_size", None) is not None:
        overrides.append(Override(f"train.batch_size={args.batch_size}", f"--batch-size {args.batch_size}"))
    if args.experiment:
        overrides.append(Override(f"tracking.experiment={args.experiment}", f"--experiment {args.experiment}"))
    elif os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        name = os.environ["MLFLOW_EXPERIMENT_NAME"]
        overrides.append(Override(f"tracking.experiment={name}", f"MLFLOW_EXPERIMENT_NAME={name}"))
    return overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the mean-teacher CRNN, logging F1 and energy per epoch to MLflow",
        description="Train the DCASE 2022 mean-teacher CRNN; F1 and energy are logged to MLflow every epoch.",
    )
    add_training_flags(parser)
    parser.add_argument(
        "--batch-size", type=int, default=None, metavar="B", help="total batch size, split 1/4 + 1/4 + 1/2"
    )
    parser.add_argument("--run-name", default=None, help="MLflow run name")
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_ID",
        help="continue a killed run (its MLflow run id) from its last checkpoint",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sedwatt.config import load_config
    from sedwatt.runner import resume_config, train_run
    from sedwatt.tracking import configure_tracking

    overrides = training_overrides(args)
    if args.resume:
        configure_tracking()
        config = load_config(args.config, overrides) if args.config else resume_config(args.resume, overrides)
    else:
        config = load_config(args.config, overrides)
    outcome = train_run(config, args.data, run_name=args.run_name, resume_run_id=args.resume)
    stop = f" (stopped early: {outcome.state.stop_reason})" if outcome.state.stop_reason else ""
    print(f"run {outcome.run_id}: max val_f1 {outcome.max_val_f1:.3f} over {len(outcome.state.history)} epochs{stop}")
    if outcome.state.history and "energy_cum_kwh" in outcome.state.history[-1]:
        from sedwatt.energy.provenance import describe_energy

        tags = outcome.state.info.get("tags") or {}
        print(f"energy: {describe_energy({**outcome.state.history[-1], **outcome.summary}, tags)}")
    return 0
