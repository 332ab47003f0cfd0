"""`sedwatt search` end to end on the tiny preset: real training, SQLite Optuna and MLflow stores.

What is checked against the stores themselves: the study holds N complete trials, its Pareto front
(recomputed here from the trial values) is exactly the non-dominated set, every trial run is nested
under the study's parent and holds per-epoch F1 and energy, the parent holds the growing report;
under ``mlflow run`` the project run becomes the parent; optuna-dashboard serves the storage.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
import requests
import torch

from sedwatt.cli import main
from sedwatt.config import load_config
from sedwatt.errors import SedwattError
from sedwatt.search.runs import PARENT_ATTR, RUN_ATTR
from sedwatt.search.space import SearchSpace
from sedwatt.search.study import SearchSettings, join_study, run_worker
from sedwatt.tracking import ensure_experiment
from servers import free_port

optuna.logging.set_verbosity(optuna.logging.WARNING)

@pytest.fixture(scope="module")
def one_thread():
    """Two shared cores: intra-op threads fighting other processes made epochs 4x slower here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def store(tmp_path_factory, fresh_store):
    root = tmp_path_factory.mktemp("search")
    return {"root": root, "uri": fresh_store(root), "cache": root / "mel-cache"}


@pytest.fixture
def tracking(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(store["root"])
    yield mlflow.MlflowClient(store["uri"])
    mlflow.set_tracking_uri(None)


def non_dominated(points: dict[int, tuple[float, float]]) -> set[int]:
    """Trials no other trial beats: F1 at least as high and energy at most as high, one strictly."""

    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    return {n for n, p in points.items() if not any(dominates(q, p) for m, q in points.items() if m != n)}


def history_steps(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_four_trial_search_on_the_tiny_preset(tiny_data, store, tracking, one_thread, capsys, search_overrides):
    client = tracking
    optuna_url = f"sqlite:///{store['root'] / 'optuna.db'}"
    space = store["root"] / "space.yaml"
    space.write_text("batch_size: [16, 32, 48, 64]\n")  # large batches: few steps per epoch
    argv = ["search", "--data", str(tiny_data), "--n-trials", "4", "--epochs", "1", "--storage", optuna_url,
            "--study-name", "tiny", "--space", str(space), "--enqueue", "--experiment", "search-test"]  # fmt: skip
    for item in search_overrides(store["root"], store["cache"]):
        argv += ["--set", item]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Pareto front:" in out and "optuna-dashboard sqlite:///" in out

    study = optuna.load_study(study_name="tiny", storage=optuna_url)
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert trials[0].params == {"batch_size": 48}  # --enqueue: the DCASE default first
    assert all(t.params["batch_size"] in (16, 32, 48, 64) for t in trials)

    parent_id = study.user_attrs[PARENT_ATTR]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sedwatt.kind"] == "search" and parent.data.tags["optuna.study_name"] == "tiny"
    assert client.get_experiment(parent.info.experiment_id).name == "search-test"
    # the report was refreshed after every finished trial
    assert sorted(history_steps(client, parent_id, "n_trials_complete")) == [1, 2, 3, 4]
    report_dir = Path(client.download_artifacts(parent_id, "study", str(store["root"] / "report")))
    assert {p.name for p in report_dir.iterdir()} >= {"pareto_front.csv", "pareto_front.png", "pareto_front.html", "study_summary.json"}
    front = pd.read_csv(report_dir / "pareto_front.csv")
    # the objectives are named as the trials' end-of-run metrics, in Optuna and in the report
    assert study.metric_names == ["max_val_f1", "energy_total_kwh"]
    assert list(front.columns[3:5]) == ["max_val_f1", "energy_total_kwh"]

    # The front: a subset of the trials, exactly the non-dominated ones, none dominating another.
    points = {t.number: (t.values[0], t.values[1]) for t in trials}
    assert set(front.trial) == set(points)
    on_front = set(front[front.pareto].trial)
    assert on_front and on_front <= set(points)
    assert on_front == non_dominated(points) == {t.number for t in study.best_trials}
    assert non_dominated({n: points[n] for n in on_front}) == on_front

    for trial in trials:
        run = client.get_run(trial.user_attrs[RUN_ATTR])
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.info.experiment_id == parent.info.experiment_id
        assert run.data.params["trial_number"] == str(trial.number)
        assert run.data.params["study_name"] == "tiny"
        assert run.data.params["batch_size"] == str(trial.params["batch_size"])
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert run.data.tags["sedwatt.kind"] == "train"
        f1 = history_steps(client, run.info.run_id, "val_f1")
        energy = history_steps(client, run.info.run_id, "energy_kwh")
        cumulative = history_steps(client, run.info.run_id, "energy_cum_kwh")
        assert sorted(f1) == sorted(energy) == sorted(cumulative) == [1]
        assert all(e > 0 for e in energy.values())
        assert cumulative[1] == pytest.approx(energy[1], rel=1e-6)
        # the trial's values are the default objectives: best per-epoch F1, total energy (one epoch here: how
        # they are taken from longer curves is test_search_units' objective_values)
        assert trial.values[0] == pytest.approx(max(f1.values()))
        assert trial.values[1] == pytest.approx(cumulative[1])
        assert run.data.metrics["energy_total_kwh"] == pytest.approx(cumulative[1])


def test_the_mlflow_run_project_run_becomes_the_parent(tiny_data, store, tracking, one_thread, monkeypatch, search_overrides):
    """Under `mlflow run -e search` MLFLOW_RUN_ID names the project run: trials nest under it, never resume it."""
    client = tracking
    experiment = client.create_experiment("project-exp")
    project_run = client.create_run(experiment).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run)
    optuna_url = f"sqlite:///{store['root'] / 'optuna-project.db'}"

    def settings(n_trials: int) -> SearchSettings:
        return SearchSettings(
            config_path=None,
            overrides=[*search_overrides(store["root"], store["cache"]), "train.epochs=1"],
            data=tiny_data,
            n_trials=n_trials,
            study_name="under-mlflow-run",
            storage=optuna_url,
            space=SearchSpace(batch_size=[64]),
            heartbeat_interval=2,
            grace_period=10,
        )

    run_worker(settings(1))
    assert "MLFLOW_RUN_ID" not in os.environ
    study = optuna.load_study(study_name="under-mlflow-run", storage=optuna_url)
    assert study.user_attrs[PARENT_ATTR] == project_run
    first = client.get_run(study.trials[0].user_attrs[RUN_ATTR])
    assert first.info.run_id != project_run
    assert first.data.tags["mlflow.parentRunId"] == project_run
    assert first.info.experiment_id == experiment  # trials live beside their parent
    assert client.get_run(project_run).data.tags["sedwatt.kind"] == "search"

    # A later worker asking for more trials continues the same study under the same parent.
    run_worker(settings(2))
    study = optuna.load_study(study_name="under-mlflow-run", storage=optuna_url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    second = client.get_run(study.trials[1].user_attrs[RUN_ATTR])
    assert second.data.tags["mlflow.parentRunId"] == project_run
    assert client.get_run(project_run).info.status == "FINISHED"
    runs = client.search_runs([experiment])
    assert len(runs) == 3  # the project run and two trials: no stray parent was made


def test_the_energy_stop_ends_a_real_trial_and_says_why(tiny_data, store, tracking, one_thread, search_overrides):
    """A finished trial that reached F1 = 1 for almost no energy: a new trial cannot catch up, so it stops."""
    optuna_url = f"sqlite:///{store['root'] / 'optuna-stop.db'}"
    study = optuna.create_study(study_name="stop", storage=optuna_url, directions=["maximize", "minimize"])
    dist = {"batch_size": optuna.distributions.CategoricalDistribution([64])}
    study.add_trial(optuna.create_trial(params={"batch_size": 64}, distributions=dist, values=[1.0, 1e-9]))
    settings = SearchSettings(
        config_path=None,
        overrides=[*search_overrides(store["root"], store["cache"]), "train.epochs=3"],
        data=tiny_data,
        n_trials=2,
        study_name="stop",
        storage=optuna_url,
        space=SearchSpace(batch_size=[64]),
        energy_stop_beta=1.0,
        heartbeat_interval=2,
        grace_period=10,
    )
    run_worker(settings)
    trial = optuna.load_study(study_name="stop", storage=optuna_url).trials[1]
    assert trial.state.name == "COMPLETE" and trial.user_attrs["epochs_run"] == 1
    reason = trial.user_attrs["stop_reason"]
    assert reason.startswith("pareto-energy") and "trial 0 (F1 1.000)" in reason
    run = tracking.get_run(trial.user_attrs[RUN_ATTR])
    assert run.data.tags["sedwatt.stop_reason"] == reason
    f1 = history_steps(tracking, run.info.run_id, "val_f1")
    assert sorted(f1) == [1]  # stopped after epoch 1 of 3
    assert trial.values == pytest.approx([f1[1], run.data.metrics["energy_total_kwh"]])


@pytest.mark.parametrize("precreated", [False, True])
def test_workers_joining_at_once_agree_on_one_parent(store, tracking, tmp_path, precreated):
    """The parent-run race: four workers open a new (or `optuna create-study`-made) study at the same moment."""
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    experiment = f"race-{precreated}"
    experiment_id = ensure_experiment(experiment)
    if precreated:
        optuna.create_study(study_name="race", storage=optuna_url, directions=["maximize", "minimize"])
    settings = SearchSettings(config_path=None, overrides=[], data=tmp_path, n_trials=1, study_name="race",
                              storage=optuna_url, space=SearchSpace(), heartbeat_interval=2, grace_period=10)  # fmt: skip
    base = load_config(None, [f"tracking.experiment={experiment}"])
    handles, errors = [], []

    def join():
        try:
            handles.append(join_study(settings, base, None))
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=join) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    parents = {h.parent_run_id for h in handles}
    assert len(parents) == 1
    assert sum(h.created for h in handles) == (0 if precreated else 1)
    active = tracking.search_runs([experiment_id], "tags.`sedwatt.kind` = 'search'")
    assert [r.info.run_id for r in active] == list(parents)  # the losers' runs were deleted
    assert optuna.get_all_study_names(optuna_url) == ["race"]  # no lock left behind


@pytest.mark.parametrize("deleted", [False, True])
def test_a_parent_run_missing_from_the_store_is_a_user_error(store, tracking, tmp_path, deleted):
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="lost", storage=optuna_url, directions=["maximize", "minimize"])
    if deleted:
        parent = tracking.create_run(ensure_experiment("lost-parent")).info.run_id
        tracking.delete_run(parent)
    else:
        parent = "0" * 32  # e.g. the study began against another tracking server
    study.set_user_attr(PARENT_ATTR, parent)
    settings = SearchSettings(config_path=None, overrides=[], data=tmp_path, n_trials=1, study_name="lost",
                              storage=optuna_url, space=SearchSpace(), heartbeat_interval=2, grace_period=10)  # fmt: skip
    with pytest.raises(SedwattError, match=parent) as err:
        join_study(settings, load_config(None), None)
    assert ("was deleted" in str(err.value)) == deleted and "\n" not in str(err.value)


def test_optuna_dashboard_serves_the_storage(tmp_path):
    """The README's `optuna-dashboard <storage>` line: starts on a sqlite storage and lists the study."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="dash", storage=url, directions=["maximize", "minimize"])
    study.add_trial(optuna.create_trial(params={}, distributions={}, values=[0.5, 0.01]))
    executable = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or shutil.which("optuna-dashboard")
    assert executable, "optuna-dashboard is a dependency: it must be installed"
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path)}  # gunicorn writes ~/.gunicorn
    proc = subprocess.Popen(
        [executable, url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            with contextlib.suppress(requests.RequestException):
                response = requests.get(f"http://127.0.0.1:{port}/api/studies", timeout=2)
                if response.status_code == 200:
                    break
            assert time.monotonic() < deadline, "optuna-dashboard did not answer within 60 s"
            time.sleep(0.3)
        studies = response.json()["study_summaries"]
        assert [s["study_name"] for s in studies] == ["dash"]
        assert studies[0]["directions"] == ["maximize", "minimize"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
