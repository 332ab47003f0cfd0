"""MLproject entry point `search`: one Optuna worker; the project's run becomes the study's parent run.

``mlflow run`` passes every declared parameter, empty strings included (``--storage ''``: no
``--storage`` for the CLI, so SEDWATT_OPTUNA_STORAGE, else the default store, is used; a URL with a
password belongs there, not in ``-P storage=``, which ``ps`` and the run's params would show). A parameter the MLproject does not declare arrives as ``--name value``; those are
passed on to ``sedwatt search`` with underscores as dashes, so ``-P energy_stop_beta=1.5``,
``-P heartbeat_interval=10`` or ``-P enqueue=true`` reach the CLI flags of the same names.
"""

import argparse

from _entry import run_cli, set_flags

SWITCHES = {"enqueue"}  # CLI flags without a value: -P enqueue=true/false

parser = argparse.ArgumentParser()
for flag in ("--config", "--data", "--storage", "--study-name", "--sampler", "--space", "--overrides"):
    parser.add_argument(flag, default="")
for flag in ("--n-trials", "--epochs", "--seed"):
    parser.add_argument(flag, type=int, required=True)
args, extra = parser.parse_known_args()


def passed_on(tokens: list[str]) -> list[str]:
    out: list[str] = []
    it = iter(tokens)
    for token in it:
        if not token.startswith("--"):
            raise SystemExit(f"search entry point: unexpected argument {token!r}")
        name = token[2:].replace("_", "-")
        value = next(it, "")
        if name in SWITCHES:
            if value.lower() in ("1", "true", "yes"):
                out.append(f"--{name}")
        else:
            out += [f"--{name}", value]
    return out


argv = ["search", "--data", args.data, "--n-trials", str(args.n_trials), "--epochs", str(args.epochs),
        "--seed", str(args.seed)]  # fmt: skip
for flag, value in (("--config", args.config), ("--storage", args.storage), ("--study-name", args.study_name),
                    ("--sampler", args.sampler), ("--space", args.space)):  # fmt: skip
    if value:
        argv += [flag, value]
run_cli(argv + passed_on(extra) + set_flags(args.overrides))
