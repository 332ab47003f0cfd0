"""Who may write what on the team server: teammates read each other's runs, write only their own.

A real ``python -m sedwatt.tracking.server`` (PostgreSQL + moto S3 + basic-auth, default settings)
and plain HTTP: alice creates an experiment, a run and a registered model; bob, another ordinary
user, may read them but every write is refused (and nothing changes) until alice shares them, with
the two ways the README shows (MLflow's Python ``AuthServiceClient`` and the REST route ``curl``
calls). The users get names of their own, so this file shares the session server with
test_server_integration.py without clashing with its ``alice``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import requests

mlflow = pytest.importorskip("mlflow")

pytestmark = pytest.mark.integration
API = "/api/2.0/mlflow"
GRANT = "/api/3.0/mlflow/users/permissions/grant"


class User:
    """One login on the server, talking plain REST."""

    def __init__(self, url: str, name: str, password: str) -> None:
        self.url, self.name, self.password = url, name, password

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(self.url + path, json=body, auth=(self.name, self.password), timeout=30)

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.url + path, params=params, auth=(self.name, self.password), timeout=30)

    def ok(self, response: requests.Response) -> dict[str, Any]:
        assert response.status_code == 200, f"{self.name}: {response.status_code} {response.text}"
        return response.json()

    # The writes a teammate must not do to someone else's work, as the MLflow client sends them.
    def log_metric(self, run_id: str, value: float) -> requests.Response:
        return self.post(f"{API}/runs/log-metric", {"run_id": run_id, "key": "loss", "value": value,
                                                    "timestamp": 1_700_000_000_000, "step": 2})  # fmt: skip

    def set_tag(self, run_id: str, value: str) -> requests.Response:
        return self.post(f"{API}/runs/set-tag", {"run_id": run_id, "key": "note", "value": value})

    def rename(self, experiment_id: str, name: str) -> requests.Response:
        return self.post(f"{API}/experiments/update", {"experiment_id": experiment_id, "new_name": name})

    def new_version(self, model: str, run: dict[str, Any]) -> requests.Response:
        source = f"{run['info']['artifact_uri']}/model"
        return self.post(f"{API}/model-versions/create", {"name": model, "source": source, "run_id": run["info"]["run_id"]})


@pytest.fixture(scope="module")
def team(mlflow_team_server) -> tuple[User, User]:
    """Two ordinary users, made by the admin through the auth API (as the README tells an admin to)."""
    tag = secrets.token_hex(4)
    admin = User(mlflow_team_server.url, mlflow_team_server.admin_user, mlflow_team_server.admin_password)
    users = []
    for name in (f"alice-{tag}", f"bob-{tag}"):
        password = f"{name}-" + secrets.token_hex(12)
        admin.ok(admin.post(f"{API}/users/create", {"username": name, "password": password}))
        users.append(User(mlflow_team_server.url, name, password))
    return users[0], users[1]


def alice_creates(alice: User, label: str) -> tuple[str, dict[str, Any]]:
    """An experiment of alice's with one run holding one metric; returns (experiment id, run)."""
    exp_id = alice.ok(alice.post(f"{API}/experiments/create", {"name": f"{alice.name}-{label}"}))["experiment_id"]
    run = alice.ok(alice.post(f"{API}/runs/create", {"experiment_id": exp_id, "start_time": 1_700_000_000_000}))["run"]
    alice.ok(alice.log_metric(run["info"]["run_id"], 0.5))
    return exp_id, run


