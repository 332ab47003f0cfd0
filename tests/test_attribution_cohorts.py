"""Energies charged by different rules (tag ``energy.attribution``) are never compared nor normalise each other.

A real SQLite store holds calibrations of one CPU machine under two rules (the newer one under the old
``process-cpu-share`` rule), an untagged calibration of a second machine, a ``process-cpu-share`` one only of
a third, and training runs with identical params but different attribution tags:

  calibrations  Test CPU   process-cpu-use    0.06 kWh measured, 0.03 published → factor 0.5   (older)
                Test CPU   process-cpu-share  0.12 kWh                          → factor 0.25  (newer)
                Old CPU    (no tag)           0.03 kWh                          → factor 1.0
                Third CPU  process-cpu-share  0.06 kWh                          → factor 0.5
  runs          use    Test CPU   process-cpu-use    → normalised by 0.5, cohort "process-cpu-use"
                share  Test CPU   process-cpu-share  → 0.25, its own cohort
                third  Third CPU  process-cpu-use    → not normalised (warned), cohort "process-cpu-use"
"""

from __future__ import annotations

import logging
import math
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from sedwatt_analysis import analyze
from sedwatt_analysis.cohorts import NOT_LOGGED, split_cohorts
from sedwatt_analysis.runs import RunRecord
from sedwatt_analysis.synthetic import SyntheticRun, log_runs

from sedwatt.energy import EnergyMeasurement
from sedwatt.evaluation.calibration import (
    CALIBRATION_EXPERIMENT,
    charged_otherwise,
    find_calibration,
    load_calibrations,
)
from sedwatt.evaluation.devtest import METRIC_KEYS
from sedwatt.evaluation.evaluate import NORMALISED_METRIC, calibration_check, evaluation_metrics

TEST_CPU = {"hw.gpu_model": "none", "hw.cpu_model": "Test CPU"}
OLD_CPU = {"hw.gpu_model": "none", "hw.cpu_model": "Old CPU"}
THIRD_CPU = {"hw.gpu_model": "none", "hw.cpu_model": "Third CPU"}
USE, SHARE = "process-cpu-use", "process-cpu-share"
PARAMS = {"train.epochs": "2", "batch_size": "4", "energy.tracking_mode": "process", "dataset_fingerprint": "d"}


@pytest.fixture(scope="module")
def store(fresh_store, tmp_path_factory) -> SimpleNamespace:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("attribution-store")
    uri = fresh_store(root)
    client = MlflowClient(uri)
    art = (root / "artifacts").as_uri()
    calibrations = client.create_experiment(CALIBRATION_EXPERIMENT, artifact_location=art)

    def calibration(hw: dict[str, str], rule: str | None, kwh: float) -> str:
        tags = {"sedwatt.kind": "calibration", **hw, **({"energy.attribution": rule} if rule else {})}
        run_id = client.create_run(calibrations, tags=tags).info.run_id
        client.log_metric(run_id, "ref_inference_energy_kwh", kwh)
        client.log_param(run_id, "ref_published_kwh", "0.03")
        client.set_terminated(run_id)
        time.sleep(0.01)  # distinct start times: the newest of a kind is the one used
        return run_id

    ids = {
        "use": calibration(TEST_CPU, USE, 0.06),
        "share": calibration(TEST_CPU, SHARE, 0.12),  # newer, under the old rule
        "untagged": calibration(OLD_CPU, None, 0.03),
        "third": calibration(THIRD_CPU, SHARE, 0.06),
    }

    def run(name: str, hw: dict[str, str], rule: str) -> SyntheticRun:
        return SyntheticRun([0.3, 0.4], [0.1, 0.2], [60.0, 120.0], params={**PARAMS, "seed": "1"},
                            tags={**hw, "energy.attribution": rule}, name=name)  # fmt: skip

    experiment = client.create_experiment("mixed", artifact_location=art)
    log_runs(client, experiment, [run("use", TEST_CPU, USE), run("share", TEST_CPU, SHARE), run("third", THIRD_CPU, USE)])
    return SimpleNamespace(uri=uri, client=client, calibrations=ids, root=root)


# --- the (hardware, attribution) lookup -------------------------------------------------------------


def test_a_newer_calibration_under_another_rule_does_not_hide_the_matching_one(store):
    ids = store.calibrations
    found = find_calibration(TEST_CPU, store.client, attribution=USE)
    assert found is not None and found.run_id == ids["use"] and found.attribution == USE
    assert found.factor == pytest.approx(0.5)
    assert find_calibration(TEST_CPU, store.client, attribution=SHARE).run_id == ids["share"]
    assert find_calibration(TEST_CPU, store.client, attribution="machine") is None


def test_an_untagged_calibration_matches_only_untagged_runs(store):
    assert find_calibration(OLD_CPU, store.client).run_id == store.calibrations["untagged"]
    assert find_calibration(OLD_CPU, store.client, attribution=USE) is None
    assert find_calibration(TEST_CPU, store.client) is None  # Test CPU has tagged ones only


