"""The search's pure parts, without training: objectives, the energy stop, space, samplers, accounting, report.

Expected values are worked out by hand in the comments; Optuna studies here live in memory.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest

from sedwatt.cli import main
from sedwatt.config import load_config
from sedwatt.energy.attribution import ATTRIBUTION_MACHINE, ATTRIBUTION_PROCESS
from sedwatt.errors import SedwattError
from sedwatt.search.energy_stop import ParetoEnergyStop, dominating_trial, plausible_f1
from sedwatt.search.objectives import objective_names, objective_values
from sedwatt.search.report import objective_columns, pareto_frame, study_summary, write_study_report
from sedwatt.search.runs import PARENT_ATTR
from sedwatt.search.space import SearchSpace, load_space, overrides_for
from sedwatt.search.storage import open_storage, safe_url
from sedwatt.search.study import (
    ATTRIBUTION_ATTR,
    SearchSettings,
    is_surplus,
    join_study,
    make_sampler,
    nsga2_population,
    trial_counts,
    worker_seed,
)
from sedwatt.training.callbacks import RunState

optuna.logging.set_verbosity(optuna.logging.WARNING)


def history(f1, energy=None, times=None):
    energy = energy or [None] * len(f1)
    times = times or [10.0 * (i + 1) for i in range(len(f1))]
    out = []
    for f, e, t in zip(f1, energy, times, strict=True):
        epoch = {"val_f1": f, "cum_time_s": t}
        if e is not None:
            epoch["energy_cum_kwh"] = e
        out.append(epoch)
    return out


# --- objectives ---------------------------------------------------------------------------------

# F1 0.20, 0.48, 0.50, 0.45 with cumulative energy 1, 2, 3, 4 kWh:
# best F1 0.50 (epoch 3), final 0.45; 95 % of 0.50 = 0.475 → first reached at epoch 2 (0.48).
CURVE = history([0.20, 0.48, 0.50, 0.45], [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize(
    ("f1", "energy", "expected"),
    [
        ("best", "total", (0.50, 4.0)),
        ("best", "to_best", (0.50, 3.0)),
        ("best", "to_95", (0.50, 2.0)),
        ("final", "total", (0.45, 4.0)),
        ("final", "to_95", (0.45, 2.0)),
    ],
)
def test_objective_values_for_each_choice(f1, energy, expected):
    assert objective_values(CURVE, f1, energy) == pytest.approx(expected)


def test_objective_values_never_invent_energy():
    f1, energy = objective_values(history([0.3, 0.4]), "best", "total")  # no energy measured
    assert f1 == pytest.approx(0.4) and math.isnan(energy)


def test_objective_values_reject_bad_input():
    with pytest.raises(ValueError, match="without any finished epoch"):
        objective_values([])
    with pytest.raises(ValueError, match="energy objective"):
        objective_values(CURVE, "best", "to_90")
    with pytest.raises(ValueError, match="F1 objective"):
        objective_values(CURVE, "mean", "total")


# --- plausible F1 and the energy stop -----------------------------------------------------------


def test_plausible_f1_extrapolates_the_largest_recent_rise():
    # running best from 0: 0, .1, .3, .35 → rises .1, .2, .05; window 5 sees .2 → .35 + 7 × .2 → capped at 1
    assert plausible_f1(history([0.1, 0.3, 0.35]), total_epochs=10, window=5) == 1.0
    # window 1 sees only .05: .35 + 7 × .05 = .70
    assert plausible_f1(history([0.1, 0.3, 0.35]), total_epochs=10, window=1) == pytest.approx(0.70)
    # window 2 sees .2 and .05: .35 + 2 × .2 = .75
    assert plausible_f1(history([0.1, 0.3, 0.35]), total_epochs=5, window=2) == pytest.approx(0.75)


def test_plausible_f1_after_one_epoch_counts_the_rise_from_zero():
    # 0 → .2 is a rise of .2: .2 + 2 × .2 = .6 (not the flat .2 a single point would give)
    assert plausible_f1(history([0.2]), total_epochs=3, window=5) == pytest.approx(0.6)


def test_plausible_f1_of_a_falling_or_finished_curve():
    # best stays .5 after epoch 1: window 2 covers only flat steps → .5
    assert plausible_f1(history([0.5, 0.4, 0.3]), total_epochs=20, window=2) == pytest.approx(0.5)
    assert plausible_f1(history([0.1, 0.3]), total_epochs=2, window=5) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        plausible_f1(history([0.1]), total_epochs=2, window=0)


class FakeTrial:
    def __init__(self) -> None:
        self.user_attrs: dict = {}

    def set_user_attr(self, key, value) -> None:
        self.user_attrs[key] = value


def pareto(number, f1, energy):
    return SimpleNamespace(number=number, values=[f1, energy])


def epoch_state(f1_values, epochs=10):
    config = load_config(None, [f"train.epochs={epochs}"])
    state = RunState(config=config, out_dir=None)
    state.history = history(f1_values)
    state.epoch = len(f1_values)
    return state


# Running best .2, .25, .26; window 1 sees the last rise .01 → reach = .26 + 7 × .01 = .33.
# Pareto trial 1 (F1 .30) cannot be matched against; trial 3 (F1 .50 ≥ .33, 10 Wh) can.
FRONT = SimpleNamespace(best_trials=[pareto(1, 0.30, 0.002), pareto(3, 0.50, 0.010)])


def test_energy_stop_fires_past_beta_times_a_better_trials_energy():
    trial, state = FakeTrial(), epoch_state([0.20, 0.25, 0.26])
    ParetoEnergyStop(FRONT, trial, beta=1.5, window=1).on_epoch_end(state, {"energy_cum_kwh": 0.016})  # > 15 Wh
    assert state.stop_reason == (
        "pareto-energy: spent 16 Wh > 1.5 x 10 Wh of trial 3 (F1 0.500), and this trial can plausibly reach only F1 0.330"
    )
    assert trial.user_attrs["stop_reason"] == state.stop_reason


@pytest.mark.parametrize(
    ("f1_values", "spent", "epochs"),
    [
        ([0.20, 0.25, 0.26], 0.014, 10),  # 14 Wh < 1.5 × 10 Wh
        ([0.20, 0.25, 0.40], 0.016, 10),  # rise .14: reach .40 + 7 × .14 ≥ .5, no trial is that good
        ([0.20, 0.25, 0.26], 0.016, 3),  # last epoch: nothing left to save
    ],
)
def test_energy_stop_holds_back(f1_values, spent, epochs):
    trial, state = FakeTrial(), epoch_state(f1_values, epochs)
    ParetoEnergyStop(FRONT, trial, beta=1.5, window=1).on_epoch_end(state, {"energy_cum_kwh": spent})
    assert state.stop_reason is None and trial.user_attrs == {}


def test_energy_stop_without_energy_does_nothing():
    trial, state = FakeTrial(), epoch_state([0.20, 0.25, 0.26])
    ParetoEnergyStop(FRONT, trial, beta=1.0, window=1).on_epoch_end(state, {})
    assert state.stop_reason is None


def test_dominating_trial_skips_trials_without_values():
    front = [SimpleNamespace(number=0, values=None), pareto(2, 0.6, 1.0)]
    assert dominating_trial(front, spent_kwh=2.5, reach_f1=0.5, beta=2.0).number == 2
    assert dominating_trial(front, spent_kwh=1.5, reach_f1=0.5, beta=2.0) is None


def add_complete(study, bs, f1, energy):
    dist = {"batch_size": optuna.distributions.CategoricalDistribution([4, 8, 16, 32, 48, 64])}
    study.add_trial(optuna.create_trial(params={"batch_size": bs}, distributions=dist, values=[f1, energy]))


def test_energy_stop_reads_the_front_of_a_real_study_from_inside_a_running_trial():
    study = optuna.create_study(directions=["maximize", "minimize"])
    add_complete(study, 16, 0.50, 0.010)  # on the front
    add_complete(study, 64, 0.30, 0.002)  # on the front
    add_complete(study, 8, 0.45, 0.020)  # dominated by the first: never the reference
    running = study.ask()
    state = epoch_state([0.20, 0.25, 0.26])
    ParetoEnergyStop(study, running, beta=1.5, window=1).on_epoch_end(state, {"energy_cum_kwh": 0.016})
    assert "trial 0" in state.stop_reason
    assert study.trials[running.number].user_attrs["stop_reason"] == state.stop_reason
    assert study.trials[running.number].state == optuna.trial.TrialState.RUNNING


# --- space ----------------------------------------------------------------------------------------


def test_default_space_and_overrides():
    space = SearchSpace()
    assert space.batch_size == [4, 8, 16, 24, 32, 48, 64]
    params = space.suggest(optuna.trial.FixedTrial({"batch_size": 24}))
    assert params == {"batch_size": 24}
    assert overrides_for(params) == ["train.batch_size=24"]
    assert space.enqueue_default() == {"batch_size": 48}
    assert SearchSpace(batch_size=[8, 16]).enqueue_default() is None


def test_space_yaml_with_lr_and_epochs(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("batch_size: [8, 32]\nlr: {low: 1.0e-4, high: 1.0e-2}\nepochs: [2, 4]\n")
    space = load_space(path)
    params = space.suggest(optuna.trial.FixedTrial({"batch_size": 32, "lr": 5e-4, "epochs": 4}))
    config = load_config(None, overrides_for(params))
    assert (config.train.batch_size, config.train.lr, config.train.epochs) == (32, 5e-4, 4)
    assert config.train.batch_split == (8, 8, 16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch_size: [8, 10]\n", "field batch_size: batch size 10 cannot be split"),
        ("batch_size: []\n", "field batch_size: at least one batch size"),
        ("lr: {low: 0.1, high: 0.01}\n", "field lr: needs 0 < low < high"),
        ("epochs: [0]\n", "field epochs"),
        ("batchsize: [8]\n", "field batchsize"),
        ("batch_size: [8\n", "not valid YAML"),
    ],
)
def test_space_errors_name_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SedwattError, match="space.yaml") as err:
        load_space(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_space_file(tmp_path):
    with pytest.raises(SedwattError, match="search space file not found"):
        load_space(tmp_path / "nope.yaml")


# --- samplers, seeds, accounting ------------------------------------------------------------------


def searched(sampler_name: str, seed: int, n_trials: int = 8) -> list[int]:
    """The batch sizes a sampler proposes for ``n_trials`` trials of a toy two-objective search."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(sampler_name, seed, n_trials))
    study.optimize(lambda t: (t.suggest_categorical("batch_size", [4, 8, 16, 32, 64]), 1.0), n_trials=n_trials)
    return [t.params["batch_size"] for t in study.trials]