def test_teammate_reads_but_cannot_write_until_the_owner_shares(team, mlflow_team_server, monkeypatch):
    alice, bob = team
    exp_id, run = alice_creates(alice, "shared-by-python")
    run_id = run["info"]["run_id"]
    exp_name = f"{alice.name}-shared-by-python"
    model = f"{alice.name}-crnn"
    alice.ok(alice.post(f"{API}/registered-models/create", {"name": model}))
    alice.ok(alice.new_version(model, run))  # the request bob sends below is valid: only who sends it differs

    # no login: nothing, not even reading
    assert requests.get(f"{alice.url}{API}/runs/get", params={"run_id": run_id}, timeout=30).status_code == 401
    assert requests.post(f"{alice.url}{API}/runs/set-tag", json={"run_id": run_id, "key": "x", "value": "y"},
                         timeout=30).status_code == 401  # fmt: skip

    # bob reads everything of alice's
    assert bob.ok(bob.get(f"{API}/runs/get", run_id=run_id))["run"]["info"]["run_id"] == run_id
    history = bob.ok(bob.get(f"{API}/metrics/get-history", run_id=run_id, metric_key="loss"))["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [(2, 0.5)]
    assert bob.ok(bob.get(f"{API}/experiments/get", experiment_id=exp_id))["experiment"]["name"] == exp_name
    assert bob.ok(bob.get(f"{API}/registered-models/get", name=model))["registered_model"]["name"] == model

    # ... and may write none of it, nor hand himself the right
    assert bob.log_metric(run_id, 9.0).status_code == 403
    assert bob.set_tag(run_id, "bob was here").status_code == 403
    assert bob.rename(exp_id, f"{bob.name}-took-it").status_code == 403
    assert bob.new_version(model, run).status_code == 403
    assert bob.post(GRANT, {"username": bob.name, "resource_type": "experiment", "resource_id": exp_id,
                            "permission": "EDIT"}).status_code == 403  # fmt: skip
    assert bob.post(f"{API}/runs/create", {"experiment_id": exp_id}).status_code == 403
    after = alice.ok(alice.get(f"{API}/runs/get", run_id=run_id))["run"]
    assert after["data"]["metrics"] == [{"key": "loss", "value": 0.5, "timestamp": 1_700_000_000_000, "step": 2}]
    assert "note" not in {t["key"] for t in after["data"].get("tags", [])}
    assert alice.ok(alice.get(f"{API}/experiments/get", experiment_id=exp_id))["experiment"]["name"] == exp_name
    versions = alice.ok(alice.get(f"{API}/model-versions/search", filter=f"name = '{model}'"))["model_versions"]
    assert len(versions) == 1

    # alice shares the experiment, the README's Python way (her credentials from the environment)
    from mlflow.server.auth.client import AuthServiceClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", alice.name)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", alice.password)
    assert mlflow.MlflowClient(mlflow_team_server.url).get_experiment_by_name(exp_name).experiment_id == exp_id
    AuthServiceClient(mlflow_team_server.url).grant_user_permission(bob.name, "experiment", exp_id, "EDIT")
    assert bob.ok(bob.log_metric(run_id, 9.0)) == {}
    assert bob.ok(bob.set_tag(run_id, "bob was here")) == {}
    new_run = bob.ok(bob.post(f"{API}/runs/create", {"experiment_id": exp_id}))["run"]
    assert new_run["info"]["experiment_id"] == exp_id
    after = alice.ok(alice.get(f"{API}/runs/get", run_id=run_id))["run"]
    assert {t["key"]: t["value"] for t in after["data"]["tags"]}["note"] == "bob was here"
    assert after["data"]["metrics"][0]["value"] == 9.0
    bob.ok(bob.rename(exp_id, f"{exp_name}-renamed-by-bob"))
    assert alice.ok(alice.get(f"{API}/experiments/get", experiment_id=exp_id))["experiment"]["name"].endswith("-by-bob")
    # EDIT on the experiment is not EDIT on her registered model, nor the right to delete it or share further
    assert bob.new_version(model, run).status_code == 403
    assert bob.post(f"{API}/experiments/delete", {"experiment_id": exp_id}).status_code == 403
    assert bob.post(GRANT, {"username": bob.name, "resource_type": "experiment", "resource_id": exp_id,
                            "permission": "MANAGE"}).status_code == 403  # fmt: skip

    # the model is shared the same way, with its name as the resource id
    AuthServiceClient(mlflow_team_server.url).grant_user_permission(bob.name, "registered_model", model, "EDIT")
    assert bob.ok(bob.new_version(model, run))["model_version"]["version"] == "2"

    # and taken back
    AuthServiceClient(mlflow_team_server.url).revoke_user_permission(bob.name, "experiment", exp_id)
    assert bob.set_tag(run_id, "again").status_code == 403
    assert bob.ok(bob.get(f"{API}/runs/get", run_id=run_id))["run"]["info"]["run_id"] == run_id  # still reads


