"""Fixtures shared across test files; add yours below.

The real-service fixtures (a throwaway PostgreSQL cluster, moto's S3 server, the team MLflow server)
live in servers.py and start once per session, only when a test asks for them. The tiny model
(``tiny_overrides`` / ``tiny_config``) is the one every training test uses: seconds per epoch on the
generator's tiny preset (``tiny_data``); ``tiny_run`` is one real ``sedwatt train`` of it, made once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from served_store import served  # noqa: F401
from servers import mlflow_team_server, pg_cluster, s3_endpoint  # noqa: F401

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
def tiny_run(tiny_data, tmp_path_factory):
    """One real ``sedwatt train`` of the tiny model (energy measured, model registered) in a SQLite store.

    Shared by the tests that read what a training run records; ``client``, ``experiment``, ``run``,
    ``version`` (the registered model's version 1), ``uri``.
    """
    import mlflow

    from sedwatt.cli import main

    tmp_path = tmp_path_factory.mktemp("tiny-run")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
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
