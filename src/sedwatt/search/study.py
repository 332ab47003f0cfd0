"""A search worker: open (or create) the shared study, then train trials until the study has N of them.

Several workers on one or several machines run this against the same storage. Each trial is one
ordinary tracked training run (``sedwatt.runner.train_run``), nested under the study's parent MLflow
run. RDB heartbeats mark a killed worker's trial FAIL and ``RetryHeartbeatStaleTrialCallback``
re-queues its parameters, which the next free worker picks up. A worker trains a trial only while
complete + running (+ queued) trials are fewer than N, so N trials are trained once each.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sedwatt.config import SedwattConfig, load_config
from sedwatt.errors import SedwattError
from sedwatt.search.objectives import METRIC_NAMES, EnergyObjective, F1Objective, objective_values
from sedwatt.search.space import SearchSpace, overrides_for
from sedwatt.training.callbacks import Callback, RunState

PARENT_ATTR = "mlflow_parent_run_id"


@dataclass
class SearchSettings:
    config_path: str | None
    overrides: list[str]
    data: Path
    n_trials: int
    study_name: str
    storage: str
    space: SearchSpace
    sampler: str = "nsga2"
    seed: int = 42
    enqueue_default: bool = False
    f1_objective: F1Objective = "best"
    energy_objective: EnergyObjective = "total"
    energy_stop_beta: float | None = None
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 2


def default_storage() -> str:
    from sedwatt.tracking import project_home

    return f"sqlite:///{project_home() / 'optuna.db'}"


def make_sampler(name: str, seed: int) -> Any:
    import optuna

    samplers = {
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    if name not in samplers:
        raise SedwattError(f"--sampler {name!r}: expected one of {', '.join(samplers)}")
    return samplers[name]()


def open_storage(url: str, settings: SearchSettings) -> Any:
    """RDB storage with heartbeats; two workers creating a fresh schema at once race, so retry that."""
    import sqlalchemy.exc
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

    @retry(
        retry=retry_if_exception_type(sqlalchemy.exc.DBAPIError),
        stop=stop_after_attempt(6),
        wait=wait_random(0.2, 1.5),
        reraise=True,
    )
    def connect() -> RDBStorage:
        return RDBStorage(
            url,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry),
        )

    try:
        with _quiet_experimental():
            return connect()
    except (sqlalchemy.exc.ArgumentError, ImportError, ValueError) as exc:
        raise SedwattError(f"--storage: cannot open {optuna_safe(url)} ({exc.__class__.__name__}: {exc})") from None
    except sqlalchemy.exc.OperationalError as exc:
        raise SedwattError(f"--storage: cannot reach {optuna_safe(url)} ({str(exc.orig).splitlines()[0]})") from None


def optuna_safe(url: str) -> str:
    """A storage URL without its password, for messages and tags."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


class _quiet_experimental:
    def __enter__(self) -> None:
        import warnings

        import optuna

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def open_study(settings: SearchSettings) -> Any:
    import optuna

    storage = open_storage(settings.storage, settings)
    with _quiet_experimental():
        study = optuna.create_study(
            study_name=settings.study_name,
            storage=storage,
            directions=["maximize", "minimize"],
            sampler=make_sampler(settings.sampler, settings.seed),
            load_if_exists=True,
        )
    if [d.name for d in study.directions] != ["MAXIMIZE", "MINIMIZE"]:
        raise SedwattError(f"study {settings.study_name!r} exists with other directions; use another --study-name")
    study.set_metric_names(list(METRIC_NAMES))
    if settings.enqueue_default:
        default = settings.space.enqueue_default()
        if default is not None:
            study.enqueue_trial(default, skip_if_exists=True)
    return study


