"""What MLflow users look for on a training run: a name that says what it is, a described experiment,
system metrics — on a real tiny training run in a SQLite store."""

from __future__ import annotations

import mlflow
import pytest

from sedwatt.cli import main

TINY = ["data.clip_seconds=4.0", "features.n_mels=32", "model.channels=[8,16]", "model.pools=[[2,4],[2,8]]",
        "model.rnn_hidden=8", "train.batch_size=8", "train.progress=false", "energy.enabled=false",
        "tracking.log_model=false", "tracking.log_checkpoints=false"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """One run for the whole module (a training is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("conventions")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    argv = ["train", "--data", str(tiny_data), "--epochs", "2", "--seed", "5", "--experiment", "conventions",
            "--set", f"train.out_dir={tmp_path / 'out'}"]  # fmt: skip
    for item in TINY:
        argv += ["--set", item]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
        monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
        try:
            assert main(argv) == 0
        finally:
            mlflow.set_tracking_uri(None)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("conventions")
    (run,) = client.search_runs([experiment.experiment_id])
    return client, experiment, run


def test_run_name_says_config_batch_and_seed(trained):
    _client, _experiment, run = trained
    assert run.info.run_name == "dcase2022 · batch 8 · seed 5"


def test_experiment_is_described_where_f1_and_energy_are(trained):
    _client, experiment, _run = trained
    note = experiment.tags["mlflow.note.content"]
    assert "Model metrics" in note and "`val_f1`" in note and "`energy_cum_kwh`" in note


def test_training_runs_log_system_metrics(trained):
    client, _experiment, run = trained
    assert run.data.params["tracking.system_metrics"] == "True"
    history = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert history and all(0.0 <= m.value <= 100.0 * 64 for m in history)
    assert "system/system_memory_usage_megabytes" in run.data.metrics
