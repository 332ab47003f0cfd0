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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sedwatt.tracking.links import DEFAULT_UI_PORT

if TYPE_CHECKING:
    from mlflow.entities import Run

DEFAULT_DASHBOARD_PORT = 8080  # optuna-dashboard's own default, and the Makefile's DASHBOARD_PORT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the whole chain on a CPU: data → train → search → analysis")
    parser.add_argument("--out", default="demo", help="folder for the dataset and the report (default: demo)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--experiment", default="sedwatt-demo")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the cpu_demo config's)")
    parser.add_argument("--search-trials", type=int, default=3)
    parser.add_argument("--search-epochs", type=int, default=8)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--ui-port", type=int, default=DEFAULT_UI_PORT,
                        help="port in the printed MLflow UI command and links (default: 5000, as `make ui`)")
    parser.add_argument("--dashboard-port", type=int, default=DEFAULT_DASHBOARD_PORT,
                        help="port in the printed Optuna dashboard command (default: 8080, as `make dashboard`)")
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
    parent = None if args.skip_search else _search_parent(out / "optuna.db", "demo-batch-size")
    for line in where_to_look(root, uri, out, trained, parent, ui_port=args.ui_port, dashboard_port=args.dashboard_port,
                              with_search=not args.skip_search):  # fmt: skip
        print(line)
    return 0


@dataclass(frozen=True)
class ViewCommand:
    """A server the demo tells the reader to start: the make form, the same without make, and its address."""

    make: str | None  # None outside a checkout (no Makefile)
    direct: str
    url: str


def _make_prefix(root: Path, cwd: Path) -> str | None:
    if not (root / "Makefile").is_file():
        return None
    return "make" if cwd.resolve() == root.resolve() else f"make -C {shlex.quote(str(root))}"


def _tool(name: str, module: str) -> str:
    """The venv's console script by its full path (the venv is never activated), else ``python -m``."""
    script = Path(sys.executable).parent / name
    return shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m {module}"


def ui_command(root: Path, uri: str, port: int = DEFAULT_UI_PORT, cwd: Path | None = None) -> ViewCommand | None:
    """``make ui`` (and the full ``mlflow ui`` line) serving ``uri``; None when ``uri`` is a server (it is the UI)."""
    from sedwatt.tracking.links import ui_base
    from sedwatt.tracking.uri import default_tracking_uri

    if uri.startswith(("http://", "https://")):
        return None
    make = _make_prefix(root, cwd or Path.cwd())
    if make is not None:
        make += " ui"
        if port != DEFAULT_UI_PORT:
            make += f" UI_PORT={port}"
        if uri != default_tracking_uri():
            make += f" MLFLOW_TRACKING_URI={shlex.quote(uri)}"
    direct = f"{_tool('mlflow', 'mlflow')} ui --backend-store-uri {shlex.quote(uri)} --host 127.0.0.1 --port {port}"
    return ViewCommand(make, direct, ui_base(uri, port))


def dashboard_command(root: Path, out: Path, port: int = DEFAULT_DASHBOARD_PORT, cwd: Path | None = None) -> ViewCommand:
    """``make dashboard`` (and the full ``optuna-dashboard`` line) on the demo's study ``<out>/optuna.db``."""
    make = _make_prefix(root, cwd or Path.cwd())
    if make is not None:
        make += " dashboard"
        if port != DEFAULT_DASHBOARD_PORT:
            make += f" DASHBOARD_PORT={port}"
        if out.resolve() != (root / "demo").resolve():
            make += f" DEMO_DIR={shlex.quote(str(out))}"
    storage = f"sqlite:///{out.resolve() / 'optuna.db'}"
    direct = f"{_tool('optuna-dashboard', 'optuna_dashboard')} {shlex.quote(storage)} --host 127.0.0.1 --port {port}"
    return ViewCommand(make, direct, f"http://127.0.0.1:{port}/dashboard/")


def where_to_look(
    root: Path,
    uri: str,
    out: Path,
    trained: Run | None,
    search_parent: Run | None,
    ui_port: int = DEFAULT_UI_PORT,
    dashboard_port: int = DEFAULT_DASHBOARD_PORT,
    with_search: bool = True,
) -> list[str]:
    """The demo's closing lines: commands that run as typed (nothing assumes an activated venv) and the links."""
    from sedwatt.tracking.links import artifact_url, experiment_url, run_url, ui_base

    lines = ["", "== where to look"]
    ui = ui_command(root, uri, ui_port)
    if ui is not None:
        lines.append("Start the MLflow UI (Ctrl-C stops it):")
        lines += [f"  {ui.make}", f"  or, without make: {ui.direct}"] if ui.make else [f"  {ui.direct}"]
    base = ui.url if ui is not None else ui_base(uri, ui_port)
    lines.append("then open:" if ui is not None else f"open, on the tracking server {base}:")
    if trained is not None:
        lines += [
            "  the training run's Model metrics tab: val_f1 (intersection F1 per epoch), energy_cum_kwh (kWh so far)",
            f"    {run_url(base, trained.info.experiment_id, trained.info.run_id, tab='model-metrics')}",
            "  all the demo's runs (the search's trials are nested under its study run):",
            f"    {experiment_url(base, trained.info.experiment_id)}",
        ]
    if search_parent is not None:
        lines += [
            "  the search's Pareto front, F1 vs energy (study/ in the study run's Artifacts tab):",
            f"    {artifact_url(base, search_parent.info.experiment_id, search_parent.info.run_id, 'study/pareto_front.png')}",
        ]
    if with_search:
        dash = dashboard_command(root, out, dashboard_port)
        lines.append(f"Start the Optuna dashboard of the search (Ctrl-C stops it), then open {dash.url}:")
        lines += [f"  {dash.make}", f"  or, without make: {dash.direct}"] if dash.make else [f"  {dash.direct}"]
    activate = Path(sys.executable).parent / "activate"
    if activate.is_file():  # a venv nobody activated: the README's commands need it on PATH
        lines.append(f"the README's other commands (sedwatt, mlflow, optuna-dashboard): `source {activate}` first")
    return lines


def _search_parent(optuna_db: Path, study_name: str) -> Run | None:
    """The study's parent MLflow run (it holds the Pareto front), or None if the study or run is missing."""
    import mlflow
    import optuna
    from mlflow.exceptions import MlflowException

    from sedwatt.search.runs import PARENT_ATTR

    if not optuna_db.is_file():
        return None
    try:
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{optuna_db}")
    except KeyError:
        return None
    run_id = study.user_attrs.get(PARENT_ATTR)
    if not run_id:
        return None
    try:
        return mlflow.MlflowClient().get_run(run_id)
    except MlflowException:
        return None


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