def parent_run(study: Any, config: SedwattConfig, candidate: str | None) -> str:
    """The study's one parent run, shared by all workers (stored as a study user attribute)."""
    from mlflow import MlflowClient

    from sedwatt.tracking import ensure_experiment

    existing = study.user_attrs.get(PARENT_ATTR)
    if existing:
        return existing
    client = MlflowClient()
    tags = {"sedwatt.kind": "search", "optuna.study_name": study.study_name, "mlflow.runName": f"study {study.study_name}"}
    if candidate:
        run_id = candidate
        client.set_tag(run_id, "sedwatt.kind", "search")
        client.set_tag(run_id, "optuna.study_name", study.study_name)
    else:
        run_id = client.create_run(ensure_experiment(config.tracking.experiment), tags=tags).info.run_id
    study.set_user_attr(PARENT_ATTR, run_id)
    time.sleep(0.5)  # two workers racing: the last write wins, the loser drops its own run
    winner = study.user_attrs.get(PARENT_ATTR)
    if winner != run_id and not candidate:
        client.delete_run(run_id)
    return winner


class _TrialLink(Callback):
    """Ties the trial to its MLflow run as soon as the run starts (so a killed trial's run can be closed)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def on_train_start(self, state: RunState) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is not None:
            self.trial.set_user_attr("mlflow_run_id", run.info.run_id)
            mlflow.log_params({"trial_number": self.trial.number, "study_name": self.trial.study.study_name})


def close_orphan_runs(study: Any) -> None:
    """Mark the MLflow runs of trials that died with their worker as KILLED."""
    import optuna
    from mlflow import MlflowClient

    client = MlflowClient()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id or trial.user_attrs.get("mlflow_run_closed"):
            continue
        try:
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, status="KILLED")
                client.set_tag(run_id, "sedwatt.stop_reason", "worker died; trial retried by another worker")
            study._storage.set_trial_user_attr(trial._trial_id, "mlflow_run_closed", True)
        except Exception:
            continue


def run_worker(settings: SearchSettings) -> Any:
    """Work the study until it holds ``n_trials`` complete trials; returns the study."""
    import optuna

    from sedwatt.runner import train_run
    from sedwatt.search.report import log_study_report
    from sedwatt.tracking import configure_tracking

    configure_tracking()
    base = load_config(settings.config_path, settings.overrides)
    # Under `mlflow run -e search` the project's run becomes the study parent. Trials must not
    # resume it through MLFLOW_RUN_ID (stack notes §1.3), so take it out of the environment.
    candidate = os.environ.pop("MLFLOW_RUN_ID", None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(settings)
    parent = parent_run(study, base, candidate)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        params = settings.space.suggest(trial)
        config = load_config(settings.config_path, [*settings.overrides, *overrides_for(params)])
        callbacks: list[Callback] = [_TrialLink(trial)]
        if settings.energy_stop_beta is not None:
            from sedwatt.search.energy_stop import ParetoEnergyStop

            callbacks.insert(0, ParetoEnergyStop(study, trial, settings.energy_stop_beta))
        outcome = train_run(
            config,
            settings.data,
            run_name=f"trial {trial.number}",
            parent_run_id=parent,
            extra_tags={"optuna.study_name": study.study_name, "optuna.trial_number": str(trial.number)},
            extra_callbacks=callbacks,
        )
        f1, energy = objective_values(outcome.state.history, settings.f1_objective, settings.energy_objective)
        import mlflow

        mlflow.MlflowClient().log_metric(outcome.run_id, "trial_number", float(trial.number))
        return f1, energy

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log_study_report(study, parent)

    while True:
        with _quiet_experimental():
            optuna.storages.fail_stale_trials(study)
        close_orphan_runs(study)
        trials = study.get_trials(deepcopy=False)
        count = {s: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
        complete = count[optuna.trial.TrialState.COMPLETE]
        running = count[optuna.trial.TrialState.RUNNING]
        waiting = count[optuna.trial.TrialState.WAITING]
        if complete >= settings.n_trials:
            break
        if waiting == 0 and complete + running >= settings.n_trials:
            time.sleep(min(settings.heartbeat_interval, 5))  # the rest is in other workers' hands
            continue
        with _quiet_experimental():
            study.optimize(objective, n_trials=1, callbacks=[after_trial], gc_after_trial=True)

    log_study_report(study, parent)
    from mlflow import MlflowClient

    if not any(t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
        MlflowClient().set_terminated(parent, status="FINISHED")
    return study
