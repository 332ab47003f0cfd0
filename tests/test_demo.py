"""`sedwatt demo` (what `make demo` runs), shrunk: tiny preset, 1 epoch, 1 one-epoch search trial.

The whole chain for real — make-data, `mlflow run . -e main` in a subprocess, an Optuna study, the
analysis — checking what the newcomer is promised: the training run's id (a finished run of the main
entry point), the address that opens it in the UI, and the HTML report of the demo's own runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest


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
    cmd = [
        str(bindir / "sedwatt"), "demo", "--out", str(out), "--preset", "tiny", "--experiment", "demo-test",
        "--epochs", "1", "--search-trials", "1", "--search-epochs", "1",
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
    assert f"/#/experiments/{run.info.experiment_id}/runs/{run_id}" in done.stdout
    assert f"mlflow ui --backend-store-uri {uri}" in done.stdout

    experiment = client.get_experiment_by_name("demo-test")
    trials = client.search_runs([experiment.experiment_id], "tags.`optuna.trial_number` = '0'")
    assert len(trials) == 1 and trials[0].data.tags.get("mlflow.parentRunId")
    report = out / "report" / "report.html"
    assert report.is_file() and f"report: {report}" in done.stdout
    assert (out / "outputs" / run_id / "checkpoints" / "last.pt").is_file()  # the demo keeps its files together
    runs_csv = (out / "report" / "runs.csv").read_text()
    assert run_id in runs_csv and trials[0].info.run_id in runs_csv
