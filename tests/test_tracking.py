"""Tracking without a server: the default store, the callback's run schema, status, params, plots.

Everything here runs against a throwaway SQLite store; test_tracking_resilience.py covers outages
and test_server_integration.py the real team server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tracking_run import CHECKPOINT_EPOCH, F1_CURVE, OBJ_CURVE, TRACKING_OVERRIDES, AfterEpoch, FailAt, train

mlflow = pytest.importorskip("mlflow")

from sedwatt.tracking import (  # noqa: E402
    MLflowCallback,
    configure_tracking,
    ensure_experiment,
    start_tracked_run,
)
from sedwatt.tracking.callback import artifact_entries, run_params, summary_metrics, training_failed  # noqa: E402
from sedwatt.tracking.params import reconcile_params  # noqa: E402
from sedwatt.tracking.plots import plot_f1_vs_energy  # noqa: E402
from sedwatt.tracking.uri import (  # noqa: E402
    default_tracking_uri,
    project_root,
    redact_uri,
    sqlite_path,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store (created once: migrations take seconds) shared by this module's tests."""
    db = tmp_path_factory.mktemp("store") / "mlruns.db"
    return f"sqlite:///{db}"


@pytest.fixture
def tracking(store, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)  # nothing may land in the CWD
    uri = configure_tracking()
    yield uri
    mlflow.set_tracking_uri(None)


# --- where runs go ------------------------------------------------------------------------------


def test_default_store_is_the_project_root_whatever_the_cwd(tmp_path, monkeypatch):
    assert project_root() == REPO
    expected = f"sqlite:///{REPO / 'mlruns.db'}"
    assert default_tracking_uri() == expected
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == expected
    assert sqlite_path(expected) == REPO / "mlruns.db"


def test_installed_elsewhere_falls_back_to_home(tmp_path, monkeypatch):
    site = tmp_path / "lib" / "site-packages" / "sedwatt"
    site.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert project_root(site) is None
    assert default_tracking_uri(site) == f"sqlite:///{tmp_path / 'home' / '.sedwatt' / 'mlruns.db'}"


