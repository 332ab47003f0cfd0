"""The Optuna storage URL from SEDWATT_OPTUNA_STORAGE: out of `ps`, out of the MLflow params, still used everywhere.

The end-to-end case runs ``mlflow run . -e search`` with the URL (a password-protected PostgreSQL
database) only in the environment: the study must land there, and the password must appear in
neither the command MLflow runs, nor the output, nor the project run's params and tags.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from sedwatt.search.runs import PARENT_ATTR, RUN_ATTR
from sedwatt.search.storage import default_storage
from sedwatt.search.study import STORAGE_ENV, resolve_storage

ROOT = Path(__file__).resolve().parents[1]


def test_the_flag_wins_over_the_variable_which_wins_over_the_default(monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert resolve_storage(None) == default_storage()
    monkeypatch.setenv(STORAGE_ENV, "")  # set but empty: as if unset
    assert resolve_storage(None) == default_storage()
    monkeypatch.setenv(STORAGE_ENV, "postgresql+psycopg://u:secret@db/optuna")
    assert resolve_storage(None) == "postgresql+psycopg://u:secret@db/optuna"
    assert resolve_storage("sqlite:///flag.db") == "sqlite:///flag.db"


def test_the_mlproject_search_entry_forces_no_storage():
    """A non-empty default for `storage` would become --storage and silently override the variable."""
    entry = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]["search"]
    assert entry["parameters"]["storage"]["default"] == ""


@pytest.mark.slow
@pytest.mark.integration
def test_mlflow_run_search_takes_the_storage_from_the_environment(
    tiny_data, optuna_db, tmp_path, search_overrides, fresh_store
):
    url, password = optuna_db.uri, optuna_db.password  # a password-protected database (servers.optuna_db)
    tracking_uri = fresh_store(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("batch_size: [64]\n")
    overrides = " ".join(search_overrides(tmp_path, tmp_path / "mel-cache"))
    env = {
        **os.environ,
        STORAGE_ENV: url,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("MLFLOW_RUN_ID", None)
    cmd = [
        sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "search", "--env-manager", "local",
        "--experiment-name", "storage-env", "-P", f"data={tiny_data}", "-P", "n_trials=1", "-P", "epochs=1",
        "-P", "study_name=from-env", "-P", f"space={space}", "-P", f"overrides={overrides}",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert password not in done.stdout + done.stderr  # MLflow echoes the command it runs: no URL in it

    study = optuna.load_study(study_name="from-env", storage=url)  # the study is in the variable's database
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    client = mlflow.MlflowClient(tracking_uri)
    project_run = client.get_run(study.user_attrs[PARENT_ATTR])
    assert project_run.data.tags["mlflow.project.entryPoint"] == "search"
    assert project_run.data.params["storage"] in ("", "''")  # MLflow logs the empty default quoted
    trial_run = client.get_run(study.trials[0].user_attrs[RUN_ATTR])
    for run in (project_run, trial_run):
        assert not any(password in value for value in [*run.data.params.values(), *run.data.tags.values()])


def test_an_unreachable_storage_from_the_environment_is_named_as_such(monkeypatch):
    from sedwatt.errors import SedwattError
    from sedwatt.search.storage import open_storage

    url = "postgresql+psycopg://sed:s3cret-pw@127.0.0.1:1/optuna"
    monkeypatch.setenv("SEDWATT_OPTUNA_STORAGE", url)
    with pytest.raises(SedwattError) as info:
        open_storage(url, heartbeat_interval=1, grace_period=5, max_retry=0)
    message = str(info.value)
    assert message.startswith("SEDWATT_OPTUNA_STORAGE postgresql+psycopg://sed:***@127.0.0.1:1/optuna: cannot reach it")
    assert "s3cret" not in message
    monkeypatch.delenv("SEDWATT_OPTUNA_STORAGE")
    with pytest.raises(SedwattError, match=r"^--storage postgresql"):
        open_storage(url, heartbeat_interval=1, grace_period=5, max_retry=0)
