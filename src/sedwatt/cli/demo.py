"""`sedwatt demo` (what `make demo` runs): the paper's point in small, on a CPU.

generate the small DESED-like dataset → train the cpu_demo config (batch 16) through `mlflow run` →
an Optuna study whose trials train the same config at other batch sizes (48, 32) → the analysis
report of those runs. Every run gets the same epoch budget and differs only in batch size, so the
analysis sees one cohort of comparable runs and the F1-vs-energy trade-off between batch sizes is the
only thing it shows. Everything lands in the local SQLite tracking store at the project root; the
last lines give each run's F1, energy and time, how long each part took, and how to look at it.

The default, 20 epochs at batch 16, 48 and 32, is what fits the install and the demo in 15 minutes on
a 2-core CPU with some margin, with F1 that means something at batch 16 (val_f1 ~0.39 at epoch 20;
README, "Measured"); ``--quick`` is the short version.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sedwatt.errors import SedwattError
from sedwatt.tracking.links import DEFAULT_UI_PORT

if TYPE_CHECKING:
    from mlflow.entities import Run

DEFAULT_DASHBOARD_PORT = 8080  # optuna-dashboard's own default, and the Makefile's DASHBOARD_PORT
DEMO_EPOCHS = 20  # every run's budget: batch 16 reaches val_f1 ~0.39 by then (README, "Measured")
# --trials K takes the first K. Batch 8 (`--batch-sizes 48,32,8`) adds ~4.5 min on 2 cores: 58 steps an epoch.
SEARCH_BATCH_SIZES = (48, 32)
QUICK_EPOCHS = 10
QUICK_TRIALS = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="the paper's point in small on a CPU: data → runs at a few batch sizes, same epochs → analysis"
    )
    parser.add_argument("--out", default="demo", help="folder for the dataset and the report (default: demo)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--experiment", default="sedwatt-demo")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help=f"every run's epochs, the training run's and each trial's (default {DEMO_EPOCHS}; "
                             f"--quick: {QUICK_EPOCHS})")  # fmt: skip
    parser.add_argument("--batch-sizes", default=",".join(map(str, SEARCH_BATCH_SIZES)), metavar="B,B,...",
                        help="the search trials' batch sizes, besides the training run's 16 (default: "
                             f"{','.join(map(str, SEARCH_BATCH_SIZES))}; multiples of 4)")  # fmt: skip
    parser.add_argument("--trials", type=int, default=None, metavar="K",
                        help=f"train the first K of --batch-sizes (default: all; --quick: {QUICK_TRIALS})")
    parser.add_argument("--quick", action="store_true",
                        help=f"the short version: {QUICK_EPOCHS} epochs, {QUICK_TRIALS} trial (--epochs/--trials win)")
    parser.add_argument("--skip-search", action="store_true", help="the training run and its analysis only")
    parser.add_argument("--ui-port", type=int, default=DEFAULT_UI_PORT,
                        help="port in the printed MLflow UI command and links (default: 5000, as `make ui`)")
    parser.add_argument("--dashboard-port", type=int, default=DEFAULT_DASHBOARD_PORT,
                        help="port in the printed Optuna dashboard command (default: 8080, as `make dashboard`)")
    parser.set_defaults(func=run)


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


@dataclass(frozen=True)
class DemoPlan:
    """What one demo trains: every run ``epochs`` long; the training run at ``main_batch``, trials at ``search_batches``."""

    epochs: int
    main_batch: int
    search_batches: tuple[int, ...]

    @property
    def study_name(self) -> str:
        """One study per plan: a re-run of the same plan finds its finished trials, another plan starts afresh."""
        return f"demo-batch-size-{self.epochs}ep-{'-'.join(map(str, self.search_batches))}"


def plan_from_args(args: argparse.Namespace, main_batch: int) -> DemoPlan:
    """The demo's runs from its flags; a bad flag is one line naming it."""
    epochs = args.epochs if args.epochs is not None else QUICK_EPOCHS if args.quick else DEMO_EPOCHS
    if epochs < 1:
        raise SedwattError(f"--epochs {epochs}: must be at least 1")
    try:
        sizes = tuple(int(item) for item in str(args.batch_sizes).split(",") if item.strip())
    except ValueError:
        raise SedwattError(f"--batch-sizes {args.batch_sizes!r}: expected integers separated by commas, e.g. 8,32,48") from None
    bad = [b for b in sizes if b < 4 or b % 4]
    if bad:
        raise SedwattError(f"--batch-sizes: {bad[0]} cannot be split 1/4 + 1/4 + 1/2 (needs a multiple of 4)")
    if main_batch in sizes or len(set(sizes)) != len(sizes):
        raise SedwattError(f"--batch-sizes {args.batch_sizes}: each size once, and not {main_batch} (the training run's)")
    trials = 0 if args.skip_search else args.trials if args.trials is not None else QUICK_TRIALS if args.quick else len(sizes)
    if not 0 <= trials <= len(sizes):
        raise SedwattError(f"--trials {trials}: between 0 and {len(sizes)} (the number of --batch-sizes)")
    return DemoPlan(epochs, main_batch, sizes[:trials])