def test_sharing_with_the_rest_call_the_readme_shows_for_curl(team):
    alice, bob = team
    exp_id, run = alice_creates(alice, "shared-by-rest")
    run_id = run["info"]["run_id"]
    assert bob.set_tag(run_id, "before").status_code == 403
    # curl -u alice:PW -X POST $MLFLOW_TRACKING_URI/api/3.0/mlflow/users/permissions/grant -H ... -d '{...}'
    body = {"username": bob.name, "resource_type": "experiment", "resource_id": exp_id, "permission": "EDIT"}
    assert alice.ok(alice.post(GRANT, body)) == {}
    bob.ok(bob.set_tag(run_id, "after"))
    tags = alice.ok(alice.get(f"{API}/runs/get", run_id=run_id))["run"]["data"]["tags"]
    assert {t["key"]: t["value"] for t in tags}["note"] == "after"
    body.pop("permission")
    assert alice.ok(alice.post("/api/3.0/mlflow/users/permissions/revoke", body)) == {}
    assert bob.set_tag(run_id, "revoked").status_code == 403


def test_everyone_writes_to_what_they_create_and_not_to_the_default_experiment(team):
    alice, bob = team
    own = bob.ok(bob.post(f"{API}/experiments/create", {"name": f"{bob.name}-own"}))["experiment_id"]
    run_id = bob.ok(bob.post(f"{API}/runs/create", {"experiment_id": own}))["run"]["info"]["run_id"]
    bob.ok(bob.log_metric(run_id, 1.0))
    bob.ok(bob.set_tag(run_id, "mine"))
    assert alice.set_tag(run_id, "alice was here").status_code == 403  # the rule holds both ways
    # Nobody owns the Default experiment (id 0): runs need an experiment of their own (tracking.experiment).
    assert bob.post(f"{API}/runs/create", {"experiment_id": "0"}).status_code == 403


def test_admin_sets_up_a_team_experiment(team, mlflow_team_server):
    """What the README suggests for the configs' shared names: the admin creates them and shares them."""
    alice, bob = team
    admin = User(mlflow_team_server.url, mlflow_team_server.admin_user, mlflow_team_server.admin_password)
    team_exp = admin.ok(admin.post(f"{API}/experiments/create", {"name": f"{alice.name}-team"}))["experiment_id"]
    assert bob.post(f"{API}/runs/create", {"experiment_id": team_exp}).status_code == 403
    admin.ok(admin.post(GRANT, {"username": bob.name, "resource_type": "experiment", "resource_id": team_exp,
                                "permission": "EDIT"}))  # fmt: skip
    bob.ok(bob.post(f"{API}/runs/create", {"experiment_id": team_exp}))
    assert alice.post(f"{API}/runs/create", {"experiment_id": team_exp}).status_code == 403  # only who was granted


def test_training_into_a_teammates_experiment_is_one_line_not_a_traceback(
    team, mlflow_team_server, tiny_data, tmp_path, monkeypatch, capsys, tiny_overrides
):
    """bob's `sedwatt train --experiment <alice's>`: exit 2, one line saying why and what to do, nothing written."""
    from sedwatt.cli import main

    alice, bob = team
    exp_id, _run = alice_creates(alice, "theirs")
    name = f"{alice.name}-theirs"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_team_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", bob.name)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", bob.password)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    argv = ["train", "--data", str(tiny_data), "--experiment", name, "--epochs", "1"]
    for item in (*tiny_overrides, "energy.enabled=false", f"train.out_dir={tmp_path / 'out'}"):
        argv += ["--set", item]
    try:
        assert main(argv) == 2
    finally:
        mlflow.set_tracking_uri(None)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"sedwatt train: error: experiment {name!r} on {mlflow_team_server.url}: {bob.name} may read it but not write "
        "to it (another user created it); use --experiment NAME of your own, or ask its owner to grant you EDIT "
        "(README: sharing an experiment)"
    ]
    runs = alice.ok(alice.post(f"{API}/runs/search", {"experiment_ids": [exp_id]}))["runs"]
    assert len(runs) == 1  # only alice's own
