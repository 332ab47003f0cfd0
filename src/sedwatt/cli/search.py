"""`sedwatt search`: a multi-objective Optuna study over batch size — F1 up, energy down.

Start the same command on several machines with one ``--storage postgresql+psycopg://...`` and they
work one study together; ``optuna-dashboard <storage>`` shows it live.
"""

from __future__ import annotations

import argparse

from sedwatt.cli.train import add_training_flags, training_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="multi-objective Optuna search over batch size (F1 up, energy down), one or many workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_training_flags(parser)
    parser.add_argument("--n-trials", type=int, required=True, metavar="N", help="trials the study should hold in total")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite optuna.db at the project root)")
    parser.add_argument("--study-name", default="sedwatt-batch-size")
    parser.add_argument("--space", default=None, metavar="SPACE.yaml", help="search space (default: batch size only)")
    parser.add_argument("--sampler", default="nsga2", choices=["nsga2", "tpe", "gp", "random"])
    parser.add_argument("--enqueue", action="store_true", help="start from the DCASE default batch size (48)")
    parser.add_argument("--f1-objective", default="best", choices=["best", "final"])
    parser.add_argument("--energy-objective", default="total", choices=["total", "to_best", "to_95"])
    parser.add_argument(
        "--energy-stop-beta",
        type=float,
        default=None,
        metavar="BETA",
        help="stop a trial once it spent BETA x the energy of a Pareto trial it cannot beat on F1 (default: off)",
    )
    parser.add_argument("--heartbeat-interval", type=int, default=60, metavar="S")
    parser.add_argument("--grace-period", type=int, default=180, metavar="S")
    parser.add_argument("--max-retry", type=int, default=2, help="re-runs of a trial whose worker died")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sedwatt.errors import SedwattError
    from sedwatt.search.report import pareto_frame
    from sedwatt.search.space import load_space
    from sedwatt.search.study import SearchSettings, default_storage, optuna_safe, run_worker

    if args.n_trials < 1:
        raise SedwattError(f"--n-trials {args.n_trials}: must be at least 1")
    settings = SearchSettings(
        config_path=args.config,
        overrides=training_overrides(args),
        data=Path(args.data),
        n_trials=args.n_trials,
        study_name=args.study_name,
        storage=args.storage or default_storage(),
        space=load_space(args.space),
        sampler=args.sampler,
        seed=args.seed if args.seed is not None else 42,
        enqueue_default=args.enqueue,
        f1_objective=args.f1_objective,
        energy_objective=args.energy_objective,
        energy_stop_beta=args.energy_stop_beta,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        max_retry=args.max_retry,
    )
    study = run_worker(settings)
    frame = pareto_frame(study)
    front = frame[frame.pareto].sort_values("energy_kwh")
    print(f"study {study.study_name} ({optuna_safe(settings.storage)}): {len(frame)} trials, Pareto front:")
    for _, row in front.iterrows():
        params = ", ".join(f"{k.removeprefix('param_')}={row[k]}" for k in frame.columns if k.startswith("param_"))
        print(f"  trial {row.trial:>3}  {params}  F1 {row.val_f1:.3f}  energy {row.energy_kwh * 1000:.3f} Wh")
    print(f"dashboard: optuna-dashboard {optuna_safe(settings.storage)}")
    return 0