def test_nsga2_population_is_half_the_trials_within_4_and_50():
    assert nsga2_population(4) == 4 and nsga2_population(30) == 15 and nsga2_population(500) == 50
    assert make_sampler("nsga2", 1, 8)._population_size == 4
    with pytest.raises(SedwattError, match="--sampler 'cmaes'"):
        make_sampler("cmaes", 1, 8)


@pytest.mark.parametrize("name", ["nsga2", "tpe", "random"])
def test_each_seeded_sampler_repeats_its_search_and_the_seed_matters(name):
    assert searched(name, 3) == searched(name, 3)
    assert searched(name, 3) != searched(name, 4)


def test_the_creator_keeps_the_seed_joiners_draw_their_own(monkeypatch):
    """Joiners on two machines must not propose the same first trials as each other or as the creator."""
    from sedwatt.search import runs

    assert worker_seed(7, created=True) == 7
    draws = {}
    for worker in ("host-a:101", "host-b:101"):
        monkeypatch.setattr(runs, "worker_id", lambda worker=worker: worker)
        draws[worker] = searched("random", worker_seed(7, created=False))
        assert searched("random", worker_seed(7, created=False)) == draws[worker]  # one worker: one stream
    assert len({tuple(d) for d in [searched("random", 7), *draws.values()]}) == 3


