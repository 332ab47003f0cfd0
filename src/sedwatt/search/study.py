"""A search worker: join (or create) the shared study, then train trials until it holds N complete ones.

Several workers on one or several machines run this against the same storage. Each trial is one
ordinary tracked training run (``sedwatt.runner.train_run``) nested under the study's parent MLflow
run (runs.py). RDB heartbeats mark a killed worker's trial FAIL and ``RetryHeartbeatStaleTrialCallback``
queues its parameters again; the next free worker picks them up (storage.py).

Accounting: a worker starts a trial only while complete + running trials are fewer than N (a
queued retry is picked before any new trial). Two workers can still pass that check in the same
instant, so a trial that finds N complete-or-running trials numbered before it is *surplus*: it is
pruned before training (no run, no energy), and the study ends with exactly N complete trials.

Never twice: a worker killed after its trial's run FINISHED but before it told the study leaves a
FAIL trial whose training is done. Its retry adopts that run (``adopt_finished_run``: the objective
values recomputed from the run's logged curve, ``reused_run`` set) instead of training it again.
"""

from __future__ import annotations

import logging
import math
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sedwatt.config import SedwattConfig, load_config
from sedwatt.errors import SedwattError
from sedwatt.search.aliases import update_aliases
from sedwatt.search.energy_stop import STOP_REASON_ATTR
from sedwatt.search.objectives import EnergyObjective, F1Objective, objective_names, objective_values
from sedwatt.search.runs import EPOCHS_RUN_ATTR, RUN_ATTR
from sedwatt.search.space import SearchSpace, overrides_for
from sedwatt.search.storage import default_storage, open_storage, quiet_optuna_warnings
from sedwatt.training.callbacks import Callback

logger = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("nsga2", "tpe", "gp", "random")
SURPLUS_ATTR = "surplus"
REUSED_ATTR = "reused_run"  # True: the trial took its dead predecessor's finished run instead of training
# Study attribute: the ``energy.attribution`` its trials' energies are charged by (one rule per study).
ATTRIBUTION_ATTR = "sedwatt.energy_attribution"
# Per-attempt user attributes, reset when a retried trial (a copy of a dead one) starts again.
INHERITED_ATTRS = (RUN_ATTR, STOP_REASON_ATTR, EPOCHS_RUN_ATTR, SURPLUS_ATTR, REUSED_ATTR)
# The storage URL can come from the environment: a password in --storage shows in `ps` (and in the
# params of an `mlflow run`).
STORAGE_ENV = "SEDWATT_OPTUNA_STORAGE"
# The per-epoch metrics the objectives are computed from (objectives.objective_values).
CURVE_KEYS = ("val_f1", "energy_cum_kwh", "cum_time_s")

__all__ = [
    "SearchSettings",
    "StudyHandle",
    "adopt_finished_run",
    "default_storage",
    "join_study",
    "make_sampler",
    "resolve_storage",
    "run_worker",
]


def resolve_storage(flag: str | None) -> str:
    """``--storage`` if given, else ``$SEDWATT_OPTUNA_STORAGE``, else the project's SQLite file."""
    return flag or os.environ.get(STORAGE_ENV) or default_storage()


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
    energy_stop_window: int = 5
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int | None = 2
    parent_wait_s: float = 10.0  # how long a joining worker waits for the creator to record the parent run


@dataclass
class StudyHandle:
    study: Any
    parent_run_id: str
    created: bool  # this worker created the study (and so the parent run)
    experiment: str  # the parent's MLflow experiment: trials go there too


