"""`sedwatt calibrate`: the reference model's dev-test inference energy on this machine, for normalisation."""

from __future__ import annotations

import argparse

from sedwatt.cli.common import add_set_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="measure the reference model's dev-test inference energy on this hardware",
        description=(
            "Run the DCASE 2022 baseline architecture (seeded weights, or --checkpoint) through the same "
            "dev-test pass as `sedwatt evaluate` and record its energy in experiment sedwatt-calibration. "
            "Later evaluations on the same hardware (GPU and CPU model), charged by the same energy.attribution, "
            "log inference_energy_normalised_kwh "
            "= E x published / measured. For a DCASE-comparable figure, --data must hold the real DESED dev-test."
        ),
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="DESED-layout dataset root holding the dev-test set")
    parser.add_argument(
        "--published-kwh",
        type=float,
        default=None,
        metavar="KWH",
        help="published dev-test inference energy of the reference (default 0.030, the DCASE 2022 baseline)",
    )
    parser.add_argument("--repeats", type=int, default=1, metavar="N", help="measure N passes; log their mean and std")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="seed of the reference weights (default 2022)")
    parser.add_argument(
        "--checkpoint", default=None, metavar="FILE", help="upstream DESED_task checkpoint (student weights) instead of seeded ones"
    )
    add_set_flag(parser, "data.*, energy.*, train.device or train.val_batch_size (the model itself is fixed)")
    parser.add_argument("--run-name", default=None, help="MLflow run name of the calibration")
    parser.add_argument("--out", default=None, metavar="DIR", help="also keep each pass's files here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sedwatt.evaluation import DEFAULT_PUBLISHED_KWH, calibrate
    from sedwatt.evaluation.calibration import DEFAULT_SEED

    outcome = calibrate(
        args.data,
        published_kwh=DEFAULT_PUBLISHED_KWH if args.published_kwh is None else args.published_kwh,
        repeats=args.repeats,
        seed=DEFAULT_SEED if args.seed is None else args.seed,
        checkpoint=args.checkpoint,
        overrides=args.overrides,
        out=args.out,
        run_name=args.run_name,
    )
    c = outcome.calibration
    spread = f" ± {outcome.std_kwh:.3g}" if outcome.std_kwh is not None else ""
    gpu, cpu = c.fingerprint
    print(f"reference dev-test inference on {gpu} / {cpu}, {outcome.n_clips} clips: {c.measured_kwh:.6g}{spread} kWh")
    print(f"normalisation factor {c.factor:.4g} (published {c.published_kwh:g} kWh / measured)")
    print(f"calibration run {outcome.run_id}")
    return 0
