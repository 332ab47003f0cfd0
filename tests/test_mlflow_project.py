"""The MLflow Project's main entry point, run for real with `mlflow run . -e main --env-manager local`.

Checks the issue-5 contract end to end on the tiny preset: one run (the one `mlflow run` opened), every
per-epoch metric at step = epoch, per-epoch energies summing to the total, hardware and energy
provenance tags, the artifacts, and the registered model loadable with mlflow.pytorch.load_model.
One `mlflow run` checks both ways of giving the optional -P params: batch_size and seed given, epochs not
(the config's value is trained and logged, under its own name only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parents[1]
PER_EPOCH = [
    "val_f1", "val_f1_student", "val_f1_05_student", "val_weak_f1_student", "obj_metric", "train_loss", "lr", "energy_kwh",
    "energy_cum_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh", "epoch_s", "cum_time_s", "emissions_kg",
]  # fmt: skip
END = ["max_val_f1", "max_val_f1_epoch", "best_obj_metric_epoch", "energy_total_kwh", "train_time_s", "wh_per_epoch",
       "wh_per_minute", "energy_at_95pct_max_kwh", "energy_at_max_kwh", "savings_stop_at_max"]  # fmt: skip


@pytest.mark.slow
def test_mlflow_run_main_records_the_schema(tiny_data, tmp_path, tiny_overrides, fresh_store):
    """-P batch_size and seed are trained and logged; no -P epochs: the config's value (2) is, none twice."""
    uri = fresh_store(tmp_path)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    # the tiny model at 2 epochs (the config's own value, cpu_demo's 45 overridden); batch size and seed come
    # as -P params, epochs does not
    tiny = [item for item in tiny_overrides if not item.startswith(("train.epochs=", "train.batch_size="))]
    overrides = " ".join([*tiny, "train.epochs=2", "energy.measure_power_secs=1",
                          "tracking.registered_model_name=sedwatt-test-crnn",
                          f"train.out_dir={tmp_path / 'outputs'}"])  # fmt: skip
    cmd = [
        sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "main", "--env-manager", "local",
        "--experiment-name", "project-test", "-P", "config=configs/cpu_demo.yaml", "-P", f"data={tiny_data}",
        "-P", "batch_size=8", "-P", "seed=3", "-P", f"overrides={overrides}",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("project-test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # the run `mlflow run` opened is the training run: no stray second run
    run = runs[0]
    assert run.info.status == "FINISHED"
    params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
    assert params["batch_size"] == "8" and params["seed"] == "3" and params["train.epochs"] == "2"
    # epochs was not given: no "epochs" param (a declared MLproject parameter would log its default); what
    # was given is what the config holds, under no other name
    assert "epochs" not in params and not [k for k in params if k.startswith("sedwatt.")]
    assert (params["train.batch_size"], params["train.seed"]) == (params["batch_size"], params["seed"])
    assert (params["batch_synth"], params["batch_weak"], params["batch_unlabelled"]) == ("2", "2", "4")
    assert params["model.channels"] == "[8, 16, 16]" and len(params["dataset_fingerprint"]) == 16
    for key in ("hw.gpu_model", "hw.gpu_count", "hw.cpu_model", "hw.cpu_count", "hw.ram_gb", "hw.hostname", "hw.cuda",
                "hw.torch", "energy.tool", "energy.cpu_method", "energy.gpu_method", "energy.ram_method",
                "energy.interval_s"):  # fmt: skip
        assert tags.get(key), key
    assert tags["energy.tool"].startswith("codecarbon ")
    assert tags["mlflow.project.entryPoint"] == "main" and tags["sedwatt.kind"] == "train"

    for key in PER_EPOCH:
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key
    for key in END:
        assert key in metrics, key
    energy = sorted(client.get_metric_history(run.info.run_id, "energy_kwh"), key=lambda m: m.step)
    cum = sorted(client.get_metric_history(run.info.run_id, "energy_cum_kwh"), key=lambda m: m.step)
    assert all(m.value > 0 for m in energy)
    assert sum(m.value for m in energy) == pytest.approx(metrics["energy_total_kwh"], rel=1e-9)
    assert cum[-1].value == pytest.approx(metrics["energy_total_kwh"], rel=1e-9)
    parts = sum(metrics[k] for k in ("cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh"))
    assert parts == pytest.approx(energy[-1].value, rel=1e-6)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "energy_pred_total_kwh")] == [1]

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "checkpoints", "energy", "plots"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")} == {
        "checkpoints/best.pt", "checkpoints/last.pt"}  # fmt: skip
    assert "plots/f1_vs_energy.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}

    version = client.get_model_version("sedwatt-test-crnn", "1")
    assert version.run_id == run.info.run_id
    assert version.tags["hw.cpu_model"] == tags["hw.cpu_model"]
    assert float(version.tags["run_energy_total_kwh"]) == pytest.approx(metrics["energy_total_kwh"])
    mlflow.set_tracking_uri(uri)
    model = mlflow.pytorch.load_model("models:/sedwatt-test-crnn/1")
    import torch

    strong, weak = model(torch.rand(1, 32, 251))
    assert strong.shape == (1, 10, 62) and weak.shape == (1, 10)

