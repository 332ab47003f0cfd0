"""`sedwatt demo` (what `make demo` runs), shrunk: tiny preset, 1 epoch, 1 search trial at batch 48.

The whole chain for real — make-data, `mlflow run . -e main` in a subprocess, an Optuna study whose
trial is the queued batch size, the analysis — checking what the newcomer is promised: the training run's
id (a finished run of the main entry point), runs that differ only in batch size (same epochs: one cohort),
the table of the demo's runs and the time of each part, the address that opens the run in the UI's
training view, the HTML report of the demo's own runs, and the printed `make … ui` / `make … dashboard`
commands: exactly what ``ui_command`` / ``dashboard_command`` give, which test_newcomer.py starts as printed
(from another folder, without the venv) and gets answers from on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest

from sedwatt.cli.demo import (
    DEMO_EPOCHS,
    QUICK_EPOCHS,
    SEARCH_BATCH_SIZES,
    DemoPlan,
    dashboard_command,
    plan_from_args,
    ui_command,
)
from sedwatt.errors import SedwattError
from sedwatt.tracking.uri import project_root
from servers import free_port


@pytest.mark.slow
def test_demo_chain_prints_run_id_ui_and_report(tmp_path, fresh_store):
    uri = fresh_store(tmp_path)
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    out = tmp_path / "demo"
    ui_port, dashboard_port = free_port(), free_port()
    cmd = [
        str(bindir / "sedwatt"), "demo", "--out", str(out), "--preset", "tiny", "--experiment", "demo-test",
        "--epochs", "1", "--trials", "1",
        "--ui-port", str(ui_port), "--dashboard-port", str(dashboard_port),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    printed = re.search(r"^training run id: ([0-9a-f]{32})$", done.stdout, re.MULTILINE)
    assert printed, done.stdout[-2000:]
    run_id = printed.group(1)
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    assert [m.step for m in client.get_metric_history(run_id, "val_f1")] == [1]
    assert "cpu_demo at batch size 16, 48, 1 epochs each" in done.stdout
    base = f"http://127.0.0.1:{ui_port}"
    assert f"{base}/#/experiments/{run.info.experiment_id}/runs/{run_id}/model-metrics?workflowType=machine_learning" in done.stdout
    assert "val_f1" in done.stdout and "energy_cum_kwh" in done.stdout  # where F1 and energy are in the UI
    assert f"mlflow ui --backend-store-uri {uri}" in done.stdout

    experiment = client.get_experiment_by_name("demo-test")
    trials = client.search_runs([experiment.experiment_id], "tags.`optuna.trial_number` = '0'")
    assert len(trials) == 1 and trials[0].data.tags.get("mlflow.parentRunId")
    trial = trials[0]
    # the queued batch size, the training run's epoch budget: the two runs are comparable
    assert trial.data.params["batch_size"] == "48" and run.data.params["batch_size"] == "16"
    assert trial.data.params["train.epochs"] == run.data.params["train.epochs"] == "1"
    assert [m.step for m in client.get_metric_history(trial.info.run_id, "val_f1")] == [1]
    assert "cohorts of comparable runs" not in done.stdout  # the analysis found one cohort
    table = done.stdout[done.stdout.index("== the demo's runs"):]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:4]}
    assert rows["16"][1] == "1" and rows["16"][-1] == run_id
    assert rows["48"][1] == "1" and rows["48"][-1] == trial.info.run_id
    timing = re.search(r"^time: dataset .* · training run \(batch 16\) .* · search \(1 trials\) .* · analysis .* · total .*$",
                       done.stdout, re.MULTILINE)  # fmt: skip
    assert timing, done.stdout[-2000:]
    report = out / "report" / "report.html"
    assert report.is_file() and f"report: {report}" in done.stdout
    assert (out / "outputs" / run_id / "checkpoints" / "last.pt").is_file()  # the demo keeps its files together
    runs_csv = (out / "report" / "runs.csv").read_text()
    assert run_id in runs_csv and trial.info.run_id in runs_csv
    parent = trials[0].data.tags["mlflow.parentRunId"]
    assert f"/runs/{parent}/artifacts/study/pareto_front.png?workflowType=machine_learning" in done.stdout

    # The printed commands are ui_command's and dashboard_command's for this store, study folder, ports and
    # folder (test_newcomer.py starts those as printed); they serve the store holding the run, and the
    # storage holding the study.
    root = project_root()
    assert root is not None, "this test runs from the checkout"
    ui = ui_command(root, uri, port=ui_port, cwd=tmp_path)
    dashboard = dashboard_command(root, out, port=dashboard_port, cwd=tmp_path)
    assert ui is not None and ui.url == base
    lines = done.stdout.splitlines()
    for printed in (ui, dashboard):
        assert printed.make.startswith("make -C "), printed
        assert f"  {printed.make}" in lines, done.stdout[-3000:]
        assert f"  or, without make: {printed.direct}" in lines, done.stdout[-3000:]
    assert "demo-batch-size-1ep-48" in optuna.get_all_study_names(f"sqlite:///{out.resolve() / 'optuna.db'}")


def plan(*argv: str) -> DemoPlan:
    from sedwatt.cli import build_parser

    return plan_from_args(build_parser().parse_args(["demo", *argv]), main_batch=16)


def test_demo_plan_from_flags():
    assert plan() == DemoPlan(DEMO_EPOCHS, 16, SEARCH_BATCH_SIZES)
    assert plan("--quick") == DemoPlan(QUICK_EPOCHS, 16, SEARCH_BATCH_SIZES[:1])
    assert plan("--quick", "--epochs", "3", "--trials", "2") == DemoPlan(3, 16, SEARCH_BATCH_SIZES[:2])
    assert plan("--batch-sizes", "48,32,8") == DemoPlan(DEMO_EPOCHS, 16, (48, 32, 8))
    assert plan("--batch-sizes", "8,64", "--trials", "1") == DemoPlan(DEMO_EPOCHS, 16, (8,))
    assert plan("--skip-search").search_batches == ()
    # a study per plan: a re-run finds its own finished trials, never another epoch budget's
    assert plan().study_name != plan("--epochs", "3").study_name != plan("--epochs", "3", "--trials", "1").study_name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--epochs", "0"), "--epochs 0: must be at least 1"),
        (("--batch-sizes", "8,x"), "--batch-sizes '8,x': expected integers"),
        (("--batch-sizes", "8,30"), "--batch-sizes: 30 cannot be split"),
        (("--batch-sizes", "8,16"), "not 16 (the training run's)"),
        (("--batch-sizes", "8,8"), "each size once"),
        (("--trials", "9"), f"--trials 9: between 0 and {len(SEARCH_BATCH_SIZES)}"),
    ],
)
def test_demo_refuses_bad_flags_in_one_line(argv, message):
    with pytest.raises(SedwattError) as raised:
        plan(*argv)
    assert message in str(raised.value) and "\n" not in str(raised.value)
