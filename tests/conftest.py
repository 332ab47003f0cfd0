"""Fixtures shared across test files; add yours below.

The real-service fixtures (a throwaway PostgreSQL cluster, moto's S3 server, the team MLflow server)
live in servers.py, the tracking server an outage test switches off in outage.py; each starts once per
session, only when a test asks for it. The tiny model
(``tiny_overrides`` / ``tiny_config``) is the one every training test uses: seconds per epoch on the
generator's tiny preset (``tiny_data``); ``tiny_run`` is one real ``sedwatt train`` of it, made once.
``fresh_store(folder)`` gives a test an empty MLflow SQLite store without paying for MLflow's migrations;
``tiny_model`` is a one-epoch tiny CRNN registered in a store of its own, the model that test_evaluate
evaluates and test_pyfunc_model serves.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest

from outage import outage_server, outage_tracking  # noqa: F401
from served_store import served  # noqa: F401
from servers import mlflow_team_server, optuna_db, pg_cluster, s3_endpoint  # noqa: F401

# The tiny CRNN and run: 3 epochs of a few steps on 4 s clips, no early stopping, no progress bars.
TINY_OVERRIDES = (
    "data.clip_seconds=4.0",
    "features.n_mels=32",
    "model.channels=[8,16,16]",
    "model.pools=[[2,2],[2,4],[1,4]]",
    "model.rnn_hidden=16",
    "model.fast_dropout=true",
    "train.batch_size=8",
    "train.epochs=3",
    "train.rampup_epochs=1",
    "train.patience=null",
    "train.progress=false",
)
# What a search sets itself (batch size, epochs) left out; no model registered per trial.
SEARCH_OVERRIDES = (
    *(item for item in TINY_OVERRIDES if not item.startswith(("train.batch_size=", "train.epochs="))),
    "tracking.log_model=false",
    "tracking.registered_model_name=null",
    "energy.measure_power_secs=1",
)
TINY_MODEL_NAME = "crnn-tiny"  # tiny_model's registered name (test_evaluate, test_pyfunc_model spell it too)


def copy_store(template: Path, folder: Path) -> str:
    """The URI of a copy of the migrated ``template`` at ``folder/mlruns.db``, as if the store was made there.

    The file is copied before anything connects to the copy; the only path a new store holds, its
    Default experiment's artifact location, is pointed beside the copy (``mlartifacts/0``), as
    ``prepare_sqlite_store`` would have made it there.
    """
    from sedwatt.tracking.uri import ARTIFACTS_DIR, DB_NAME

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / DB_NAME
    assert not db.exists(), f"{db}: a store is already there"
    shutil.copyfile(template, db)
    with closing(sqlite3.connect(db)) as con, con:
        updated = con.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (f"{(folder.resolve() / ARTIFACTS_DIR).as_uri()}/0",),
        ).rowcount
    assert updated == 1, f"{template}: no Default experiment to move"
    return f"sqlite:///{db}"


@pytest.fixture(scope="session")
def fresh_store(tmp_path_factory) -> Callable[[Path], str]:
    """``fresh_store(folder)``: the URI of a new, empty MLflow SQLite store at ``folder/mlruns.db``.

    A new store costs MLflow's ~60 Alembic migrations (~2.5 s, more on a slow disk) and some 40 tests
    need one: the schema is built once per session (by sedwatt's own ``prepare_sqlite_store``, at
    MLflow's head revision) and each store is a copy of that file (``copy_store``).
    tests/test_store_init.py makes its stores from nothing, which is what it tests.
    """
    from mlflow.store.db.utils import _get_latest_schema_revision

    from sedwatt.tracking.sqlite_init import prepare_sqlite_store, read_schema

    folder = tmp_path_factory.mktemp("store-template")
    prepare_sqlite_store(f"sqlite:///{folder / 'mlruns.db'}")
    template = folder / "mlruns.db"
    schema = read_schema(template)
    assert schema.versions == (str(_get_latest_schema_revision()),) and not schema.leftovers, schema
    return lambda where: copy_store(template, where)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The generator's tiny preset with 4 s clips, made once per test session."""
    from sedwatt.cli import main

    root = tmp_path_factory.mktemp("tiny") / "data"
    assert main(["make-data", str(root), "--preset", "tiny", "--seed", "1", "--clip-seconds", "4"]) == 0
    return root


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """The tiny model's ``--set`` items (add a ``data.cache_dir`` of the test's own)."""
    return list(TINY_OVERRIDES)


@pytest.fixture
def tiny_config(tmp_path) -> Callable[..., object]:
    """``tiny_config(*extra)``: the tiny model's config, its mel cache in this test's folder."""
    from sedwatt.config import load_config

    def make(*extra: str):
        return load_config(None, [*TINY_OVERRIDES, f"data.cache_dir={tmp_path / 'cache'}", *extra])

    return make


@pytest.fixture(scope="session")
def tiny_training_data(tiny_data, tmp_path_factory):
    """The tiny preset as the tiny model's ``TrainingData``, built once (any ``tiny_config`` may train on it)."""
    from sedwatt.config import load_config
    from sedwatt.data.datasets import build_training_data
    from sedwatt.data.scan import load_clips

    config = load_config(None, [*TINY_OVERRIDES, f"data.cache_dir={tmp_path_factory.mktemp('tiny-cache')}"])
    return build_training_data(load_clips(tiny_data, config), config)


@pytest.fixture(scope="session")
def search_overrides() -> Callable[[Path, Path], list[str]]:
    """``search_overrides(root, cache)``: the tiny model for a search's trials, outputs under ``root``."""

    def make(root: Path, cache: Path) -> list[str]:
        return [*SEARCH_OVERRIDES, f"data.cache_dir={cache}", f"train.out_dir={root / 'outputs'}"]

    return make


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory, fresh_store):
    """One real ``sedwatt train`` of the tiny model (energy measured, model registered) in a SQLite store.

    Shared by the tests that read what a training run records; ``client``, ``experiment``, ``run``,
    ``version`` (the registered model's version 1), ``uri``.
    """
    import mlflow

    from sedwatt.cli import main

    tmp_path = tmp_path_factory.mktemp("tiny-run")
    uri = fresh_store(tmp_path)
    argv = ["train", "--data", str(tiny_data), "--epochs", "3", "--seed", "5", "--experiment", "conventions"]
    for item in (*TINY_OVERRIDES, "energy.measure_power_secs=1", "tracking.registered_model_name=tiny-run",
                 f"train.out_dir={tmp_path / 'out'}", f"data.cache_dir={tmp_path / 'cache'}"):  # fmt: skip
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
    version = client.get_model_version("tiny-run", "1")
    return SimpleNamespace(client=client, experiment=experiment, run=run, version=version, uri=uri)


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory, fresh_store):
    """A one-epoch tiny CRNN trained through the real ``train_run`` (energy measured) and registered as
    version 1 of ``crnn-tiny``, in a store of its own: ``uri``, ``run_id``, ``config``, ``name``.

    Trained once for test_evaluate (which evaluates it and calibrates into its store) and
    test_pyfunc_model (which serves it); they add runs and other registered names, never a version of it.
    """
    import mlflow

    from sedwatt.config import load_config
    from sedwatt.runner import train_run

    work = tmp_path_factory.mktemp("tiny-model")
    uri = fresh_store(work / "store")
    config = load_config(None, [
        *TINY_OVERRIDES, "train.epochs=1", "train.batch_size=32",  # 2 steps: the model only has to exist
        f"data.cache_dir={work / 'cache'}", f"train.out_dir={work / 'out'}", "energy.measure_power_secs=1",
        f"tracking.registered_model_name={TINY_MODEL_NAME}", "tracking.experiment=tiny-model",
    ])  # fmt: skip
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
        monkeypatch.chdir(work)
        try:
            outcome = train_run(config, tiny_data)
        finally:
            mlflow.set_tracking_uri(None)
    return SimpleNamespace(uri=uri, run_id=outcome.run_id, config=config, name=TINY_MODEL_NAME)
