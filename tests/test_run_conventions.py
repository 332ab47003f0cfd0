"""What MLflow users look for on a training run: a name that says what it is, a described experiment,
system metrics — on a real tiny training run in a SQLite store (conftest's ``tiny_run``)."""

from __future__ import annotations


def test_run_name_says_config_batch_and_seed(tiny_run):
    assert tiny_run.run.info.run_name == "dcase2022 · batch 8 · seed 5"


def test_experiment_is_described_where_f1_and_energy_are(tiny_run):
    note = tiny_run.experiment.tags["mlflow.note.content"]
    assert "Model metrics" in note and "`val_f1`" in note and "`energy_cum_kwh`" in note
    assert "`max_val_f1`" in note  # the end-of-run figure under its current name


def test_training_runs_log_system_metrics(tiny_run):
    run = tiny_run.run
    assert run.data.params["tracking.system_metrics"] == "True"
    history = tiny_run.client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert history and all(0.0 <= m.value <= 100.0 * 64 for m in history)
    assert "system/system_memory_usage_megabytes" in run.data.metrics
