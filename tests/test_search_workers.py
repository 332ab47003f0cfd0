"""Two `sedwatt search` workers on one throwaway PostgreSQL study; one is SIGKILLed mid-trial.

Both start at the same instant on a fresh database (the schema-creation race, the study-creation
race, the parent-run race), log to one SQLite MLflow store, and must share 6 trials without
training any trial twice. The killed worker's trial must be failed by the survivor's heartbeat
check and retried with the same parameters. The kill lands in one of two places, and both must end
with every trial trained once: mid-training (the orphaned run is marked KILLED and the retry trains
anew), or after the trial's run FINISHED but before its worker told the study (the retry adopts
that run and trains nothing).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mlflow
import optuna
import psycopg
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback

from sedwatt.search.runs import PARENT_ATTR, RUN_ATTR, WORKER_ATTR
from sedwatt.search.study import REUSED_ATTR
from sedwatt.tracking import ensure_experiment

pytestmark = pytest.mark.integration

N_TRIALS = 6
STUDY = "shared"
EXPERIMENT = "workers"
WORKER = "import sys; from sedwatt.cli import main; sys.exit(main(sys.argv[1:]))"


def study_exists(name: str, admin: dict) -> bool:
    """Asked without Optuna, which would create the schema itself and spoil the workers' race."""
    with psycopg.connect(dbname=name, **admin) as conn:
        if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0] is None:
            return False
        return conn.execute("SELECT count(*) FROM studies WHERE study_name = %s", (STUDY,)).fetchone()[0] > 0


