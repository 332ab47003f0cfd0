"""The team stack for real: PostgreSQL 15 + moto S3 + ``mlflow server --app-name basic-auth`` via sedwatt.

A tiny training run (the real Trainer on the tiny preset, its validation curve scripted: tracking_run.py)
logs to the server as a non-admin user whose client has no S3 credentials, its model is registered, and
everything is read back through the server. Also: anonymous clients get 401, no credential ends
up in params, tags or artifacts, and a server stopped and restarted mid-run loses nothing.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

import pytest
import requests
import torch

from servers import free_port
from tracking_run import CHECKPOINT_EPOCH, F1_CURVE, TRACKING_OVERRIDES, AfterEpoch, train

mlflow = pytest.importorskip("mlflow")

from sedwatt.tracking import MLflowCallback, end_run_safely, ensure_experiment, start_tracked_run  # noqa: E402
from sedwatt.tracking.resilient import read_spool  # noqa: E402
from sedwatt.training.checkpoint import load_checkpoint  # noqa: E402

pytestmark = pytest.mark.integration
EXPERIMENT = "sedwatt-integration"
SEARCH = "/api/2.0/mlflow/experiments/search"


@pytest.fixture(scope="module")
def alice(mlflow_team_server) -> tuple[str, str]:
    """A non-admin team member, created by the admin through the auth API."""
    password = "alice-" + secrets.token_hex(12)
    response = requests.post(
        f"{mlflow_team_server.url}/api/2.0/mlflow/users/create",
        json={"username": "alice", "password": password},
        auth=(mlflow_team_server.admin_user, mlflow_team_server.admin_password),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return "alice", password


@pytest.fixture
def as_alice(mlflow_team_server, alice, monkeypatch):
    """This process as a team client: server URI + basic-auth credentials, and no S3 credentials at all."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_team_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", alice[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", alice[1])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a stopped server fails at once
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    mlflow.set_tracking_uri(mlflow_team_server.url)
    yield mlflow.MlflowClient(mlflow_team_server.url)
    mlflow.set_tracking_uri(None)


def test_anonymous_and_wrong_credentials_are_refused(mlflow_team_server):
    url = mlflow_team_server.url
    assert requests.get(url + SEARCH, params={"max_results": 1}, timeout=10).status_code == 401
    assert requests.post(f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, timeout=10).status_code == 401
    assert requests.get(f"{url}/api/2.0/mlflow-artifacts/artifacts", timeout=10).status_code == 401
    wrong = (mlflow_team_server.admin_user, "not-the-password")
    assert requests.get(url + SEARCH, params={"max_results": 1}, auth=wrong, timeout=10).status_code == 401
    admin = (mlflow_team_server.admin_user, mlflow_team_server.admin_password)
    assert requests.get(url + SEARCH, params={"max_results": 1}, auth=admin, timeout=10).status_code == 200
    # The Host check still guards the API (DNS rebinding), credentials or not.
    foreign = requests.get(url + SEARCH, params={"max_results": 1}, auth=admin, headers={"Host": "evil.example"}, timeout=10)
    assert foreign.status_code == 403


def _every_file(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_training_run_is_logged_registered_and_read_back(
    as_alice, mlflow_team_server, s3_endpoint, alice, tmp_path, tiny_config, tiny_training_data
):
    client = as_alice
    model_name = "sedwatt-crnn-integration"
    config = tiny_config("train.epochs=4", *TRACKING_OVERRIDES, f"tracking.registered_model_name={model_name}")
    exp_id = ensure_experiment(EXPERIMENT)
    assert client.get_experiment(exp_id).artifact_location.startswith("mlflow-artifacts:")  # proxied
    with start_tracked_run(experiment_id=exp_id, run_name="tiny") as run:
        run_id = run.info.run_id
        tracker = MLflowCallback(run_id, kind="train")
        state = train(config, tiny_training_data, tmp_path / "out", [tracker])
    assert tracker.model_logged

    data = client.get_run(run_id)
    assert data.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val_f1")] == [(e, F1_CURVE[e - 1]) for e in range(1, 5)]
    assert data.data.metrics["max_val_f1"] == pytest.approx(max(F1_CURVE[:4]))
    assert data.data.metrics["best_obj_metric_epoch"] == CHECKPOINT_EPOCH and data.data.metrics["max_val_f1_epoch"] == 4
    assert data.data.params["train.epochs"] == "4" and data.data.tags["sedwatt.kind"] == "train"
    assert "hw.cpu_model" in data.data.tags and data.data.tags["energy.tool"] == "codecarbon 3.3.2"

    # artifacts come back through the server (this client has no S3 credentials)
    run_files = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "run")))
    names = {str(p.relative_to(run_files)) for p in _every_file(run_files)}
    assert {"config.yaml", "checkpoints/best.pt", "checkpoints/last.pt", "plots/f1_vs_energy.png", "energy/energy_epochs.csv"} <= names
    from sedwatt.config import load_config

    assert load_config(run_files / "config.yaml") == config

    (version,) = client.search_model_versions(f"name = '{model_name}'")
    assert version.run_id == run_id and "hw.cpu_model" in version.tags
    assert float(version.tags["run_max_val_f1"]) == pytest.approx(max(F1_CURVE[:4]))
    assert "run_energy_total_kwh" in version.tags and version.tags["checkpoint_epoch"] == str(CHECKPOINT_EPOCH)
    model_uri = f"models:/{model_name}/{version.version}"
    model = mlflow.pytorch.load_model(model_uri)
    best = load_checkpoint(state.best_checkpoint)["student"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())  # the best obj_metric's weights
    model_files = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(tmp_path / "model")))
    assert (model_files / "MLmodel").is_file()

    # ... and they really live in the S3 bucket, behind the server
    keys = [o["Key"] for o in s3_endpoint.client().list_objects_v2(Bucket=s3_endpoint.bucket, Prefix="artifacts/")["Contents"]]
    assert any(k.endswith(f"{run_id}/artifacts/checkpoints/best.pt") for k in keys)
    assert any(k.endswith("/MLmodel") for k in keys)

    # no credential anywhere: params, tags (run, version, registered model), artifact bytes
    credentials = [*mlflow_team_server.secrets, alice[1], s3_endpoint.secret_key]
    texts = [*data.data.params.keys(), *data.data.params.values(), *data.data.tags.keys(), *data.data.tags.values()]
    texts += [*version.tags.values(), *client.get_registered_model(model_name).tags.values()]
    for secret in credentials:
        assert not any(secret in text for text in texts), "a credential leaked into params or tags"
        for path in _every_file(run_files) + _every_file(model_files):
            assert secret.encode() not in path.read_bytes(), f"a credential leaked into {path.name}"


