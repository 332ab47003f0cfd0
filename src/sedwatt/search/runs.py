"""The MLflow side of a study: one parent run shared by every worker, trial runs nested under it.

The parent run's id is a study user attribute, so every worker on every machine nests its trials
under the same run. Who makes it must be decided once: the worker whose ``create_study`` succeeds
(a unique insert, so exactly one wins) records its run right away; the others wait for that
attribute. When the study was made beforehand (``optuna create-study``) and has no parent yet,
workers take a lock (``claim_parent``) and the first one records its run. Every trial rereads the
attribute, so even a parent recorded late is the one all later trials nest under.

Under ``mlflow run -e search`` the project's run (``MLFLOW_RUN_ID``) is this worker's candidate for
the parent; a worker whose candidate loses tags its project run with the real parent's id.
A worker killed mid-trial leaves its trial run RUNNING: ``OrphanRunCloser`` marks it KILLED once the
trial has been declared dead (FAIL) by the heartbeat check.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from sedwatt.errors import SedwattError
from sedwatt.training.callbacks import Callback, RunState

logger = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
EPOCHS_RUN_ATTR = "epochs_run"
WORKER_ATTR = "worker"
KILLED_REASON = "worker died; the study's heartbeat check failed this trial and queued a retry"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def parent_tags(study_name: str) -> dict[str, str]:
    return {"sedwatt.kind": "search", "optuna.study_name": study_name}


def create_parent_run(experiment_id: str, study_name: str) -> str:
    from mlflow import MlflowClient

    tags = {**parent_tags(study_name), "mlflow.runName": f"study {study_name}"}
    return MlflowClient().create_run(experiment_id, tags=tags).info.run_id


def adopt_run(run_id: str, study_name: str) -> None:
    """Make an existing run (the ``mlflow run`` project run) the study's parent."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for key, value in parent_tags(study_name).items():
        client.set_tag(run_id, key, value)


def log_study_params(run_id: str, params: dict[str, str]) -> None:
    """The study's settings as the parent run's params (MLflow's run table and Compare view show them).

    Every worker logs them: equal values are skipped, a worker started with other settings keeps its
    values as ``sedwatt.<key>`` (``reconcile_params``, through ``apply_op``) instead of crashing on
    MLflow's immutable params.
    """
    from mlflow import MlflowClient

    from sedwatt.tracking.resilient import apply_op, params_op

    try:
        apply_op(params_op(run_id, params), MlflowClient())
    except Exception as exc:  # noqa: BLE001 - the study goes on; its params are only a summary
        logger.warning("could not log the study's params on its parent run %s: %s", run_id, exc)


def wait_for_parent(study: Any, timeout_s: float, poll_s: float = 0.2) -> str | None:
    """The parent id another worker is about to record, or None after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        parent = current_parent(study)
        if parent or time.monotonic() >= deadline:
            return parent
        time.sleep(poll_s)


def current_parent(study: Any) -> str | None:
    return study.user_attrs.get(PARENT_ATTR)  # read from the storage every time (never cached)


def claim_parent(study: Any, storage: Any, run_id: str, wait_s: float, settle_s: float = 1.0) -> str:
    """Record ``run_id`` as parent unless one exists, under a lock; returns the study's parent.

    The lock is a second study, ``<name>.parent-lock``: creating a study is a unique insert, so one
    worker holds it, checks again and writes; the others wait for what it wrote. A lock left behind
    by a worker that died holding it ends in last-write-wins after ``wait_s``.
    """
    import optuna

    lock = f"{study.study_name}.parent-lock"
    try:
        optuna.create_study(study_name=lock, storage=storage)
    except optuna.exceptions.DuplicatedStudyError:
        parent = wait_for_parent(study, wait_s)
        if parent:
            return parent
        logger.warning("study %s: stale %s, recording the parent run without it", study.study_name, lock)
        study.set_user_attr(PARENT_ATTR, run_id)
        time.sleep(settle_s)
        return current_parent(study) or run_id
    try:
        if not current_parent(study):
            study.set_user_attr(PARENT_ATTR, run_id)
        return current_parent(study) or run_id
    finally:
        optuna.delete_study(study_name=lock, storage=storage)


def reopen_parent(run_id: str) -> None:
    """Check the recorded parent is usable here; a later search on a finished study shows it running again."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from sedwatt.tracking.uri import redact_uri

    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise SedwattError(
            f"the study's parent MLflow run {run_id} is not in {redact_uri(mlflow.get_tracking_uri())}: "
            "set MLFLOW_TRACKING_URI to the store the study started with, or use another --study-name"
        ) from None
    if run.info.lifecycle_stage == "deleted":
        raise SedwattError(
            f"the study's parent MLflow run {run_id} was deleted: restore it (mlflow runs restore --run-id "
            f"{run_id}) or use another --study-name"
        )
    if run.info.status != "RUNNING":
        client.update_run(run_id, status="RUNNING")


def end_parent(run_id: str, status: str = "FINISHED") -> None:
    from mlflow import MlflowClient

    try:
        MlflowClient().set_terminated(run_id, status=status)
    except Exception as exc:  # noqa: BLE001 - the trials are safe; only the parent's status is late
        logger.warning("could not end the study's parent run %s: %s", run_id, exc)


def experiment_name_of(run_id: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient()
    return client.get_experiment(client.get_run(run_id).info.experiment_id).name


class TrialLink(Callback):
    """Ties an Optuna trial to its MLflow run as soon as the run exists (so a dead trial's run can be closed).

    Its MLflow writes go through the run's resilient logger (the one its tracking callback uses), so a
    tracking-server outage as the trial starts queues them instead of failing the trial.
    """

    def __init__(self, trial: Any, retried_from: int | None = None) -> None:
        self.trial = trial
        self.retried_from = retried_from

    def on_train_start(self, state: RunState) -> None:
        import mlflow

        from sedwatt.tracking.callback import spool_path_for
        from sedwatt.tracking.resilient import batch_op, logger_for, params_op

        run = mlflow.active_run()  # local state: no request
        if run is None:
            return
        run_id = run.info.run_id
        self.trial.set_user_attr(RUN_ATTR, run_id)
        log = logger_for(spool_path_for(state.out_dir))
        log.submit(params_op(run_id, {"trial_number": self.trial.number, "study_name": self.trial.study.study_name}))
        tags = {"optuna.retried_from": str(self.retried_from)} if self.retried_from is not None else {}
        log.submit(batch_op(run_id, {"trial_number": float(self.trial.number)}, step=0, tags=tags))


class OrphanRunCloser:
    """Marks the MLflow runs of trials that died with their worker (FAIL, run still RUNNING) as KILLED."""

    def __init__(self) -> None:
        self.checked: set[str] = set()

    def __call__(self, study: Any) -> list[str]:
        import optuna
        from mlflow import MlflowClient

        client = MlflowClient()
        closed = []
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            run_id = trial.user_attrs.get(RUN_ATTR)
            if not run_id or run_id in self.checked:
                continue
            try:
                if client.get_run(run_id).info.status == "RUNNING":
                    client.set_tag(run_id, "sedwatt.stop_reason", KILLED_REASON)
                    client.set_terminated(run_id, status="KILLED")
                    closed.append(run_id)
                self.checked.add(run_id)
            except Exception as exc:  # noqa: BLE001 - try again after the next trial
                logger.warning("could not close the run %s of failed trial %d: %s", run_id, trial.number, exc)
        return closed
