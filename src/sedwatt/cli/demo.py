"""`sedwatt demo` (what `make demo` runs): the whole chain on the embedded default, on a CPU.

generate the small DESED-like dataset → train the cpu_demo config through `mlflow run` → a small
Optuna search over batch size → the analysis report of those runs. Everything lands in the local
SQLite tracking store at the project root; the last lines say how to look at it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities import Run


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the whole chain on a CPU: data → train → search → analysis")
    parser.add_argument("--out", default="demo", help="folder for the dataset and the report (default: demo)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--experiment", default="sedwatt-demo")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the cpu_demo config's)")
    parser.add_argument("--search-trials", type=int, default=3)
    parser.add_argument("--search-epochs", type=int, default=8)
    parser.add_argument("--skip-search", action="store_true")
    parser.set_defaults(func=run)


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(args: argparse.Namespace) -> int:
    from sedwatt.cli import main as sedwatt
    from sedwatt.config import load_config
    from sedwatt.tracking import configure_tracking, ensure_experiment, project_home

    root = project_home()
    out = Path(args.out).resolve()
    data = out / "data"
    uri = configure_tracking()
    ensure_experiment(args.experiment)  # artifacts next to mlruns.db, not in the working directory
    # `mlflow run --env-manager local` runs `python …` from PATH: make that this interpreter
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": args.experiment}
    config = root / "configs" / "cpu_demo.yaml"
    demo_cfg = load_config(config)
    epochs = args.epochs or demo_cfg.train.epochs
    outputs = out / "outputs"  # checkpoints and energy CSVs of the demo's runs, next to its data and report

    _step(f"1/4 dataset: sedwatt make-data {data} --preset {args.preset} --clip-seconds {demo_cfg.data.clip_seconds:g}")
    if (data / "sedwatt_dataset.json").is_file():
        print(f"{data} exists; reusing it (delete it to regenerate)")
        from sedwatt.data.synth import summarize

        print(summarize(data))
    elif sedwatt(["make-data", str(data), "--preset", args.preset, "--seed", "1",
                  "--clip-seconds", str(demo_cfg.data.clip_seconds)]) != 0:  # fmt: skip
        return 2

    _step("2/4 training through the MLflow Project (mlflow run . -e main --env-manager local)")
    cmd = [
        sys.executable, "-m", "mlflow", "run", str(root), "-e", "main", "--env-manager", "local",
        "--experiment-name", args.experiment,
        "-P", f"config={config}", "-P", f"data={data}", "-P", f"epochs={epochs}",
        "-P", f"batch_size={demo_cfg.train.batch_size}", "-P", f"seed={demo_cfg.train.seed}",
        "-P", f"overrides=train.out_dir={shlex.quote(str(outputs))}",
    ]  # fmt: skip
    print(" ".join(cmd), flush=True)
    if subprocess.run(cmd, env=env).returncode != 0:
        print("sedwatt demo: the training run failed", file=sys.stderr)
        return 2
    trained = _latest_main_run(args.experiment)

    if not args.skip_search:
        _step(f"3/4 search: {args.search_trials} trials over batch size, {args.search_epochs} epochs each")
        storage = f"sqlite:///{out / 'optuna.db'}"
        code = sedwatt(
            ["search", "--config", str(config), "--data", str(data), "--n-trials", str(args.search_trials),
             "--epochs", str(args.search_epochs), "--storage", storage, "--study-name", "demo-batch-size",
             "--experiment", args.experiment, "--set", "tracking.registered_model_name=null",
             "--set", "tracking.log_model=false", "--set", f"train.out_dir={outputs}"]
        )  # fmt: skip
        if code != 0:
            return code

    _step("4/4 analysis of the demo's runs")
    report = out / "report"
    code = sedwatt(["analyze", "--experiment", args.experiment, "--out", str(report)])
    if code != 0:
        return code
    if trained is not None:
        m = trained.data.metrics
        print(
            f"training run: {trained.info.run_id}  best val_f1 {m.get('best_val_f1', float('nan')):.3f}"
            f"  energy {1000 * m.get('energy_total_kwh', float('nan')):.3f} Wh"
        )
    print(f"MLflow UI: mlflow ui --backend-store-uri {uri}   then open http://127.0.0.1:5000", end="")
    print(f"/#/experiments/{trained.info.experiment_id}/runs/{trained.info.run_id}" if trained is not None else "")
    return 0


def _latest_main_run(experiment: str) -> Run | None:
    """The run `mlflow run -e main` just made: the newest run of the experiment from the main entry point."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="tags.`mlflow.project.entryPoint` = 'main'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        return None
    run = runs[0]
    print(f"training run id: {run.info.run_id}", flush=True)
    return run