def nsga2_population(n_trials: int) -> int:
    """Optuna's default 50 would make any search under 50 trials pure random sampling."""
    return max(4, min(50, n_trials // 2))


def make_sampler(name: str, seed: int, n_trials: int) -> Any:
    import optuna

    with quiet_optuna_warnings():
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=nsga2_population(n_trials), seed=seed)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise SedwattError(f"--sampler {name!r}: expected one of {', '.join(SAMPLERS)}")


def worker_seed(seed: int, created: bool) -> int:
    """The creator samples with ``seed`` (one worker = a reproducible search); others from their own stream.

    Workers sharing one seed would draw the same random parameters for their first trials.
    """
    from sedwatt.search.runs import worker_id

    return seed if created else (seed + zlib.crc32(worker_id().encode())) % 2**31


def _load_study(storage: Any, name: str) -> Any | None:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _check_directions(study: Any) -> None:
    if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
        raise SedwattError(
            f"--study-name {study.study_name}: this study exists with directions "
            f"{[d.name.lower() for d in study.directions]}, not (maximize F1, minimize energy); use another name"
        )


def _check_objectives(study: Any, settings: SearchSettings) -> None:
    """A study holds one kind of values: a worker with other objectives would mix them in silently."""
    stored = getattr(study, "metric_names", None)
    wanted = list(objective_names(settings.f1_objective, settings.energy_objective))
    if stored and list(stored) != wanted:
        raise SedwattError(
            f"--study-name {study.study_name}: this study's objectives are {', '.join(map(str, stored))}, but "
            f"--f1-objective {settings.f1_objective} --energy-objective {settings.energy_objective} give "
            f"{', '.join(wanted)}; use the study's objectives or another name"
        )


def _check_attribution(study: Any, base: SedwattConfig) -> None:
    """A study compares energies across trials: a worker charging energy by another rule would mix them in."""
    from sedwatt.energy.attribution import attribution_name

    stored = study.user_attrs.get(ATTRIBUTION_ATTR)
    mode = base.energy.tracking_mode
    if stored and stored != attribution_name(mode):
        raise SedwattError(
            f"--study-name {study.study_name}: this study's trial energies are charged by energy.attribution "
            f"{stored}, but this worker's energy.tracking_mode={mode} charges {attribution_name(mode)}; use the "
            "study's tracking mode or another study name"
        )


def _record_attribution(study: Any, base: SedwattConfig) -> None:
    """A study made without the attribute (before it existed, or by `optuna create-study`): record it if no
    trial has been charged yet, else say that its trials' energies may follow another rule."""
    import optuna

    from sedwatt.energy.attribution import attribution_name

    attribution = attribution_name(base.energy.tracking_mode)
    if study.user_attrs.get(ATTRIBUTION_ATTR):
        return
    started = [t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING]
    if not started:  # queued trials (`sedwatt demo`, enqueue_trial) have charged nothing yet
        study.set_user_attr(ATTRIBUTION_ATTR, attribution)
        return
    logger.warning(
        "study %s records no energy attribution: its trials' energies may have been charged by another rule "
        "(e.g. process-cpu-share before 2026-12-02) than this worker's %s; do not compare them across that change",
        study.study_name,
        attribution,
    )


def trial_header(number: int, params: dict[str, Any], config: SedwattConfig, retried: int | None) -> str:
    """One line before a trial's epochs, so several trials' progress lines can be told apart."""
    from sedwatt.search.runs import worker_id

    shown = ", ".join(f"{k} {v}" for k, v in params.items())
    again = f", retrying trial {retried}" if retried is not None else ""
    return f"── trial {number}: {shown}, {config.train.epochs} epochs (worker {worker_id()}{again})"


def study_params(settings: SearchSettings, base: SedwattConfig) -> dict[str, str]:
    """What defines a study, as the parent run's params: sampler, trials, space, epochs, objectives."""
    import json

    space = settings.space.model_dump(mode="json", exclude_none=True)
    f1_name, energy_name = objective_names(settings.f1_objective, settings.energy_objective)
    return {
        "study_name": settings.study_name,
        "sampler": settings.sampler,
        "n_trials": str(settings.n_trials),
        "seed": str(settings.seed),
        "space": json.dumps(space, sort_keys=True),
        "epochs": "/".join(str(e) for e in space["epochs"]) if space.get("epochs") else str(base.train.epochs),
        "config_name": base.name,
        "objective_f1": f"{f1_name} ({settings.f1_objective}), maximize",
        "objective_energy": f"{energy_name} ({settings.energy_objective}), minimize",
        "energy_stop_beta": "off" if settings.energy_stop_beta is None else str(settings.energy_stop_beta),
    }


def join_study(settings: SearchSettings, base: SedwattConfig, candidate_run_id: str | None) -> StudyHandle:
    """Open the study and agree with the other workers on its parent run (see runs.py for how)."""
    import optuna

    from sedwatt.energy.attribution import attribution_name
    from sedwatt.search import runs
    from sedwatt.tracking import ensure_experiment

    storage = open_storage(
        settings.storage,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        max_retry=settings.max_retry,
    )
    study = _load_study(storage, settings.study_name)
    if study is not None:
        _check_directions(study)  # before anything is made for it
        _check_objectives(study, settings)
        _check_attribution(study, base)
    parent = runs.current_parent(study) if study is not None else None
    created = False
    own_run: str | None = None
    if parent is None:
        if candidate_run_id:
            own_run = candidate_run_id
        else:
            own_run = runs.create_parent_run(ensure_experiment(base.tracking.experiment), settings.study_name)
        wait_s = min(2.0, settings.parent_wait_s)  # a study found without parent: made by `optuna create-study`?
        if study is None:
            wait_s = settings.parent_wait_s  # if another worker wins the creation, it records its parent next
            try:
                with quiet_optuna_warnings():
                    study = optuna.create_study(
                        study_name=settings.study_name, storage=storage, directions=list(DIRECTIONS)
                    )
                created = True
            except optuna.exceptions.DuplicatedStudyError:
                study = _load_study(storage, settings.study_name)
        if created:
            with quiet_optuna_warnings():  # named before the parent: a joiner that sees the parent sees them
                study.set_metric_names(list(objective_names(settings.f1_objective, settings.energy_objective)))
            study.set_user_attr(ATTRIBUTION_ATTR, attribution_name(base.energy.tracking_mode))
            study.set_user_attr(runs.PARENT_ATTR, own_run)  # joiners are waiting for it
            parent = own_run
        else:
            parent = runs.wait_for_parent(study, wait_s) or runs.claim_parent(
                study, storage, own_run, settings.parent_wait_s
            )
            try:  # this worker may have lost a creation race: the winner's study was not checked above
                _check_directions(study)
                _check_objectives(study, settings)
                _check_attribution(study, base)
                _record_attribution(study, base)  # a study made without it: the parent is agreed now
            except SedwattError:
                settle_own_run(parent, own_run, candidate_run_id, settings.study_name)  # no orphan run left
                raise
    else:
        _record_attribution(study, base)
    settle_own_run(parent, own_run, candidate_run_id, settings.study_name)
    runs.reopen_parent(parent)
    runs.log_study_params(parent, study_params(settings, base))

    study.sampler = make_sampler(settings.sampler, worker_seed(settings.seed, created), settings.n_trials)
    if settings.enqueue_default:
        default = settings.space.enqueue_default()
        if default is not None and (created or not study.trials):
            study.enqueue_trial(default, skip_if_exists=True)
    return StudyHandle(study, parent, created, runs.experiment_name_of(parent))


def settle_own_run(parent: str, own_run: str | None, candidate_run_id: str | None, study_name: str) -> None:
    """What becomes of this worker's own parent candidate once the study's parent is agreed on.

    It is the parent: a ``mlflow run`` project run is adopted as such. Another worker's won: a run made
    here is deleted (it never had a child); a project run is tagged as pointing at the real parent.
    """
    from mlflow import MlflowClient

    from sedwatt.search import runs

    if own_run == parent or candidate_run_id == parent:
        if candidate_run_id:
            runs.adopt_run(candidate_run_id, study_name)
        return
    client = MlflowClient()
    if own_run and not candidate_run_id:
        client.delete_run(own_run)
    if candidate_run_id:
        client.set_tag(candidate_run_id, "sedwatt.kind", "search")
        client.set_tag(candidate_run_id, "sedwatt.search_parent_run_id", parent)


def is_surplus(study: Any, trial_number: int, n_trials: int) -> bool:
    """True when N complete-or-running trials were started before this one (a worker race)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    return sum(t.number < trial_number for t in study.get_trials(deepcopy=False, states=states)) >= n_trials


def retried_from(study: Any, trial_number: int) -> int | None:
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == trial_number:
            with quiet_optuna_warnings():
                return RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    return None


def logged_curve(client: Any, run_id: str) -> list[dict[str, float]]:
    """A run's per-epoch ``val_f1``/``energy_cum_kwh``/``cum_time_s`` as a training history, one entry per epoch.

    The last value logged at a step wins (a resumed run may log an epoch twice); epochs are the steps
    at which ``val_f1`` was logged.
    """
    values: dict[str, dict[int, float]] = {}
    for key in CURVE_KEYS:
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        values[key] = {int(m.step): float(m.value) for m in points}
    return [{key: values[key][step] for key in CURVE_KEYS if step in values[key]} for step in sorted(values["val_f1"])]


def adopt_finished_run(
    trial: Any, predecessor: Any, f1_objective: F1Objective = "best", energy_objective: EnergyObjective = "total"
) -> tuple[float, float] | None:
    """The values of ``predecessor``'s run if it FINISHED (its worker died before telling the study), else None.

    The trial then takes that run as its own (user attributes ``mlflow_run_id``, ``epochs_run``,
    ``reused_run``) and trains nothing. None (train as usual) when the run is not FINISHED, is gone,
    or its logged curve lacks an epoch's F1 or energy (records still in the dead worker's spool).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from sedwatt.search import runs
    from sedwatt.tracking.resilient import is_transient

    run_id = predecessor.user_attrs.get(runs.RUN_ATTR)
    if not run_id:
        return None
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if is_transient(exc):
            raise
        return None
    if run.info.status != "FINISHED" or run.info.lifecycle_stage == "deleted":
        return None
    history = logged_curve(client, run_id)
    complete = all(isinstance(epoch.get(key), float) and math.isfinite(epoch[key]) for epoch in history
                   for key in ("val_f1", "energy_cum_kwh"))  # fmt: skip
    if not history or not complete:
        logger.warning("trial %d: run %s of trial %d FINISHED but its logged curve is incomplete: training again",
                       trial.number, run_id, predecessor.number)  # fmt: skip
        return None
    values = objective_values(history, f1_objective, energy_objective)
    trial.set_user_attr(runs.RUN_ATTR, run_id)
    trial.set_user_attr(EPOCHS_RUN_ATTR, len(history))
    trial.set_user_attr(REUSED_ATTR, True)
    if predecessor.user_attrs.get(STOP_REASON_ATTR):
        trial.set_user_attr(STOP_REASON_ATTR, predecessor.user_attrs[STOP_REASON_ATTR])
    try:  # only a pointer for people browsing MLflow: the study already records the adoption
        client.set_tag(run_id, "optuna.reused_by_trial", str(trial.number))
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not tag run %s with its adopting trial %d: %s", run_id, trial.number, exc)
    logger.warning("trial %d: trial %d's worker died after its run %s finished; its values are taken, nothing is trained",
                   trial.number, predecessor.number, run_id)  # fmt: skip
    return values


