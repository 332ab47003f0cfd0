"""A retried trial whose dead predecessor's run FINISHED takes that run's values and trains nothing.

The predecessor is made as a killed worker leaves it: a RUNNING trial with a heartbeat and an MLflow
run, whose heartbeat then goes stale; Optuna's own stale-trial check fails it and queues the retry.
The worker's ``train_run`` is replaced by one that raises, so any training is seen.
"""

from __future__ import annotations

import time
import warnings

import mlflow
import optuna
import pytest
from mlflow.entities import Metric

from sedwatt.search.runs import PARENT_ATTR, RUN_ATTR, WORKER_ATTR
from sedwatt.search.space import SearchSpace
from sedwatt.search.storage import open_storage, quiet_optuna_warnings
from sedwatt.search.study import REUSED_ATTR, SearchSettings, run_worker
from sedwatt.tracking import ensure_experiment

optuna.logging.set_verbosity(optuna.logging.WARNING)

# (step, val_f1, energy_cum_kwh, cum_time_s); step 2 is logged twice (a resumed run): the later values count.
LOGGED = [(1, 0.30, 1.0e-4, 10.0), (2, 0.55, 2.0e-4, 20.0), (2, 0.50, 2.1e-4, 21.0), (3, 0.45, 3.0e-4, 30.0)]
BEST_F1, TOTAL_KWH = 0.50, 3.0e-4  # best of the last value per step; cumulative energy at the last epoch


class Trained(Exception):
    """Raised by the stand-in train_run: the worker tried to train."""


@pytest.fixture
def dead_predecessor(tiny_data, tmp_path, monkeypatch, search_overrides):
    """(settings, client, run id, set_status): a study with one FAIL trial (stale heartbeat) and its queued retry."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    client = mlflow.MlflowClient(uri)
    experiment = ensure_experiment("adopt", uri)
    parent = client.create_run(experiment, tags={"sedwatt.kind": "search"}).info.run_id
    run_id = client.create_run(experiment, tags={"sedwatt.kind": "train", "mlflow.parentRunId": parent}).info.run_id
    metrics = []
    for i, (step, f1, energy, seconds) in enumerate(LOGGED):
        stamp = 1_000_000 + 1000 * i
        metrics += [Metric("val_f1", f1, stamp, step), Metric("energy_cum_kwh", energy, stamp, step),
                    Metric("cum_time_s", seconds, stamp, step)]  # fmt: skip
    client.log_batch(run_id, metrics=metrics)

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url, heartbeat_interval=1, grace_period=2, max_retry=2)
    study = optuna.create_study(study_name="adopt", storage=storage, directions=["maximize", "minimize"])
    study.set_user_attr(PARENT_ATTR, parent)
    space = SearchSpace(batch_size=[64])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)  # ask() is what a worker's optimize does
        trial = study.ask()
    space.suggest(trial)
    trial.set_user_attr(WORKER_ATTR, "elsewhere:1")
    trial.set_user_attr(RUN_ATTR, run_id)
    storage.record_heartbeat(trial._trial_id)
    time.sleep(3)  # the worker "died": no heartbeat for longer than the grace period
    with quiet_optuna_warnings():
        optuna.storages.fail_stale_trials(study)
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "WAITING"]

    settings = SearchSettings(
        config_path=None,
        overrides=search_overrides(tmp_path, tmp_path / "mel-cache"),
        data=tiny_data,
        n_trials=1,
        study_name="adopt",
        storage=url,
        space=space,
        heartbeat_interval=1,
        grace_period=2,
    )
    return settings, client, run_id


def refuse_training(monkeypatch) -> list[str]:
    calls: list[str] = []

    def train_run(config, data, **kwargs):
        calls.append(kwargs.get("run_name", ""))
        raise Trained(kwargs.get("run_name"))

    monkeypatch.setattr("sedwatt.runner.train_run", train_run)
    return calls


def test_a_retry_adopts_its_predecessors_finished_run(dead_predecessor, monkeypatch):
    settings, client, run_id = dead_predecessor
    client.set_terminated(run_id, "FINISHED")  # the worker died between ending its run and telling the study
    calls = refuse_training(monkeypatch)
    study = run_worker(settings)
    assert calls == []  # nothing trained
    dead, retry = study.trials
    assert (dead.state.name, retry.state.name) == ("FAIL", "COMPLETE")
    assert retry.params == dead.params
    assert retry.values == pytest.approx([BEST_F1, TOTAL_KWH])
    assert retry.user_attrs[RUN_ATTR] == run_id and retry.user_attrs[REUSED_ATTR] is True
    assert retry.user_attrs["epochs_run"] == 3
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["optuna.reused_by_trial"] == str(retry.number)
    train_runs = client.search_runs([run.info.experiment_id], "tags.`sedwatt.kind` = 'train'")
    assert [r.info.run_id for r in train_runs] == [run_id]  # no new training run
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"]).data.params
    assert (parent["study_name"], parent["sampler"], parent["n_trials"]) == ("adopt", settings.sampler, str(settings.n_trials))
    assert parent["objective_f1"] == "max_val_f1 (best), maximize"
    assert parent["objective_energy"] == "energy_total_kwh (total), minimize"
    assert '"batch_size"' in parent["space"] and parent["energy_stop_beta"] == "off"


@pytest.mark.parametrize("status", ["KILLED", "RUNNING"])
def test_a_retry_trains_again_when_its_predecessors_run_did_not_finish(dead_predecessor, monkeypatch, status, capsys):
    settings, client, run_id = dead_predecessor
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    calls = refuse_training(monkeypatch)
    with pytest.raises(Trained):
        run_worker(settings)
    retry = optuna.load_study(study_name="adopt", storage=settings.storage).trials[1]
    batch = retry.params["batch_size"]
    assert calls == [f"trial 1 · batch {batch}"]
    header = [line for line in capsys.readouterr().out.splitlines() if line.startswith("── trial 1:")]
    assert len(header) == 1 and f"batch_size {batch}," in header[0] and "retrying trial 0)" in header[0]
    assert not retry.user_attrs.get(REUSED_ATTR) and retry.user_attrs.get(RUN_ATTR) is None