def minutes(seconds: float) -> str:
    """42 s, 3 min 05 s."""
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


def run(args: argparse.Namespace) -> int:
    from sedwatt import threads
    from sedwatt.cli import main as sedwatt
    from sedwatt.config import load_config
    from sedwatt.tracking import configure_tracking, ensure_experiment, project_home

    started = time.monotonic()
    timings: list[tuple[str, float]] = []
    root = project_home()
    out = Path(args.out).resolve()
    data = out / "data"
    config = root / "configs" / "cpu_demo.yaml"
    demo_cfg = load_config(config)
    plan = plan_from_args(args, demo_cfg.train.batch_size)
    uri = configure_tracking()
    ensure_experiment(args.experiment)  # artifacts next to mlruns.db, not in the working directory
    # `mlflow run --env-manager local` runs `python …` from PATH: make that this interpreter
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": args.experiment}
    if threads.chosen_by_sedwatt():  # the training run chooses its own wait policy, for the load when it starts
        env.pop("OMP_WAIT_POLICY", None)
    outputs = out / "outputs"  # checkpoints and energy CSVs of the demo's runs, next to its data and report
    sizes = ", ".join(map(str, (plan.main_batch, *plan.search_batches)))
    print(f"sedwatt demo: cpu_demo at batch size {sizes}, {plan.epochs} epochs each (the same config otherwise)")

    _step(f"1/4 dataset: sedwatt make-data {data} --preset {args.preset} --clip-seconds {demo_cfg.data.clip_seconds:g}")
    part = time.monotonic()
    if (data / "sedwatt_dataset.json").is_file():
        print(f"{data} exists; reusing it (delete it to regenerate)")
        from sedwatt.data.synth import summarize

        print(summarize(data))
    elif sedwatt(["make-data", str(data), "--preset", args.preset, "--seed", "1",
                  "--clip-seconds", str(demo_cfg.data.clip_seconds)]) != 0:  # fmt: skip
        return 2
    timings.append(("dataset", time.monotonic() - part))

    _step(f"2/4 training run, batch size {plan.main_batch}, {plan.epochs} epochs, through the MLflow Project "
          "(mlflow run . -e main --env-manager local)")  # fmt: skip
    part = time.monotonic()
    cmd = [
        sys.executable, "-m", "mlflow", "run", str(root), "-e", "main", "--env-manager", "local",
        "--experiment-name", args.experiment,
        "-P", f"config={config}", "-P", f"data={data}", "-P", f"epochs={plan.epochs}",
        "-P", f"batch_size={plan.main_batch}", "-P", f"seed={demo_cfg.train.seed}",
        "-P", f"overrides=train.out_dir={shlex.quote(str(outputs))}",
    ]  # fmt: skip
    print(" ".join(cmd), flush=True)
    if subprocess.run(cmd, env=env).returncode != 0:
        print("sedwatt demo: the training run failed", file=sys.stderr)
        return 2
    trained = _latest_main_run(args.experiment)
    timings.append((f"training run (batch {plan.main_batch})", time.monotonic() - part))

    optuna_db = out / "optuna.db"
    if plan.search_batches:
        _step(f"3/4 search: {len(plan.search_batches)} trial(s) at batch size "
              f"{', '.join(map(str, plan.search_batches))}, {plan.epochs} epochs each (study {plan.study_name})")  # fmt: skip
        part = time.monotonic()
        storage = f"sqlite:///{optuna_db}"
        space = out / "search_space.yaml"
        space.parent.mkdir(parents=True, exist_ok=True)
        space.write_text(f"batch_size: [{', '.join(map(str, plan.search_batches))}]\n")
        queue_batch_sizes(storage, plan.study_name, plan.search_batches)
        code = sedwatt(
            ["search", "--config", str(config), "--data", str(data), "--n-trials", str(len(plan.search_batches)),
             "--epochs", str(plan.epochs), "--space", str(space), "--storage", storage,
             "--study-name", plan.study_name, "--experiment", args.experiment,
             "--set", "tracking.registered_model_name=null", "--set", "tracking.log_model=false",
             "--set", f"train.out_dir={outputs}"]
        )  # fmt: skip
        if code != 0:
            return code
        timings.append((f"search ({len(plan.search_batches)} trials)", time.monotonic() - part))

    _step(f"4/4 analysis of the demo's {plan.epochs}-epoch runs")
    part = time.monotonic()
    report = out / "report"
    code = sedwatt(["analyze", "--experiment", args.experiment, "--filter", epochs_filter(plan.epochs),
                    "--out", str(report)])  # fmt: skip
    if code != 0:
        return code
    timings.append(("analysis", time.monotonic() - part))

    parent = _search_parent(optuna_db, plan.study_name) if plan.search_batches else None
    demo_runs = [trained] if trained is not None else []
    demo_runs += _trial_runs(optuna_db, plan.study_name) if plan.search_batches else []
    for line in runs_table(demo_runs):
        print(line)
    timings.append(("total", time.monotonic() - started))
    print("time: " + " · ".join(f"{name} {minutes(seconds)}" for name, seconds in timings))
    for line in where_to_look(root, uri, out, trained, parent, ui_port=args.ui_port, dashboard_port=args.dashboard_port,
                              with_search=bool(plan.search_batches), study_name=plan.study_name):  # fmt: skip
        print(line)
    return 0


