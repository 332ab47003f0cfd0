"""`sedwatt demo` (what `make demo` runs), shrunk: tiny preset, 1 epoch, 1 one-epoch search trial.

The whole chain for real — make-data, `mlflow run . -e main` in a subprocess, an Optuna study, the
analysis — checking what the newcomer is promised: the training run's id (a finished run of the main
entry point), the address that opens it in the UI's training view, the HTML report of the demo's own runs,
and the printed `make … ui` / `make … dashboard` commands, started as printed, answering on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pytest

from servers import free_port
from test_newcomer import started


@pytest.mark.slow
def test_demo_chain_prints_run_id_ui_and_report(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
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
        "--epochs", "1", "--search-trials", "1", "--search-epochs", "1",
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
    base = f"http://127.0.0.1:{ui_port}"
    assert f"{base}/#/experiments/{run.info.experiment_id}/runs/{run_id}/model-metrics?workflowType=machine_learning" in done.stdout
    assert "val_f1" in done.stdout and "energy_cum_kwh" in done.stdout  # where F1 and energy are in the UI
    assert f"mlflow ui --backend-store-uri {uri}" in done.stdout

    experiment = client.get_experiment_by_name("demo-test")
    trials = client.search_runs([experiment.experiment_id], "tags.`optuna.trial_number` = '0'")
    assert len(trials) == 1 and trials[0].data.tags.get("mlflow.parentRunId")
    report = out / "report" / "report.html"
    assert report.is_file() and f"report: {report}" in done.stdout
    assert (out / "outputs" / run_id / "checkpoints" / "last.pt").is_file()  # the demo keeps its files together
    runs_csv = (out / "report" / "runs.csv").read_text()
    assert run_id in runs_csv and trials[0].info.run_id in runs_csv
    parent = trials[0].data.tags["mlflow.parentRunId"]
    assert f"/runs/{parent}/artifacts/study/pareto_front.png?workflowType=machine_learning" in done.stdout

    # the printed commands, exactly as printed, from another folder and without the venv on PATH
    ui = re.search(r"^  (make -C .* ui .*)$", done.stdout, re.MULTILINE)
    dashboard = re.search(r"^  (make -C .* dashboard .*)$", done.stdout, re.MULTILINE)
    assert ui and dashboard, done.stdout[-3000:]
    with started(ui.group(1), tmp_path, base):
        answer = urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=10)  # noqa: S310
        assert answer.status == 200 and run_id in answer.read().decode()
    with started(dashboard.group(1), tmp_path, f"http://127.0.0.1:{dashboard_port}/dashboard/"):
        answer = urllib.request.urlopen(f"http://127.0.0.1:{dashboard_port}/api/studies", timeout=10)  # noqa: S310
        assert answer.status == 200 and "demo-batch-size" in answer.read().decode()