def start_worker(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def freeze_a_training_worker(study, workers: list[subprocess.Popen]):
    """(worker, its trial) for a worker whose trial is still RUNNING while it is stopped (SIGSTOP), else (None, None).

    A trial seen RUNNING can be told COMPLETE an instant later; stopping the worker first, then
    reading the trial again, makes the kill land on a trial the study still thinks is running.
    """
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
        return None, None
    for trial in trials:
        if trial.state != optuna.trial.TrialState.RUNNING or RUN_ATTR not in trial.user_attrs:
            continue
        pid = int(trial.user_attrs[WORKER_ATTR].rsplit(":", 1)[1])
        worker = next((w for w in workers if w.pid == pid), None)
        if worker is None:
            continue
        os.killpg(worker.pid, signal.SIGSTOP)
        now = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        if now.state == optuna.trial.TrialState.RUNNING:
            return worker, now
        os.killpg(worker.pid, signal.SIGCONT)  # it told the study meanwhile: look again
    return None, None


def test_two_workers_share_the_study_and_retry_a_killed_workers_trial(
    tiny_data, optuna_db, tmp_path, search_overrides, fresh_store
):
    url, db_name, admin = optuna_db.uri, optuna_db.name, optuna_db.admin  # empty: the workers make the schema
    tracking_uri = fresh_store(tmp_path)
    experiment_id = ensure_experiment(EXPERIMENT, tracking_uri)  # the store exists before two writers share it
    space = tmp_path / "space.yaml"
    space.write_text("batch_size: [16, 32, 48, 64]\n")
    cmd = [sys.executable, "-c", WORKER, "search", "--data", str(tiny_data), "--n-trials", str(N_TRIALS),
           "--epochs", "2", "--storage", url, "--study-name", STUDY, "--space", str(space),
           "--experiment", EXPERIMENT, "--heartbeat-interval", "1", "--grace-period", "5", "--max-retry", "2"]  # fmt: skip
    for item in search_overrides(tmp_path, tmp_path / "mel-cache"):
        cmd += ["--set", item]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    workers = [start_worker(cmd, env, tmp_path / f"worker{i}.log") for i in range(2)]
    logs = lambda: "\n".join(f"--- worker{i}\n" + (tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2))  # noqa: E731
    try:
        # Wait for a trial that is training (its MLflow run exists) after at least one trial finished.
        deadline = time.monotonic() + 240
        while not study_exists(db_name, admin):
            assert all(w.poll() is None for w in workers), logs()
            assert time.monotonic() < deadline, logs()
            time.sleep(0.5)
        study = optuna.load_study(study_name=STUDY, storage=url)
        victim = killed_trial = None
        while victim is None:
            assert all(w.poll() is None for w in workers), logs()
            assert time.monotonic() < deadline, "no trial was ever mid-training\n" + logs()
            victim, killed_trial = freeze_a_training_worker(study, workers)
            time.sleep(0.2)
        os.killpg(victim.pid, signal.SIGKILL)
        survivor = next(w for w in workers if w is not victim)
        assert survivor.wait(timeout=600) == 0, logs()
        assert victim.wait(timeout=10) == -signal.SIGKILL
    finally:
        for worker in workers:
            stop(worker)

    study = optuna.load_study(study_name=STUDY, storage=url)
    trials = study.trials
    for t in trials:  # shown with -s, and in a failure's captured output
        print(t.number, t.state.name, t.params, t.user_attrs.get(WORKER_ATTR), t.system_attrs.get("failed_trial"))
    by_state = {state: [t for t in trials if t.state.name == state] for state in ("COMPLETE", "FAIL", "PRUNED", "RUNNING", "WAITING")}
    assert len(by_state["COMPLETE"]) == N_TRIALS, logs()
    assert [t.number for t in by_state["FAIL"]] == [killed_trial.number]
    assert not by_state["RUNNING"] and not by_state["WAITING"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retries = [t for t in by_state["COMPLETE"] if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed_trial.number]
    assert len(retries) == 1 and retries[0].params == killed_trial.params
    assert len({t.user_attrs[WORKER_ATTR] for t in trials if t.state.name in ("COMPLETE", "FAIL")}) == 2  # both worked

    # MLflow: one parent, and exactly one training run per trial that trained (the dead one KILLED).
    client = mlflow.MlflowClient(tracking_uri)
    parent_id = study.user_attrs[PARENT_ATTR]
    parents = client.search_runs([experiment_id], "tags.`sedwatt.kind` = 'search'")
    assert [r.info.run_id for r in parents] == [parent_id]
    assert parents[0].info.status == "FINISHED"
    assert "study/pareto_front.csv" in {a.path for a in client.list_artifacts(parent_id, "study")}
    runs = {r.info.run_id: r for r in client.search_runs([experiment_id], "tags.`sedwatt.kind` = 'train'")}
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for r in runs.values())
    # No trial trained twice: each complete trial has its own FINISHED run, and no other run FINISHED.
    complete_runs = [t.user_attrs[RUN_ATTR] for t in by_state["COMPLETE"]]
    assert len(set(complete_runs)) == N_TRIALS
    assert {run_id for run_id, r in runs.items() if r.info.status == "FINISHED"} == set(complete_runs)
    (victim_trial,) = by_state["FAIL"]
    victim_run = runs[victim_trial.user_attrs[RUN_ATTR]]
    retry = retries[0]
    if victim_run.info.status == "KILLED":  # killed mid-training: its run closed, the retry trained anew
        print("outcome: killed mid-training, retried")
        assert "worker died" in victim_run.data.tags["sedwatt.stop_reason"]
        assert retry.user_attrs[RUN_ATTR] != victim_run.info.run_id and not retry.user_attrs.get(REUSED_ATTR)
        assert len(runs) == N_TRIALS + 1
    else:  # killed after its run finished, before telling the study: the retry took that run
        print("outcome: killed after its run finished, adopted")
        assert victim_run.info.status == "FINISHED"
        assert retry.user_attrs[RUN_ATTR] == victim_run.info.run_id and retry.user_attrs[REUSED_ATTR] is True
        assert victim_run.data.params["trial_number"] == str(victim_trial.number)
        assert len(runs) == N_TRIALS
    surplus_runs = {t.user_attrs.get(RUN_ATTR) for t in by_state["PRUNED"]} - {None}
    assert not surplus_runs  # a surplus trial never trained