def test_server_stopped_and_restarted_mid_run_loses_nothing(as_alice, mlflow_team_server, tmp_path, tiny_config, tiny_training_data):
    client = as_alice
    server = mlflow_team_server
    config = tiny_config("train.epochs=6", *TRACKING_OVERRIDES, "tracking.log_model=false")
    spool = tmp_path / "out" / "mlflow-spool.jsonl"
    queued_while_down: list[int] = []

    def outage(epoch: int) -> None:
        if epoch == 2:
            server.stop()
        elif epoch == 4:
            queued_while_down.append(len(read_spool(spool)))
            server.start()
        elif epoch == 5:
            queued_while_down.append(len(read_spool(spool)) if spool.exists() else 0)

    try:
        with start_tracked_run(experiment_id=ensure_experiment(EXPERIMENT), spool_path=spool) as run:
            # retry_interval_s=0: try at every epoch end (real epochs are far apart; these are not)
            tracker = MLflowCallback(run.info.run_id, retry_attempts=1, retry_interval_s=0)
            train(config, tiny_training_data, tmp_path / "out", [tracker, AfterEpoch(outage)])
    finally:
        if server.process is None:  # leave the session's server running for the other tests
            server.start()
    assert queued_while_down == [2, 0]  # epochs 3 and 4 waited in the spool, sent at epoch 5
    run_id = run.info.run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in ("val_f1", "energy_kwh", "energy_cum_kwh", "train_loss"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == list(range(1, 7)), key
    assert [m.value for m in client.get_metric_history(run_id, "val_f1")] == list(F1_CURVE[:6])
    assert not spool.exists()


def test_sync_sends_a_spool_to_the_team_server(as_alice, tmp_path, capsys, tiny_config, tiny_training_data):
    """A server that never came back during the run: `sedwatt sync` delivers everything afterwards."""
    from sedwatt.cli import sync

    client = as_alice
    server_uri = mlflow.get_tracking_uri()
    run_id = client.create_run(ensure_experiment(EXPERIMENT)).info.run_id
    config = tiny_config("train.epochs=3", *TRACKING_OVERRIDES, "tracking.registered_model_name=sedwatt-crnn-synced")
    spool = tmp_path / "out" / "mlflow-spool.jsonl"
    dead = f"http://127.0.0.1:{free_port()}"
    mlflow.set_tracking_uri(dead)
    try:
        train(config, tiny_training_data, tmp_path / "out", [MLflowCallback(run_id, tracking_uri=dead, retry_attempts=1)])
        end_run_safely(run_id, "FINISHED", spool)
    finally:
        mlflow.set_tracking_uri(server_uri)
    assert f"sedwatt sync {spool}" in capsys.readouterr().err
    assert sync.run(argparse.Namespace(spool=[str(spool)], tracking_uri=server_uri)) == 0
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "val_f1")] == [1, 2, 3]
    (version,) = client.search_model_versions("name = 'sedwatt-crnn-synced'")
    assert version.run_id == run_id
    # Replayed without an active run, the logged model still belongs to the run's experiment, not to
    # Default (id 0), which no ordinary user may write to on the team server.
    assert version.source.startswith("models:/m-")
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.experiment_id == run.info.experiment_id and logged.source_run_id == run_id
    model = mlflow.pytorch.load_model(f"models:/sedwatt-crnn-synced/{version.version}")
    _strong, weak = model(torch.zeros(2, config.features.n_mels, config.n_feature_frames))
    assert weak.shape == (2, config.model.n_classes)


