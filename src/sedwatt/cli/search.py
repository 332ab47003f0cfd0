"""`sedwatt search`: a multi-objective Optuna study over batch size — F1 up, energy down.

Every trial is an ordinary training run (same flags as `sedwatt train`, applied to all trials),
nested under one parent MLflow run per study that holds the Pareto front. Start the same command on
several machines with one ``--storage postgresql+psycopg://user:pass@host/db`` (and one
MLFLOW_TRACKING_URI) and they work one study together; a killed worker's trial is retried by
another. ``optuna-dashboard <storage>`` shows the study live.

The storage URL can also come from SEDWATT_OPTUNA_STORAGE (``--storage`` wins over it, it wins over
the default SQLite file): a password on the command line is visible to every user of the machine
through ``ps``, one in the environment is not.
"""

from __future__ import annotations

import argparse

from sedwatt.cli.train import add_training_flags, training_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    from sedwatt.search.objectives import ENERGY_OBJECTIVES, F1_OBJECTIVES  # light: typing only

    parser = subparsers.add_parser(
        "search",
        help="multi-objective Optuna search over batch size (F1 up, energy down), one or many workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_training_flags(parser)
    study = parser.add_argument_group("study")
    study.add_argument("--n-trials", type=int, required=True, metavar="N", help="complete trials the study should hold in total")
    study.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna storage (default: $SEDWATT_OPTUNA_STORAGE, else sqlite optuna.db at the project root)",
    )
    study.add_argument("--study-name", default="sedwatt-batch-size", metavar="NAME")
    study.add_argument("--space", default=None, metavar="SPACE.yaml", help="search space (default: batch size in 4..64)")
    study.add_argument("--sampler", default="nsga2", choices=("nsga2", "tpe", "gp", "random"), help="default nsga2; seeded with --seed (42)")
    study.add_argument("--enqueue", action="store_true", help="make the DCASE default batch size (48) the first trial")
    study.add_argument("--f1-objective", default="best", choices=F1_OBJECTIVES, help="best per-epoch val_f1, or the final one")
    study.add_argument(
        "--energy-objective",
        default="total",
        choices=ENERGY_OBJECTIVES,
        help="total training energy, energy to the best epoch, or to 95 %% of the best F1",
    )
    study.add_argument(
        "--energy-stop-beta",
        type=float,
        default=None,
        metavar="BETA",
        help="stop a trial once it spent BETA x the energy of a Pareto trial it cannot plausibly beat on F1 (default: off)",
    )
    workers = parser.add_argument_group("workers")
    workers.add_argument("--heartbeat-interval", type=int, default=60, metavar="S", help="seconds between a trial's heartbeats")
    workers.add_argument(
        "--grace-period", type=int, default=180, metavar="S", help="a trial without heartbeat for S seconds is failed and retried"
    )
    workers.add_argument("--max-retry", type=int, default=2, metavar="K", help="re-runs of a trial whose worker died")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sedwatt.cli.demo import venv_tool
    from sedwatt.errors import SedwattError
    from sedwatt.search.report import objective_columns, pareto_frame
    from sedwatt.search.space import load_space
    from sedwatt.search.storage import safe_url
    from sedwatt.search.study import SearchSettings, resolve_storage, run_worker

    if args.n_trials < 1:
        raise SedwattError(f"--n-trials {args.n_trials}: must be at least 1")
    if args.energy_stop_beta is not None and args.energy_stop_beta <= 0:
        raise SedwattError(f"--energy-stop-beta {args.energy_stop_beta:g}: must be positive (1.0 or more to stop only dominated trials)")
    if args.max_retry < 0:
        raise SedwattError(f"--max-retry {args.max_retry}: must be 0 or more")
    settings = SearchSettings(
        config_path=args.config,
        overrides=training_overrides(args),
        data=Path(args.data),
        n_trials=args.n_trials,
        study_name=args.study_name,
        storage=resolve_storage(args.storage),
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
    f1, kwh = objective_columns(frame)
    front = frame[frame.pareto].sort_values(kwh)
    print(f"study {study.study_name} ({safe_url(settings.storage)}): {len(frame)} complete trials, Pareto front:")
    for _, row in front.iterrows():
        params = ", ".join(f"{k.removeprefix('param_')}={row[k]}" for k in frame.columns if k.startswith("param_"))
        print(f"  trial {row.trial:>3}  {params}  {f1} {row[f1]:.3f}  {kwh} {row[kwh] * 1000:.4g} Wh")
    print(f"dashboard: {venv_tool('optuna-dashboard')} {safe_url(settings.storage)}")
    return 0