def test_a_trial_started_after_n_others_is_surplus():
    study = optuna.create_study(directions=["maximize", "minimize"])
    add_complete(study, 16, 0.5, 1.0)
    add_complete(study, 32, 0.4, 0.5)
    racing_a = study.ask()  # number 2
    racing_b = study.ask()  # number 3, asked in the same instant by another worker
    assert not is_surplus(study, racing_a.number, n_trials=3)
    assert is_surplus(study, racing_b.number, n_trials=3)
    study.tell(racing_a, state=optuna.trial.TrialState.FAIL)  # its worker died: b is needed after all
    assert not is_surplus(study, racing_b.number, n_trials=3)
    assert trial_counts(study)["RUNNING"] == 1 and trial_counts(study)["FAIL"] == 1


# --- storage --------------------------------------------------------------------------------------


def test_storage_errors_are_one_line(tmp_path):
    with pytest.raises(SedwattError, match="--storage") as err:
        open_storage("nosuchdb://x/y", heartbeat_interval=1, grace_period=4, max_retry=1)
    assert "\n" not in str(err.value)
    with pytest.raises(SedwattError, match="grace period longer"):
        open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat_interval=5, grace_period=5, max_retry=1)


def test_storage_url_hides_the_password():
    shown = safe_url("postgresql+psycopg://alice:s3cret@db.example:5432/optuna")
    assert "s3cret" not in shown and "db.example:5432/optuna" in shown