def test_real_tiny_training_run_on_the_team_server(
    as_alice, mlflow_team_server, s3_endpoint, alice, tiny_data, tmp_path, tiny_overrides
):
    """sedwatt's own train entry (real trainer, real CodeCarbon) against the PostgreSQL + S3 + auth stack."""
    from sedwatt.config import load_config
    from sedwatt.runner import train_run

    client = as_alice
    model_name = "sedwatt-crnn-real-integration"
    config = load_config(None, [
        *tiny_overrides, "train.epochs=2", "energy.measure_power_secs=1",
        f"data.cache_dir={tmp_path / 'cache'}", f"train.out_dir={tmp_path / 'outputs'}",
        f"tracking.experiment={EXPERIMENT}", f"tracking.registered_model_name={model_name}",
    ])  # fmt: skip
    outcome = train_run(config, tiny_data, run_name="real-tiny")
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["sedwatt.kind"] == "train"
    assert [m.step for m in client.get_metric_history(outcome.run_id, "energy_cum_kwh")] == [1, 2]
    assert run.data.metrics["energy_total_kwh"] > 0 and "hw.cpu_model" in run.data.tags
    (version,) = client.search_model_versions(f"name = '{model_name}'")
    assert version.run_id == outcome.run_id
    files = Path(mlflow.artifacts.download_artifacts(run_id=outcome.run_id, dst_path=str(tmp_path / "dl")))
    assert (files / "checkpoints" / "best.pt").is_file() and (files / "energy" / "epochs.csv").is_file()
    texts = [*run.data.params.values(), *run.data.tags.values(), *version.tags.values()]
    for secret in [*mlflow_team_server.secrets, alice[1], s3_endpoint.secret_key]:
        assert not any(secret in text for text in texts)
        for path in _every_file(files):
            assert secret.encode() not in path.read_bytes()
