"""`sedwatt search` points registry aliases at its Pareto models: @best-f1 and @lowest-energy."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import optuna
import pytest

from sedwatt.cli import main
from sedwatt.search.aliases import BEST_F1, LOWEST_ENERGY, alias_slug, front_choices
from sedwatt.search.runs import RUN_ATTR

TINY = ["data.clip_seconds=4.0", "features.n_mels=32", "model.channels=[8,16]", "model.pools=[[2,4],[2,8]]",
        "model.rnn_hidden=8", "model.fast_dropout=true", "train.patience=null", "train.progress=false",
        "energy.measure_power_secs=1", "tracking.log_checkpoints=false",
        "tracking.registered_model_name=alias-test"]  # fmt: skip


def trial(number: int, f1: float, kwh: float) -> SimpleNamespace:
    return SimpleNamespace(number=number, values=[f1, kwh])


def test_front_choices_by_hand():
    front = [trial(0, 0.30, 0.010), trial(3, 0.50, 0.040), trial(5, 0.42, 0.020)]
    chosen = front_choices(front)
    assert chosen[BEST_F1].number == 3 and chosen[LOWEST_ENERGY].number == 0
    # ties: the same F1 → the one with less energy; the same energy → the one with more F1
    chosen = front_choices([trial(1, 0.5, 0.03), trial(2, 0.5, 0.02), trial(4, 0.1, 0.02)])
    assert chosen[BEST_F1].number == 2 and chosen[LOWEST_ENERGY].number == 2
    assert front_choices([]) == {}
    assert alias_slug("my study/2026") == "my-study-2026"


@pytest.mark.slow
def test_search_sets_aliases_on_its_front(tiny_data, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = tmp_path / "space.yaml"
    space.write_text("batch_size: [16, 32, 48]\n")
    argv = ["search", "--data", str(tiny_data), "--n-trials", "3", "--epochs", "1", "--storage", storage,
            "--study-name", "alias study", "--space", str(space), "--experiment", "aliases",
            "--set", f"train.out_dir={tmp_path / 'out'}", "--set", f"data.cache_dir={tmp_path / 'mel'}"]  # fmt: skip
    for item in TINY:
        argv += ["--set", item]
    try:
        assert main(argv) == 0
    finally:
        mlflow.set_tracking_uri(None)
    study = optuna.load_study(study_name="alias study", storage=storage)
    expected = front_choices(study.best_trials)
    client = mlflow.MlflowClient(uri)
    for alias, chosen in expected.items():
        for name in (alias, f"{alias}-alias-study"):
            version = client.get_model_version_by_alias("alias-test", name)
            assert version.run_id == chosen.user_attrs[RUN_ATTR], name
    # every trial registered a version; the aliases point at front trials only
    assert len(client.search_model_versions("name = 'alias-test'")) == 3
    front_runs = {t.user_attrs[RUN_ATTR] for t in study.best_trials}
    assert client.get_model_version_by_alias("alias-test", BEST_F1).run_id in front_runs