def test_configure_tracking_uses_the_env_and_makes_http_fail_fast(monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path / 'x' / 'runs.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # a user's choice wins
    try:
        assert configure_tracking() == uri
        assert mlflow.get_tracking_uri() == uri
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
        assert not (tmp_path / "x" / "runs.db").exists()  # configuring creates no store
    finally:
        mlflow.set_tracking_uri(None)


def test_configure_tracking_without_env_uses_the_default(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        assert configure_tracking() == default_tracking_uri()
    finally:
        mlflow.set_tracking_uri(None)


def test_experiments_keep_artifacts_next_to_the_database(tmp_path, monkeypatch):
    db = tmp_path / "store" / "runs.db"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{db}"
    exp_id = ensure_experiment("my exp/1", uri)
    assert ensure_experiment("my exp/1", uri) == exp_id
    client = mlflow.MlflowClient(uri)
    root = (tmp_path / "store" / "mlartifacts").as_uri()
    assert client.get_experiment(exp_id).artifact_location.startswith(root)
    assert client.get_experiment("0").artifact_location.startswith(root)  # the Default experiment too
    assert not (elsewhere / "mlruns").exists()


def test_redact_uri_drops_credentials():
    assert redact_uri("http://alice:s3cret@host:5000/x") == "http://host:5000/x"
    assert redact_uri("http://host:5000") == "http://host:5000"


# --- params -------------------------------------------------------------------------------------


def test_params_already_on_the_run_are_never_relogged():
    existing = {"epochs": "200", "train.lr": "1e-3", "batch_size": "32", "sedwatt.seed": "1", "seed": "7"}
    wanted = {"epochs": "200", "train.lr": "0.001", "batch_size": "48", "seed": "9", "new": "x"}
    to_log, renamed = reconcile_params(existing, wanted)
    assert to_log == {"new": "x"}
    assert renamed == {"sedwatt.batch_size": "48"}  # sedwatt.seed exists already: left alone


def test_run_params_hold_the_schema_extras(tmp_path, tiny_config):
    from sedwatt.training.callbacks import RunState
    from sedwatt.training.loop import run_info

    config = tiny_config("train.batch_size=24", "train.seed=7", "name=tracking-test")
    state = RunState(config=config, out_dir=tmp_path, info=run_info(config, "abc", torch.device("cpu"), 3))
    params = run_params(state)
    assert params["train.batch_size"] == "24" and params["batch_size"] == "24"
    assert (params["batch_synth"], params["batch_weak"], params["batch_unlabelled"]) == ("6", "6", "12")  # 1:1:2
    assert params["dataset_fingerprint"] == "abc" and params["config_name"] == "tracking-test"
    assert params["seed"] == "7"


# --- summary, artifacts map, plot ---------------------------------------------------------------


def test_summary_maps_curve_fields_and_skips_targets_never_reached():
    history = [{"val_f1": f, "energy_cum_kwh": 0.01 * (i + 1), "cum_time_s": 60.0 * (i + 1)} for i, f in enumerate(F1_CURVE[:3])]
    summary = summary_metrics(history)
    assert summary["max_val_f1"] == pytest.approx(0.36) and summary["max_val_f1_epoch"] == 3
    assert summary["train_time_s"] == pytest.approx(180.0)
    assert summary["energy_total_kwh"] == pytest.approx(0.03)
    assert summary["wh_per_epoch"] == pytest.approx(10.0)
    assert summary["wh_per_minute"] == pytest.approx(10.0)
    assert summary["energy_at_max_kwh"] == pytest.approx(0.03)
    assert "energy_at_f1_40_kwh" not in summary  # 0.40 never reached: not logged, not invented


def test_summary_without_energy_keeps_only_what_the_curve_says():
    history = [{"val_f1": 0.2, "cum_time_s": 5.0}, {"val_f1": 0.3, "cum_time_s": 9.0}]
    assert summary_metrics(history) == {"max_val_f1": 0.3, "max_val_f1_epoch": 2.0, "train_time_s": 9.0}


def test_artifact_entries_accept_folders_and_file_names(tmp_path):
    csv = tmp_path / "e.csv"
    entries = artifact_entries({"energy": str(csv), "energy/e.csv": csv, "": [csv]})
    assert entries == [(csv, "energy"), (csv, "energy"), (csv, None)]


def test_plot_needs_both_curves(tmp_path):
    assert plot_f1_vs_energy([{"val_f1": 0.3}], tmp_path / "p.png") is None
    history = [{"val_f1": f, "energy_cum_kwh": 0.001 * (i + 1)} for i, f in enumerate(F1_CURVE)]
    png = plot_f1_vs_energy(history, tmp_path / "plots" / "p.png", checkpoint_epoch=4)
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["p.png"]  # no temporary left


def test_training_failed_tells_failures_from_early_stops():
    assert training_failed("failed: RuntimeError: boom") and training_failed("interrupted")
    assert not training_failed(None) and not training_failed("patience: no improvement for 10 epochs")


# --- the callback end to end (SQLite) -----------------------------------------------------------


class CountingClient:
    """An MlflowClient whose log_batch calls are counted."""

    def __init__(self, uri: str) -> None:
        self.inner = mlflow.MlflowClient(uri)
        self.batches: list[dict] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        self.batches.append({"metrics": list(metrics), "params": list(params), "tags": list(tags)})
        return self.inner.log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_callback_records_the_run_schema(tracking, tmp_path, tiny_config, tiny_training_data):
    """A real tiny training whose max-F1 epoch (5) is not its best-obj_metric checkpoint's (3)."""
    from sedwatt.hardware import hardware_tags
    from sedwatt.training.checkpoint import load_checkpoint

    model_name = f"crnn-{os.getpid()}-{tmp_path.name}"
    config = tiny_config("train.epochs=6", *TRACKING_OVERRIDES, f"tracking.registered_model_name={model_name}")
    exp_id = ensure_experiment("tracking-test")
    client = CountingClient(tracking)
    out = tmp_path / "out"
    with start_tracked_run(experiment_id=exp_id) as run:
        run_id = run.info.run_id
        # As under `mlflow run -P ...`: some params exist before training starts.
        mlflow.log_params({"epochs": "6", "train.lr": "1e-3", "batch_size": "999"})
        tracker = MLflowCallback(run_id, client=client)
        per_epoch_batches: list[int] = []
        state = train(config, tiny_training_data, out, [tracker, AfterEpoch(lambda e: per_epoch_batches.append(len(client.batches)))])
    # one log_batch per epoch, nothing else in between
    assert [b - a for a, b in zip(per_epoch_batches, per_epoch_batches[1:], strict=False)] == [1] * 5

    data = mlflow.MlflowClient(tracking).get_run(run_id)
    assert data.info.status == "FINISHED"
    params = data.data.params
    assert params["model.channels"] == str(config.model.channels)
    assert params["batch_size"] == "999" and params["sedwatt.batch_size"] == "32"
    assert params["train.lr"] == "1e-3" and "sedwatt.train.lr" not in params  # numerically equal
    assert params["dataset_fingerprint"] == tiny_training_data.fingerprint and params["config_name"] == "tracking-test"

    tags = data.data.tags
    hw = hardware_tags("cpu")
    assert {key: tags[key] for key in hw} == hw
    assert tags["energy.tool"] == "codecarbon 3.3.2" and tags["energy.ram_method"] == "late-tag"
    assert "sedwatt.stop_reason" not in tags

    history = mlflow.MlflowClient(tracking).get_metric_history(run_id, "val_f1")
    assert [(m.step, m.value) for m in history] == [(e, F1_CURVE[e - 1]) for e in range(1, 7)]
    obj = mlflow.MlflowClient(tracking).get_metric_history(run_id, "obj_metric")
    assert [(m.step, m.value) for m in obj] == [(e, OBJ_CURVE[e - 1]) for e in range(1, 7)]
    assert [m.step for m in mlflow.MlflowClient(tracking).get_metric_history(run_id, "energy_cum_kwh")] == list(range(1, 7))
    assert "note" not in data.data.metrics

    metrics = data.data.metrics
    assert metrics["max_val_f1"] == pytest.approx(0.44) and metrics["max_val_f1_epoch"] == 5
    assert metrics["best_obj_metric_epoch"] == 3 and state.best_obj_metric_epoch == 3  # not the max F1's epoch
    assert metrics["energy_total_kwh"] == pytest.approx(0.012)
    assert metrics["energy_at_f1_40_kwh"] == pytest.approx(0.008)  # epoch 4
    assert metrics["energy_at_95pct_max_kwh"] == pytest.approx(0.008)  # 0.43 >= 0.95 * 0.44
    assert metrics["energy_at_max_kwh"] == pytest.approx(0.010)  # epoch 5, not the checkpoint's 3
    assert metrics["extra_cost_95_to_max"] == pytest.approx(0.25)
    assert metrics["savings_stop_at_max"] == pytest.approx(1 / 6)  # 1 - 0.010 / 0.012
    assert metrics["train_time_s"] == pytest.approx(state.history[-1]["cum_time_s"])
    summary_step = {m.step for m in mlflow.MlflowClient(tracking).get_metric_history(run_id, "max_val_f1")}
    assert summary_step == {6}
    assert tracker.summary["max_val_f1"] == pytest.approx(0.44)

    files = {a.path for a in mlflow.MlflowClient(tracking).list_artifacts(run_id)}
    assert {"config.yaml", "energy", "checkpoints", "plots"} <= files
    nested = {a.path for d in ("energy", "checkpoints", "plots") for a in mlflow.MlflowClient(tracking).list_artifacts(run_id, d)}
    assert nested == {"energy/energy_epochs.csv", "checkpoints/best.pt", "checkpoints/last.pt", "plots/f1_vs_energy.png"}
    config_yaml = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="config.yaml", dst_path=str(tmp_path / "dl"))
    from sedwatt.config import load_config

    assert load_config(config_yaml) == config

    # the model: the best-obj_metric checkpoint's student (epoch 3), loadable, registered and tagged as such
    versions = mlflow.MlflowClient(tracking).search_model_versions(f"name = '{model_name}'")
    assert len(versions) == 1
    version = versions[0]
    assert version.run_id == run_id
    assert {key: version.tags[key] for key in hw} == hw
    assert (version.tags["model"], version.tags["checkpoint"]) == ("student", "best obj_metric")
    assert version.tags["checkpoint_epoch"] == str(CHECKPOINT_EPOCH)
    assert float(version.tags["checkpoint_obj_metric"]) == pytest.approx(OBJ_CURVE[CHECKPOINT_EPOCH - 1])
    assert float(version.tags["checkpoint_val_f1_student"]) == pytest.approx(F1_CURVE[CHECKPOINT_EPOCH - 1] - 0.01)
    assert float(version.tags["run_max_val_f1"]) == pytest.approx(0.44)  # the run's (teacher, epoch 5)
    assert float(version.tags["run_energy_total_kwh"]) == pytest.approx(0.012)
    model = mlflow.pytorch.load_model(f"models:/{model_name}/{version.version}")
    best, last = load_checkpoint(state.best_checkpoint), load_checkpoint(state.last_checkpoint)
    assert (best["epoch"], last["epoch"]) == (CHECKPOINT_EPOCH, 6)
    weights = model.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in best["student"].items())
    assert not all(torch.equal(weights[k], v) for k, v in last["student"].items())  # not the last epoch's
    assert tracker.model_logged
    assert not (out / "mlflow-spool.jsonl").exists()
    assert not (tmp_path / "mlruns").exists()  # nothing landed in the CWD


