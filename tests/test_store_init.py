"""Jobs started at the same moment on new SQLite stores, and stores an earlier race left half-migrated.

Four real processes open a new MLflow tracking file and a new Optuna file through sedwatt's own code
at the same instant (a file barrier). Without the lock beside each file, MLflow's schema creation
collided in each of the 5 such starts tried ("table _alembic_tmp_metrics already exists", "Online
migration expected to match one row", "duplicate column name: step") and left the file half-migrated.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest

from sedwatt.errors import SedwattError
from sedwatt.search.storage import open_storage
from sedwatt.tracking import ensure_experiment

N_JOBS = 4
STUDY = "together"

# One job: what `sedwatt train` / `sedwatt search` do first, in their order, after a barrier.
JOB = r"""
import sys, time
from pathlib import Path

import mlflow, optuna

from sedwatt.search.storage import open_storage
from sedwatt.tracking import configure_tracking, ensure_experiment

barrier_dir, name, optuna_url, n = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])

def barrier(phase):
    (barrier_dir / f"{phase}-{name}").touch()
    deadline = time.monotonic() + 300
    while len(list(barrier_dir.glob(f"{phase}-*"))) < n and time.monotonic() < deadline:
        time.sleep(0.002)

barrier("mlflow")  # everything imported: all start together
configure_tracking()  # MLFLOW_TRACKING_URI: a file that does not exist yet
experiment_id = ensure_experiment("together")
client = mlflow.MlflowClient()
run_id = client.create_run(experiment_id, run_name=name).info.run_id
client.log_metric(run_id, "loss", 1.0)
client.set_terminated(run_id)

barrier("optuna")  # the same again on the new Optuna file
storage = open_storage(optuna_url, heartbeat_interval=2, grace_period=10, max_retry=None)
study = optuna.create_study(study_name="together", storage=storage, load_if_exists=True)
study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
print(run_id)
"""


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_jobs_starting_together_on_new_stores_all_succeed(tmp_path):
    mlflow_db, optuna_db = tmp_path / "stores" / "mlruns.db", tmp_path / "stores" / "optuna.db"
    uri, optuna_url = f"sqlite:///{mlflow_db}", f"sqlite:///{optuna_db}"
    barrier_dir = tmp_path / "barrier"
    barrier_dir.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    names = [f"job{i}" for i in range(N_JOBS)]
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, str(barrier_dir), name, optuna_url, str(N_JOBS)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
        for name in names
    ]
    outputs = [job.communicate(timeout=900)[0] for job in jobs]
    for name, job, output in zip(names, jobs, outputs, strict=True):
        assert job.returncode == 0, f"{name} failed:\n{output[-3000:]}"

    assert not any(t.startswith("_alembic_tmp_") for t in tables(mlflow_db) | tables(optuna_db))
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("together")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == names
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.info.run_id for r in runs) == sorted(out.strip().splitlines()[-1] for out in outputs)
    study = optuna.load_study(study_name=STUDY, storage=optuna_url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * N_JOBS


@pytest.fixture(scope="module")
def store_template(tmp_path_factory):
    """A real MLflow SQLite store with one experiment and one run, made the ordinary way (once: it takes seconds)."""
    db = tmp_path_factory.mktemp("template") / "mlruns.db"
    uri = f"sqlite:///{db}"
    client = mlflow.MlflowClient(uri)
    client.create_run(ensure_experiment("kept", uri))
    return db.read_bytes()


@pytest.fixture
def complete_store(store_template, tmp_path, monkeypatch):
    """A copy of the template store: a file this process has not opened yet."""
    db = tmp_path / "store" / "mlruns.db"
    db.parent.mkdir()
    db.write_bytes(store_template)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield db, uri
    mlflow.set_tracking_uri(None)


def break_like_a_race(db: Path, damage: str) -> None:
    from sedwatt.tracking import sqlite_init

    sqlite_init._prepared.discard(db)  # the next opening is as in a new process: the store is checked again
    with sqlite3.connect(db) as con:
        if damage == "leftover":  # where a four-way race on a new file stopped, here: revision and scratch table
            con.execute("UPDATE alembic_version SET version_num = 'a8c4a736bde6'")
            con.execute("CREATE TABLE _alembic_tmp_metrics AS SELECT * FROM metrics WHERE 0")
        elif damage == "no-version":
            con.execute("DROP TABLE alembic_version")
        else:  # a scratch table only, at the current revision
            con.execute("CREATE TABLE _alembic_tmp_params AS SELECT * FROM params WHERE 0")


@pytest.mark.parametrize(("damage", "detail"), [("leftover", "_alembic_tmp_metrics"), ("no-version", "no alembic_version")])
def test_a_half_migrated_tracking_store_is_one_line_and_left_alone(complete_store, tmp_path, damage, detail):
    db, uri = complete_store
    break_like_a_race(db, damage)
    before = db.read_bytes()
    with pytest.raises(SedwattError) as caught:
        ensure_experiment("another", uri)
    message = str(caught.value)
    assert "\n" not in message
    assert str(db) in message and detail in message and "half-migrated" in message
    assert "it holds 1 run(s)" in message and "restore a backup" in message
    assert db.read_bytes() == before  # reported, not "repaired"

    # every command that opens the store says the same, as its one error line, exit 2
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    cli = [sys.executable, "-c", "import sys; from sedwatt.cli import main; sys.exit(main(sys.argv[1:]))"]
    done = subprocess.run([*cli, "analyze", "--experiment", "kept", "--out", str(tmp_path / "report")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"sedwatt analyze: error: {message}"]
    assert db.read_bytes() == before


def test_scratch_tables_beside_a_complete_schema_are_dropped(complete_store, caplog):
    """The other outcome of such a race: one job finished every migration, another died mid-way."""
    db, uri = complete_store
    break_like_a_race(db, "scratch-only")
    assert ensure_experiment("kept", uri)
    assert "_alembic_tmp_params" not in tables(db)
    assert "dropped _alembic_tmp_params" in caplog.text
    assert len(mlflow.MlflowClient(uri).search_runs([ensure_experiment("kept", uri)])) == 1


@pytest.mark.parametrize("damage", ["leftover", "two-versions"])
def test_a_damaged_optuna_file_is_one_line(tmp_path, damage):
    db = tmp_path / "optuna.db"
    url = f"sqlite:///{db}"
    optuna.create_study(study_name="s", storage=url)
    with sqlite3.connect(db) as con:
        if damage == "leftover":
            con.execute("CREATE TABLE _alembic_tmp_trials AS SELECT * FROM trials WHERE 0")
        else:
            con.execute("INSERT INTO alembic_version VALUES ('v3.0.0.a')")
    before = db.read_bytes()
    with pytest.raises(SedwattError, match=r"half-migrated") as caught:
        open_storage(url, heartbeat_interval=2, grace_period=10, max_retry=None)
    assert "\n" not in str(caught.value) and str(db) in str(caught.value)
    assert db.read_bytes() == before


def test_the_two_kinds_of_file_are_not_mixed_up(complete_store, tmp_path):
    db, uri = complete_store
    with pytest.raises(SedwattError, match="MLflow tracking store, not an Optuna storage"):
        open_storage(uri, heartbeat_interval=2, grace_period=10, max_retry=None)
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="s", storage=optuna_url)
    with pytest.raises(SedwattError, match="Optuna storage, not an MLflow tracking store"):
        ensure_experiment("x", optuna_url)
