"""`sedwatt evaluate`: dev-test scores and inference energy of a logged model, nested under its training run."""

from __future__ import annotations

import argparse

from sedwatt.cli.common import add_set_flag

TABLE_KEYS = (
    "psds1",
    "psds2",
    "intersection_f1_macro",
    "intersection_f1_macro_05",
    "collar_f1_macro",
    "inference_energy_kwh",
    "inference_energy_normalised_kwh",
    "inference_duration_s",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a logged model on the dev-test (PSDS1/2, F1) and measure its inference energy",
        description=(
            "Run a logged model on the dev-test set: PSDS1 and PSDS2 over 50 thresholds, intersection F1 "
            "(DTC/GTC 0.7 and 0.5) and collar F1 at 0.5, and the energy of the whole pass. The results go to "
            "a new MLflow run nested under the model's training run. With a calibration for this hardware "
            "(`sedwatt calibrate`) the normalised inference energy is logged too."
        ),
    )
    parser.add_argument(
        "--model-uri",
        required=True,
        metavar="URI",
        help="models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest, models:/m-ID or runs:/RUN_ID/model",
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="DESED-layout dataset root holding the dev-test set")
    parser.add_argument("--config", default=None, help="YAML config (default: the training run's config.yaml)")
    add_set_flag(parser, "override a config field, e.g. --set train.device=cpu")
    parser.add_argument("--run-name", default=None, help="MLflow run name of the evaluation")
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="also keep the operating-point TSVs, per-class JSON and energy CSVs here"
    )
    parser.set_defaults(func=run)


def format_table(metrics: dict[str, float]) -> str:
    width = max(len(k) for k in TABLE_KEYS)
    return "\n".join(f"  {key:<{width}}  {metrics[key]:.4g}" for key in TABLE_KEYS if key in metrics)


def run(args: argparse.Namespace) -> int:
    from sedwatt.evaluation import evaluate

    outcome = evaluate(
        args.model_uri,
        args.data,
        config_path=args.config or None,
        overrides=args.overrides,
        out=args.out,
        run_name=args.run_name,
    )
    source = outcome.source
    print(f"dev-test of {source.load_uri} (training run {source.training_run_id}), {outcome.n_clips} clips:")
    print(format_table(outcome.metrics))
    if outcome.calibration is not None:
        c = outcome.calibration
        print(
            f"  normalised with calibration run {c.run_id}: × {c.published_kwh:g} kWh published / "
            f"{c.measured_kwh:.4g} kWh measured here"
        )
    for note in outcome.notes:
        print(note)
    print(f"evaluation run {outcome.run_id} (nested under {source.training_run_id})")
    return 0