def test_failed_training_is_recorded_without_a_model(tracking, tmp_path, tiny_config, tiny_training_data):
    model_name = f"crnn-failed-{os.getpid()}"
    config = tiny_config("train.epochs=4", *TRACKING_OVERRIDES, f"tracking.registered_model_name={model_name}")
    with pytest.raises(RuntimeError, match="synthetic failure"), start_tracked_run(experiment_id=ensure_experiment("tracking-test")) as run:
        train(config, tiny_training_data, tmp_path / "out", [MLflowCallback(run.info.run_id), FailAt(3, RuntimeError("synthetic failure"))])
    data = mlflow.MlflowClient(tracking).get_run(run.info.run_id)
    assert data.info.status == "FAILED"
    assert data.data.tags["sedwatt.stop_reason"] == "failed: RuntimeError: synthetic failure"
    assert [m.step for m in mlflow.MlflowClient(tracking).get_metric_history(run.info.run_id, "val_f1")] == [1, 2]
    assert data.data.metrics["max_val_f1"] == pytest.approx(0.27)  # the summary of the epochs that ran
    assert "checkpoints" in {a.path for a in mlflow.MlflowClient(tracking).list_artifacts(run.info.run_id)}
    assert mlflow.MlflowClient(tracking).search_model_versions(f"name = '{model_name}'") == []