def test_sqlite_storage_has_heartbeats(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat_interval=2, grace_period=5, max_retry=1)
    assert storage.get_heartbeat_interval() == 2
    callback = storage.get_heartbeat_stale_trial_callback()  # a stale trial is re-queued, at most max_retry times
    assert isinstance(callback, optuna.storages.RetryHeartbeatStaleTrialCallback) and callback._max_retry == 1


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # catch_warnings is per-process
def test_workers_creating_a_fresh_sqlite_schema_at_once_all_get_in(tmp_path):
    """Without the retry, 8 of 10 such four-way races failed here (table exists / alembic_version)."""
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'fresh{round_}.db'}"
        errors: list[BaseException] = []

        def connect(url=url, errors=errors):
            try:
                open_storage(url, heartbeat_interval=1, grace_period=4, max_retry=1)
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                errors.append(exc)

        threads = [threading.Thread(target=connect) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


def test_a_study_with_other_directions_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.create_study(study_name="single", storage=url, direction="maximize")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    settings = SearchSettings(config_path=None, overrides=[], data=tmp_path, n_trials=1, study_name="single",
                              storage=url, space=SearchSpace(), heartbeat_interval=2, grace_period=10)  # fmt: skip
    with pytest.raises(SedwattError, match="--study-name single: this study exists with directions"):
        join_study(settings, load_config(None), None)
    assert not (tmp_path / "mlruns.db").exists()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # set_metric_names
def test_a_worker_with_other_objectives_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(study_name="named", storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(list(objective_names("best", "total")))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    settings = SearchSettings(config_path=None, overrides=[], data=tmp_path, n_trials=1, study_name="named",
                              storage=url, space=SearchSpace(), heartbeat_interval=2, grace_period=10,
                              f1_objective="final", energy_objective="to_95")  # fmt: skip
    with pytest.raises(SedwattError) as err:
        join_study(settings, load_config(None), None)
    message = str(err.value)
    assert "--f1-objective final" in message and "--energy-objective to_95" in message
    assert "max_val_f1, energy_total_kwh" in message and "final_val_f1, energy_at_95pct_max_kwh" in message
    assert not (tmp_path / "mlruns.db").exists()
    assert optuna.load_study(study_name="named", storage=url).trials == []


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # set_metric_names
def test_a_worker_losing_the_creation_race_checks_the_winners_objectives(tmp_path, monkeypatch):
    """The study did not exist when this worker looked, another worker created it (other objectives) before this
    one's create_study: refused after the race too, and the parent run made for it meanwhile is deleted."""
    from mlflow import MlflowClient

    import sedwatt.search.study as study_module

    url = f"sqlite:///{tmp_path / 'o.db'}"
    winner = optuna.create_study(study_name="raced", storage=url, directions=["maximize", "minimize"])
    winner.set_metric_names(list(objective_names("best", "total")))
    winner.set_user_attr(PARENT_ATTR, "the-winners-parent")
    real_load, looks = study_module._load_study, []

    def load(*args):  # the first look finds nothing, as when both workers looked at once
        looks.append(args)
        return None if len(looks) == 1 else real_load(*args)

    monkeypatch.setattr(study_module, "_load_study", load)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    settings = SearchSettings(config_path=None, overrides=[], data=tmp_path, n_trials=1, study_name="raced",
                              storage=url, space=SearchSpace(), heartbeat_interval=2, grace_period=10,
                              f1_objective="final", energy_objective="to_95", parent_wait_s=5)  # fmt: skip
    with pytest.raises(SedwattError, match="--study-name raced: this study's objectives are max_val_f1"):
        join_study(settings, load_config(None), None)
    client = MlflowClient()
    experiments = client.search_experiments()
    assert client.search_runs([e.experiment_id for e in experiments]) == []  # its own parent candidate went
    assert optuna.load_study(study_name="raced", storage=url).trials == []
    assert len(looks) == 2  # it did lose the race: create_study found the study, so it looked again


def attribution_settings(tmp_path, name: str, **extra) -> SearchSettings:
    return SearchSettings(config_path=None, overrides=[], data=tmp_path, n_trials=1, study_name=name,
                          storage=f"sqlite:///{tmp_path / 'o.db'}", space=SearchSpace(), heartbeat_interval=2,
                          grace_period=10, **extra)  # fmt: skip


def mlflow_runs() -> list:
    from mlflow import MlflowClient

    client = MlflowClient()
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_worker_charging_energy_by_another_rule_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    settings = attribution_settings(tmp_path, "charged")
    handle = join_study(settings, load_config(None, ["energy.tracking_mode=process"]), None)
    assert handle.created
    assert handle.study.user_attrs[ATTRIBUTION_ATTR] == ATTRIBUTION_PROCESS
    with pytest.raises(SedwattError) as err:
        join_study(settings, load_config(None, ["energy.tracking_mode=machine"]), None)
    message = str(err.value)
    assert message.startswith("--study-name charged: ") and "\n" not in message
    assert "charged by energy.attribution process-cpu-use" in message
    assert "energy.tracking_mode=machine charges machine" in message
    assert [r.info.run_id for r in mlflow_runs()] == [handle.parent_run_id]  # no parent candidate made
    study = optuna.load_study(study_name="charged", storage=settings.storage)
    assert study.trials == [] and study.user_attrs[ATTRIBUTION_ATTR] == ATTRIBUTION_PROCESS


def test_a_worker_losing_the_creation_race_checks_the_winners_attribution(tmp_path, monkeypatch):
    import sedwatt.search.study as study_module

    settings = attribution_settings(tmp_path, "raced", parent_wait_s=5)
    winner = optuna.create_study(study_name="raced", storage=settings.storage, directions=["maximize", "minimize"])
    winner.set_user_attr(ATTRIBUTION_ATTR, ATTRIBUTION_PROCESS)
    winner.set_user_attr(PARENT_ATTR, "the-winners-parent")
    real_load, looks = study_module._load_study, []

    def load(*args):  # the first look finds nothing, as when both workers looked at once
        looks.append(args)
        return None if len(looks) == 1 else real_load(*args)

    monkeypatch.setattr(study_module, "_load_study", load)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    with pytest.raises(SedwattError, match="--study-name raced: this study's trial energies are charged by"):
        join_study(settings, load_config(None, ["energy.tracking_mode=machine"]), None)
    assert mlflow_runs() == []  # its own parent candidate went
    assert len(looks) == 2  # it did lose the race


def test_a_study_without_a_recorded_attribution(tmp_path, monkeypatch, caplog):
    """Made before the attribute existed (or by `optuna create-study`): with trials, a warning that their energies
    may follow the old rule; without, this worker's attribution is recorded."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    settings = attribution_settings(tmp_path, "old", parent_wait_s=0.5)
    old = optuna.create_study(study_name="old", storage=settings.storage, directions=["maximize", "minimize"])
    add_complete(old, 16, 0.5, 0.01)
    with caplog.at_level(logging.WARNING, logger="sedwatt.search.study"):
        join_study(settings, load_config(None, ["energy.tracking_mode=process"]), None)
    (warning,) = [r.getMessage() for r in caplog.records if "energy attribution" in r.getMessage()]
    assert warning.startswith("study old records no energy attribution") and "process-cpu-share" in warning
    assert ATTRIBUTION_ATTR not in old.user_attrs  # its trials' rule is unknown: nothing is claimed for them

    caplog.clear()
    fresh = optuna.create_study(study_name="empty", storage=settings.storage, directions=["maximize", "minimize"])
    with caplog.at_level(logging.WARNING, logger="sedwatt.search.study"):
        join_study(attribution_settings(tmp_path, "empty", parent_wait_s=0.5),
                   load_config(None, ["energy.tracking_mode=machine"]), None)  # fmt: skip
    assert fresh.user_attrs[ATTRIBUTION_ATTR] == ATTRIBUTION_MACHINE
    assert not [r for r in caplog.records if "energy attribution" in r.getMessage()]

    caplog.clear()  # only queued trials (what `sedwatt demo` makes): nothing charged yet, no warning
    queued = optuna.create_study(study_name="queued", storage=settings.storage, directions=["maximize", "minimize"])
    queued.enqueue_trial({"batch_size": 32})
    with caplog.at_level(logging.WARNING, logger="sedwatt.search.study"):
        join_study(attribution_settings(tmp_path, "queued", parent_wait_s=0.5),
                   load_config(None, ["energy.tracking_mode=process"]), None)  # fmt: skip
    assert queued.user_attrs[ATTRIBUTION_ATTR] == ATTRIBUTION_PROCESS
    assert not [r for r in caplog.records if "energy attribution" in r.getMessage()]


# --- report ---------------------------------------------------------------------------------------


def test_report_marks_exactly_the_non_dominated_trials(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="units")
    points = [(4, 0.30, 0.002), (16, 0.50, 0.010), (32, 0.45, 0.020), (64, 0.50, 0.012), (8, 0.55, 0.030)]
    for bs, f1, energy in points:
        add_complete(study, bs, f1, energy)
    study.ask()  # a running trial has no values and no row
    frame = pareto_frame(study)
    assert len(frame) == len(points)
    # by hand: #1 dominates #2 (.50 ≥ .45, 10 < 20 Wh) and #3 (same F1, less energy); #0, #1, #4 trade off
    assert sorted(frame[frame.pareto].trial) == [0, 1, 4]
    paths = write_study_report(study, tmp_path / "report")
    assert {p.name for p in paths.values()} == {"pareto_front.csv", "pareto_front.png", "pareto_front.html", "study_summary.json"}
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    page = paths["html"].read_text()
    assert "<svg" in page and "<script" not in page  # renders in MLflow's sandboxed artifact viewer
    summary = json.loads(paths["summary"].read_text())
    assert summary["states"] == {"COMPLETE": 5, "RUNNING": 1}
    assert [p["trial"] for p in summary["pareto_front"]] == [0, 1, 4]  # sorted by energy
    assert summary["pareto_front"][0]["params"] == {"batch_size": 4}
    assert study_summary(study, frame)["directions"] == ["maximize", "minimize"]


def test_report_columns_are_the_studys_objective_names(tmp_path):
    """A study made by sedwatt names its objectives as the run metrics; one from before is read as it was."""
    named = optuna.create_study(directions=["maximize", "minimize"], study_name="named")
    named.set_metric_names(list(objective_names("best", "to_95")))
    add_complete(named, 4, 0.30, 0.002)
    paths = write_study_report(named, tmp_path / "named")
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert header[:4] == ["trial", "state", "param_batch_size", "max_val_f1"] and header[4] == "energy_at_95pct_max_kwh"
    assert json.loads(paths["summary"].read_text())["pareto_front"][0]["energy_at_95pct_max_kwh"] == 0.002
    assert objective_names("final", "to_best") == ("final_val_f1", "energy_at_max_kwh")
    older = optuna.create_study(directions=["maximize", "minimize"], study_name="older")  # no names stored
    add_complete(older, 4, 0.30, 0.002)
    assert list(pareto_frame(older).columns[3:5]) == ["val_f1", "energy_kwh"]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # set_metric_names
def test_objective_columns_are_the_names_the_frame_was_made_with():
    named = optuna.create_study(directions=["maximize", "minimize"], study_name="named")
    named.set_metric_names(list(objective_names("final", "to_best")))
    assert objective_columns(pareto_frame(named)) == ("final_val_f1", "energy_at_max_kwh")  # no trial yet
    add_complete(named, 4, 0.30, 0.002)
    frame = pareto_frame(named)
    assert objective_columns(frame) == ("final_val_f1", "energy_at_max_kwh")
    assert objective_columns(frame[frame.pareto].sort_values("energy_at_max_kwh")) == objective_columns(frame)
    older = optuna.create_study(directions=["maximize", "minimize"], study_name="older")
    assert objective_columns(pareto_frame(older)) == ("val_f1", "energy_kwh")
    with pytest.raises(ValueError, match="not a pareto_frame"):
        objective_columns(pd.DataFrame({"trial": [0], "state": ["COMPLETE"], "a": [0.5], "b": [0.1]}))


def test_report_of_a_study_without_complete_trials(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="empty")
    paths = write_study_report(study, tmp_path)
    assert "html" not in paths and paths["png"].is_file()
    assert json.loads(paths["summary"].read_text())["pareto_front"] == []


# --- command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n-trials", "0"], "--n-trials 0: must be at least 1"),
        (["--n-trials", "2", "--energy-stop-beta", "0"], "--energy-stop-beta 0: must be positive"),
        (["--n-trials", "2", "--space", "missing.yaml"], "missing.yaml: search space file not found"),
        (["--n-trials", "2", "--set", "energy.enabled=false"], "energy.enabled=false"),
    ],
)
def test_cli_user_errors(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    code = main(["search", "--data", str(tmp_path), "--storage", f"sqlite:///{tmp_path / 'o.db'}", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o.db").exists() and not (tmp_path / "mlruns.db").exists()  # nothing made before the check