def epochs_filter(epochs: int) -> str:
    """The analysis' MLflow filter: runs of this epoch budget (an earlier demo with another is another cohort)."""
    return f"params.`train.epochs` = '{epochs}'"


def queue_batch_sizes(storage_url: str, study_name: str, sizes: tuple[int, ...]) -> None:
    """Create the study with one queued trial per batch size, so that each size is trained exactly once.

    A sampler draws batch sizes at random at first, and 3 draws from 3 sizes repeat one 7 times in 9.
    `sedwatt search` then joins the study (it gives it its parent run) and trains the queued trials in order.
    A study that already has trials (a re-run of the same demo) is left as it is.
    """
    import optuna

    from sedwatt.search.objectives import objective_names
    from sedwatt.search.storage import open_storage, quiet_optuna_warnings
    from sedwatt.search.study import DIRECTIONS

    storage = open_storage(storage_url, heartbeat_interval=60, grace_period=180, max_retry=2)
    with quiet_optuna_warnings():
        study = optuna.create_study(study_name=study_name, storage=storage, directions=list(DIRECTIONS),
                                    load_if_exists=True)  # fmt: skip
        if study.trials:
            return
        study.set_metric_names(list(objective_names()))
        for size in sizes:
            study.enqueue_trial({"batch_size": size}, skip_if_exists=True)


def _trial_runs(optuna_db: Path, study_name: str) -> list[Run]:
    """The MLflow runs of the study's complete trials, in trial order."""
    import mlflow
    import optuna
    from mlflow.exceptions import MlflowException

    from sedwatt.search.runs import RUN_ATTR

    try:
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{optuna_db}")
    except KeyError:
        return []
    runs = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        run_id = trial.user_attrs.get(RUN_ATTR)
        if not run_id:
            continue
        try:
            runs.append(mlflow.MlflowClient().get_run(run_id))
        except MlflowException:
            continue
    return runs


def runs_table(runs: list[Run]) -> list[str]:
    """The demo's runs side by side: batch size, epochs, max val_f1, training energy and time (from MLflow)."""
    from sedwatt import names

    if not runs:
        return []
    lines = ["", "== the demo's runs (same config and epochs; only the batch size differs)",
             f"{'batch':>5}  {'epochs':>6}  {'max val_f1':>10}  {'energy (Wh)':>11}  {'time':>12}  run"]  # fmt: skip
    for r in sorted(runs, key=lambda r: int(r.data.params.get("batch_size", 0))):
        m = names.with_current_names(r.data.metrics)
        f1 = m.get(names.MAX_VAL_F1, float("nan"))
        wh = 1000 * m.get(names.ENERGY_TOTAL_KWH, float("nan"))
        seconds = m.get(names.CUM_TIME_S)
        shown = minutes(seconds) if seconds is not None else "?"
        lines.append(f"{r.data.params.get('batch_size', '?'):>5}  {r.data.params.get('train.epochs', '?'):>6}  "
                     f"{f1:>10.3f}  {wh:>11.3f}  {shown:>12}  {r.info.run_id}")  # fmt: skip
    lines.append("(max val_f1: teacher intersection F1 at 0.7/0.7, the best epoch's; energy: CodeCarbon, this job's "
                 "share; time: training and validation)")  # fmt: skip
    return lines


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


def venv_tool(name: str, module: str | None = None) -> str:
    """A console script as it runs from here: the venv's by its full path (the venv is never activated),
    else ``python -m module`` when the tool has one, else the bare name (found on PATH)."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m {module}" if module else name


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
    direct = f"{venv_tool('mlflow', 'mlflow')} ui --backend-store-uri {shlex.quote(uri)} --host 127.0.0.1 --port {port}"
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
    direct = f"{venv_tool('optuna-dashboard')} {shlex.quote(storage)} --host 127.0.0.1 --port {port}"
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
    study_name: str | None = None,
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
            "  the search's Pareto front, F1 vs energy of its trials (study/ in the study run's Artifacts tab):",
            f"    {artifact_url(base, search_parent.info.experiment_id, search_parent.info.run_id, 'study/pareto_front.png')}",
        ]
    report = out / "report" / "report.html"
    lines.append(f"the analysis of all the demo's runs (tables, Pareto front, findings): {report}")
    if with_search:
        dash = dashboard_command(root, out, dashboard_port)
        which = f" on study {study_name}" if study_name else " of the search"
        lines.append(f"Start the Optuna dashboard{which} (Ctrl-C stops it), then open {dash.url}:")
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