def test_ctrl_c_ends_the_run_killed(tracking, tmp_path, tiny_config, tiny_training_data):
    config = tiny_config("train.epochs=3", *TRACKING_OVERRIDES, "tracking.log_model=false")
    with pytest.raises(KeyboardInterrupt), start_tracked_run(experiment_id=ensure_experiment("tracking-test")) as run:
        train(config, tiny_training_data, tmp_path / "out", [MLflowCallback(run.info.run_id), FailAt(2, KeyboardInterrupt())])
    data = mlflow.MlflowClient(tracking).get_run(run.info.run_id)
    assert data.info.status == "KILLED"
    assert data.data.tags["sedwatt.stop_reason"] == "interrupted"
    assert mlflow.active_run() is None


def test_nested_trial_run_gets_its_own_records(tracking, tmp_path, tiny_config, tiny_training_data):
    config = tiny_config("train.epochs=2", *TRACKING_OVERRIDES, "tracking.log_model=false")
    exp_id = ensure_experiment("tracking-test")
    with start_tracked_run(experiment_id=exp_id, run_name="study") as parent:
        with start_tracked_run(experiment_id=exp_id, nested=True) as trial:
            train(config, tiny_training_data, tmp_path / "out", [MLflowCallback(trial.info.run_id, kind="train")])
        assert mlflow.active_run().info.run_id == parent.info.run_id
    client = mlflow.MlflowClient(tracking)
    child = client.get_run(trial.info.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["sedwatt.kind"] == "train"
    assert "val_f1" in child.data.metrics and "val_f1" not in client.get_run(parent.info.run_id).data.metrics


def test_a_new_run_under_mlflow_run_leaves_the_project_run_alone(tracking, monkeypatch):
    """Calibration under ``mlflow run``: its own run, while MLFLOW_RUN_ID still names the project's."""
    exp_id = ensure_experiment("tracking-test")
    project = mlflow.MlflowClient(tracking).create_run(exp_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project)
    with start_tracked_run(experiment_id=exp_id, run_name="own", resume_project_run=False) as run:
        assert run.info.run_id != project and os.environ["MLFLOW_RUN_ID"] == project
    monkeypatch.setenv("MLFLOW_RUN_ID", project)  # (MLflow's end_run unsets it)
    with start_tracked_run() as resumed:  # the default resumes the project's run, as mlflow.start_run does
        assert resumed.info.run_id == project
    client = mlflow.MlflowClient(tracking)
    assert client.get_run(run.info.run_id).info.status == "FINISHED" and client.get_run(run.info.run_id).info.run_name == "own"