def frozen_trial(study: Any, number: int) -> Any | None:
    return next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)


def trial_counts(study: Any) -> dict[str, int]:
    import optuna

    counts = {state.name: 0 for state in optuna.trial.TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def checked_base_config(settings: SearchSettings) -> SedwattConfig:
    """The study's base config, after the checks a user's mistake fails: before any study or run exists."""
    from sedwatt.data.scan import load_clips

    if settings.n_trials < 1:
        raise SedwattError(f"--n-trials {settings.n_trials}: must be at least 1")
    base = load_config(settings.config_path, settings.overrides)
    if not base.energy.enabled:
        raise SedwattError("energy.enabled=false: the search minimises training energy, so it must be measured")
    load_clips(settings.data, base)  # bad data fails here
    return base


def run_trial(trial: Any, settings: SearchSettings, handle: StudyHandle) -> tuple[float, float]:
    """One trial: surplus check, parameters, a dead predecessor's finished run adopted, or a training run."""
    import optuna

    from sedwatt.runner import train_run
    from sedwatt.search import runs

    study = handle.study
    trial.set_user_attr(runs.WORKER_ATTR, runs.worker_id())
    for key in INHERITED_ATTRS:  # a retried trial starts with its dead predecessor's attributes
        if key in trial.user_attrs:
            trial.set_user_attr(key, None)
    if is_surplus(study, trial.number, settings.n_trials):
        trial.set_user_attr(SURPLUS_ATTR, True)
        raise optuna.TrialPruned(f"surplus: the study already has {settings.n_trials} trials done or running")
    params = settings.space.suggest(trial)
    predecessor_number = retried_from(study, trial.number)
    predecessor = frozen_trial(study, predecessor_number) if predecessor_number is not None else None
    if predecessor is not None:
        adopted = adopt_finished_run(trial, predecessor, settings.f1_objective, settings.energy_objective)
        if adopted is not None:
            return adopted
    config = load_config(settings.config_path, [*settings.overrides, *overrides_for(params)])
    config.tracking.experiment = handle.experiment
    callbacks: list[Callback] = []
    if settings.energy_stop_beta is not None:
        from sedwatt.search.energy_stop import ParetoEnergyStop

        callbacks.append(ParetoEnergyStop(study, trial, settings.energy_stop_beta, settings.energy_stop_window))
    callbacks.append(runs.TrialLink(trial, predecessor_number))
    print(trial_header(trial.number, params, config, predecessor_number), flush=True)
    outcome = train_run(
        config,
        settings.data,
        run_name=f"trial {trial.number} · batch {config.train.batch_size}",
        parent_run_id=runs.current_parent(study) or handle.parent_run_id,
        extra_tags={
            "optuna.study_name": study.study_name,
            "optuna.trial_number": str(trial.number),
            "optuna.worker": runs.worker_id(),
        },
        extra_callbacks=callbacks,
    )
    trial.set_user_attr(runs.RUN_ATTR, outcome.run_id)
    trial.set_user_attr(EPOCHS_RUN_ATTR, len(outcome.state.history))
    return objective_values(outcome.state.history, settings.f1_objective, settings.energy_objective)


def work_until_done(settings: SearchSettings, handle: StudyHandle, report: Any, close_orphans: Any) -> None:
    """Run trials until the study holds ``n_trials`` complete ones; wait while the rest run elsewhere.

    On an error or Ctrl-C the parent run is ended (FAILED / KILLED) unless other workers' trials still run.
    """
    import optuna

    from sedwatt.search import runs

    study = handle.study
    poll_s = float(min(settings.heartbeat_interval, 5))
    try:
        while True:
            with quiet_optuna_warnings():
                optuna.storages.fail_stale_trials(study)
            close_orphans(study)
            counts = trial_counts(study)
            if counts["COMPLETE"] >= settings.n_trials:
                return
            if counts["COMPLETE"] + counts["RUNNING"] >= settings.n_trials:
                time.sleep(poll_s)  # the rest is in other workers' hands (or theirs to retry)
                continue
            try:
                with quiet_optuna_warnings():
                    study.optimize(
                        lambda trial: run_trial(trial, settings, handle), n_trials=1, callbacks=[report], gc_after_trial=True
                    )
            except ValueError as exc:
                if not str(exc).startswith("Cannot tell a"):
                    raise
                # Our heartbeat came too late: another worker declared this trial dead and queued a retry.
                logger.warning("trial result dropped: %s (raise --grace-period if this repeats)", exc)
    except BaseException as exc:
        if not trial_counts(study)["RUNNING"]:
            runs.end_parent(handle.parent_run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


def run_worker(settings: SearchSettings) -> Any:
    """Work the study until it holds ``n_trials`` complete trials; returns the study."""
    import optuna

    from sedwatt.search import runs
    from sedwatt.search.report import log_study_report
    from sedwatt.tracking import configure_tracking

    base = checked_base_config(settings)
    configure_tracking()
    # Under `mlflow run -e search` the project's run is this worker's candidate parent. Trials must not
    # resume it through MLFLOW_RUN_ID (start_run would pick it up), so it leaves the environment first.
    candidate = os.environ.pop("MLFLOW_RUN_ID", None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    handle = join_study(settings, base, candidate)
    close_orphans = runs.OrphanRunCloser()

    def report(study: optuna.Study, _trial: Any = None) -> None:
        try:
            close_orphans(study)
            log_study_report(study, runs.current_parent(study) or handle.parent_run_id)
        except Exception as exc:  # noqa: BLE001 - the report is refreshed after the next trial anyway
            logger.warning("could not update the study report: %s", exc)
        update_aliases(study, base.tracking.registered_model_name if base.tracking.log_model else None)

    work_until_done(settings, handle, report, close_orphans)
    study = handle.study
    report(study)
    if not trial_counts(study)["RUNNING"]:
        runs.end_parent(runs.current_parent(study) or handle.parent_run_id, "FINISHED")
    return study