def test_calibrations_of_another_rule_are_named(store):
    calibrations = load_calibrations(store.client)
    others = charged_otherwise(calibrations, THIRD_CPU, USE)
    assert [c.run_id for c in others] == [store.calibrations["third"]]
    match, notes = calibration_check(None, THIRD_CPU, "d", USE, others)
    assert match is None and store.calibrations["third"] in notes[0] and repr(SHARE) in notes[0]
    assert charged_otherwise(calibrations, TEST_CPU, USE)[0].attribution == SHARE


# --- evaluate: no normalised figure across rules ----------------------------------------------------


def devtest_result(rule: str | None) -> SimpleNamespace:
    tags = {"energy.attribution": rule} if rule else {}
    energy = EnergyMeasurement("devtest", measured=True, duration_s=10.0, energy_kwh=0.002, cpu_energy_kwh=0.001,
                               gpu_energy_kwh=0.0, ram_energy_kwh=0.001, tags=tags)  # fmt: skip
    return SimpleNamespace(metrics={key: 0.5 for key in METRIC_KEYS}, energy=energy)


def test_the_normalised_inference_energy_needs_the_same_rule(store):
    calibration = find_calibration(TEST_CPU, store.client, attribution=USE)
    metrics = evaluation_metrics(devtest_result(USE), calibration)
    assert metrics[NORMALISED_METRIC] == pytest.approx(0.002 * 0.5)
    assert metrics["inference_energy_norm_factor"] == pytest.approx(0.5)
    for rule in (SHARE, "machine", None):
        metrics = evaluation_metrics(devtest_result(rule), calibration)
        assert NORMALISED_METRIC not in metrics and "inference_energy_norm_factor" not in metrics, rule
        assert metrics["inference_energy_kwh"] == pytest.approx(0.002)


# --- the analysis: normalisation and cohorts ---------------------------------------------------------


@pytest.fixture(scope="module")
def result(store, tmp_path_factory):
    logger = logging.getLogger("sedwatt_analysis.machines")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        outcome = analyze(["mixed"], None, None, tmp_path_factory.mktemp("out") / "report", tracking_uri=store.uri)
    finally:
        logger.removeHandler(handler)
    return SimpleNamespace(analysis=outcome, warnings=[r.getMessage() for r in records])


def test_each_run_is_normalised_by_the_calibration_of_its_rule(result):
    runs = result.analysis.runs.set_index("run_name")
    assert runs.loc["use", "energy_norm_factor"] == pytest.approx(0.5)
    assert runs.loc["use", "energy_total_norm_kwh"] == pytest.approx(0.2 * 0.5)
    assert runs.loc["share", "energy_norm_factor"] == pytest.approx(0.25)
    assert math.isnan(runs.loc["third", "energy_total_norm_kwh"])  # its machine's only calibration: another rule
    assert any(w.startswith("1 run(s) not normalised") for w in result.warnings), result.warnings


def test_the_calibrations_table_says_the_rule(result, store):
    table = pd.read_csv(result.analysis.out_dir / "calibrations.csv", keep_default_na=False)
    assert "attribution" in table.columns
    rows = {(r.cpu_model, r.attribution): r.run_id for r in table.itertuples()}
    ids = store.calibrations
    assert rows == {("Test CPU", USE): ids["use"], ("Test CPU", SHARE): ids["share"], ("Old CPU", ""): ids["untagged"],
                    ("Third CPU", SHARE): ids["third"]}  # fmt: skip


def test_runs_charged_by_different_rules_are_two_cohorts(result):
    runs = result.analysis.runs.set_index("run_name")
    assert runs.loc["use", "cohort"] == runs.loc["third", "cohort"] == f"energy.attribution = {USE}"
    assert runs.loc["share", "cohort"] == f"energy.attribution = {SHARE}"
    assert len(result.analysis.cohorts) == 2


def tagged(run_id: str, rule: str | None) -> RunRecord:
    tags = {"energy.attribution": rule} if rule else {}
    return RunRecord(run_id, "e", run_id, "FINISHED", 0, params=dict(PARAMS), tags=tags)


def test_the_tag_splits_cohorts_even_when_grouped_by_it():
    def cohorts(records: list[RunRecord], keys: list[str]) -> list[tuple[tuple[str, ...], dict[str, str]]]:
        return [(c.run_ids, c.differs) for c in split_cohorts(records, keys)]

    assert cohorts([tagged("a", USE), tagged("b", USE)], []) == [(("a", "b"), {})]  # one rule: one cohort
    mixed = [tagged("a", USE), tagged("b", SHARE), tagged("c", None)]
    expected = [
        (("c",), {"energy.attribution": NOT_LOGGED}),
        (("b",), {"energy.attribution": SHARE}),
        (("a",), {"energy.attribution": USE}),
    ]
    assert cohorts(mixed, []) == expected
    assert cohorts(mixed, ["tags.energy.attribution"]) == expected  # a grouping never puts two rules side by side
    assert cohorts([tagged("x", None), tagged("y", None)], []) == [(("x", "y"), {})]  # before the tag: as before
