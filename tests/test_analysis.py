"""The analysis against a real SQLite tracking store holding runs with known curves.

Every expected number below is worked out by hand from the curves (comments show the arithmetic).

Experiment "paper-a", batch size 4 on an A100 (3 seeds) and batch size 8 on a CPU-only machine:
  r1  F1 .20 .41 .50 .58 .60 .60  E .1 .2 .3 .4 .5 .6   kWh, 1 h: max .60 @5, E40 .2, E95 .4 (.57), Emax .5
  r2  F1 .10 .30 .45 .50 .48 .50  E .2 … 1.2           , 2 h: max .50 @4 (tie with 6), E40 .6, E95 = Emax .8
  r3  F1 .10 .20 .37 .35 .36 .38  E .15 … .9           , 1.5 h: never 40 %, max .38 @6, E95 .45 (.37 ≥ .361), Emax .9
  r4  F1 .30 .45 .44              E .05 .10 .15        , 3 min: max .45 @2, E40 = E95 = Emax .10
plus runs the analysis must skip: a search parent, an evaluation run, a training run with no epoch.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from sedwatt_analysis import analyze
from sedwatt_analysis.history import curves
from sedwatt_analysis.per_run import normalize_group_key
from sedwatt_analysis.plots import pareto_mask
from sedwatt_analysis.render import latex_escape
from sedwatt_analysis.synthetic import SyntheticRun, log_runs
from sedwatt_analysis.tables import decimals_for, hhmm, natural_key

from sedwatt.errors import SedwattError

A100 = {"hw.gpu_model": "NVIDIA A100-SXM4-40GB", "hw.cpu_model": "AMD EPYC 7742"}
CPU_ONLY = {"hw.gpu_model": "none", "hw.cpu_model": "AMD EPYC"}


def hours(n_epochs: int, total_s: float) -> list[float]:
    return [total_s * (i + 1) / n_epochs for i in range(n_epochs)]


def paper_runs() -> list[SyntheticRun]:
    return [
        SyntheticRun(
            [0.20, 0.41, 0.50, 0.58, 0.60, 0.60], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], hours(6, 3600),
            params={"batch_size": "4", "seed": "1"}, tags=A100, name="r1",
            summary={"max_val_f1": 0.99, "energy_total_kwh": 42.0},  # wrong on purpose: must be ignored
        ),
        SyntheticRun(
            [0.10, 0.30, 0.45, 0.50, 0.48, 0.50], [0.2, 0.4, 0.6, 0.8, 1.0, 1.2], hours(6, 7200),
            params={"batch_size": "4", "seed": "2"}, tags=A100, name="r2",
        ),
        SyntheticRun(
            [0.10, 0.20, 0.37, 0.35, 0.36, 0.38], [0.15, 0.3, 0.45, 0.6, 0.75, 0.9], hours(6, 5400),
            params={"batch_size": "4", "seed": "3"}, tags=A100, name="r3",
        ),
        SyntheticRun(
            [0.30, 0.45, 0.44], [0.05, 0.10, 0.15], [60.0, 120.0, 180.0],
            params={"batch_size": "8", "seed": "1"}, tags=CPU_ONLY, name="r4",
        ),
        SyntheticRun([0.9], [0.01], [1.0], params={"batch_size": "4", "seed": "1"}, tags=A100, kind="search", name="parent"),
        SyntheticRun([0.9], [0.01], [1.0], params={"batch_size": "4", "seed": "1"}, tags=A100, kind="evaluate", name="eval"),
        SyntheticRun([], [], [], params={"batch_size": "4", "seed": "9"}, tags=A100, name="no-epoch"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("analysis-store")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    client = MlflowClient(uri)
    art = (root / "artifacts").as_uri()
    ids = log_runs(client, client.create_experiment("paper-a", artifact_location=art), paper_runs())
    # A second experiment: tiny CPU energies (Wh, more decimals, hh:mm:ss), one run that never reaches 40 %.
    tiny = [
        SyntheticRun([0.30, 0.42], [0.0004, 0.0008], [30.0, 60.0], params={"batch_size": "4", "seed": "1"}, tags=CPU_ONLY, name="c1"),
        SyntheticRun([0.20, 0.35], [0.0005, 0.0010], [40.0, 80.0], params={"batch_size": "4", "seed": "2"}, tags=CPU_ONLY, name="c2"),
    ]  # fmt: skip
    log_runs(client, client.create_experiment("paper-cpu", artifact_location=art), tiny)
    # Edge cases: a group whose only run never reaches 40 %, and a run without any energy measured.
    edge = [
        SyntheticRun([0.1, 0.2], [0.01, 0.02], [10.0, 20.0], params={"batch_size": "2", "seed": "1"}, tags=CPU_ONLY),
        SyntheticRun([0.5, 0.6], None, [10.0, 20.0], params={"batch_size": "64", "seed": "1"}, tags=CPU_ONLY),
    ]  # fmt: skip
    log_runs(client, client.create_experiment("paper-edge", artifact_location=art), edge)
    # A calibration of the A100 machine: measured 0.06 kWh vs 0.03 published → factor 0.5.
    calibration = client.create_experiment("sedwatt-calibration", artifact_location=art)
    run = client.create_run(calibration, tags={"sedwatt.kind": "calibration", **A100})
    client.log_metric(run.info.run_id, "ref_inference_energy_kwh", 0.06)
    client.log_param(run.info.run_id, "ref_published_kwh", "0.03")
    # A registered model version of r1, tagged as the tracking callback tagged it before the renames
    # (best_val_f1, energy_total_kwh): the analysis reads them under today's names.
    client.create_registered_model("sedwatt-crnn")
    client.create_model_version(
        "sedwatt-crnn", f"runs:/{ids[0]}/model", run_id=ids[0],
        tags={**A100, "best_val_f1": "0.6", "energy_total_kwh": "0.6"},
    )  # fmt: skip
    return uri


@pytest.fixture(scope="module")
def result(store, tmp_path_factory):
    return analyze(["paper-a"], None, None, tmp_path_factory.mktemp("out") / "report", tracking_uri=store)


def by_name(result) -> dict[str, pd.Series]:
    return {row.run_name: row for _, row in result.runs.iterrows()}


# --- runs.csv --------------------------------------------------------------------------------------


def test_only_training_runs_with_an_epoch_are_analysed(result):
    assert sorted(result.runs["run_name"]) == ["r1", "r2", "r3", "r4"]
    assert result.n_matched == 5 and result.n_without_epochs == 1
    assert result.route == "sql"


def test_runs_csv_columns(result):
    header = (result.out_dir / "runs.csv").read_text().splitlines()[0].split(",")
    assert header[:15] == [
        "run_id", "params.batch_size", "epochs", "max_val_f1", "max_val_f1_epoch", "train_time_s", "energy_total_kwh",
        "wh_per_epoch", "wh_per_minute", "energy_at_f1_40_kwh", "energy_at_95pct_max_kwh", "energy_at_max_kwh",
        "extra_cost_95_to_max", "savings_stop_at_max", "savings_stop_at_95pct",
    ]  # fmt: skip


def test_per_run_numbers_from_the_curves(result):
    runs = by_name(result)
    r1, r2, r3, r4 = (runs[n] for n in ("r1", "r2", "r3", "r4"))
    # r1 logged max_val_f1 = 0.99 and energy_total_kwh = 42 as summaries: the history wins.
    assert (r1.max_val_f1, r1.max_val_f1_epoch, r1.energy_total_kwh, r1.train_time_s) == (0.60, 5, 0.6, 3600.0)
    assert (r1.energy_at_f1_40_kwh, r1.energy_at_95pct_max_kwh, r1.energy_at_max_kwh) == (0.2, 0.4, 0.5)
    assert r1.extra_cost_95_to_max == pytest.approx(0.25)
    assert r1.wh_per_epoch == pytest.approx(100.0) and r1.wh_per_minute == pytest.approx(10.0)
    assert (r2.max_val_f1_epoch, r2.energy_at_max_kwh, r2.energy_at_95pct_max_kwh) == (
        4,
        0.8,
        0.8,
    )  # tie: first wins
    assert r2.savings_stop_at_max == pytest.approx(1 - 0.8 / 1.2)
    assert math.isnan(r3.energy_at_f1_40_kwh)  # never reached: empty, not invented
    assert (r3.energy_at_95pct_max_kwh, r3.energy_at_max_kwh, r3.extra_cost_95_to_max) == (0.45, 0.9, 1.0)
    assert (r4.epochs, r4.max_val_f1, r4.energy_at_f1_40_kwh, r4.wh_per_minute) == (
        3,
        0.45,
        0.10,
        pytest.approx(50.0),
    )
    assert runs["r4"].hardware == "CPU AMD EPYC" and runs["r1"].hardware == "NVIDIA A100-SXM4-40GB"
    csv = pd.read_csv(result.out_dir / "runs.csv")
    assert csv.loc[csv.run_name == "r3", "energy_at_f1_40_kwh"].isna().all()


# --- Table 1 / Table 2 -----------------------------------------------------------------------------


def md_rows(path) -> list[list[str]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def test_table1_markdown(result):
    rows = md_rows(result.out_dir / "table1.md")
    assert rows[0] == [
        "Batch",
        "Runs",
        "Max F1 (%)",
        "Time (hh:mm)",
        "Total (kWh)",
        "Epoch (Wh)",
        "Minute (Wh)",
    ]
    # max F1 (.60 .50 .38): mean 49.3, sample std 11.0; time 1 h, 2 h, 1.5 h: 01:30 ± 0:30;
    # energy .6 1.2 .9: 0.90 ± 0.30; Wh/epoch 100 200 150; Wh/min 10 10 10.
    assert rows[1] == ["4", "3", "49.3 ± 11.0", "01:30 ± 0:30", "0.90 ± 0.30", "150.0 ± 50.0", "10.0 ± 0.0"]
    # A group of one run: the value alone, no spread (never "± 0", never "± n/a").
    assert rows[2] == ["8", "1", "45.0", "00:03", "0.15", "50.0", "50.0"]


def test_table2_markdown(result):
    rows = md_rows(result.out_dir / "table2.md")
    assert rows[0] == [
        "Batch", "Runs", "Max F1 (%)", "95 % Max F1 (%)", "@F1=40 % (kWh)", "@95 % Max (kWh)", "@Max (kWh)",
        "Total (kWh)", "Extra 95 %->Max",
    ]  # fmt: skip
    # 95 %: .57 .475 .361 → 46.9 ± 10.5; E40 over the 2 runs that reached it: .2 .6 → 0.40 ± 0.28 (2/3);
    # E95 .4 .8 .45 → 0.55 ± 0.22; Emax .5 .8 .9 → 0.73 ± 0.21; extra .25 0 1 → 42 %.
    assert rows[1] == [
        "4", "3", "49.3 ± 11.0", "46.9 ± 10.5", "0.40 ± 0.28 (2/3)", "0.55 ± 0.22", "0.73 ± 0.21", "0.90 ± 0.30", "42 %",
    ]  # fmt: skip
    assert rows[2] == ["8", "1", "45.0", "42.8", "0.10", "0.10", "0.10", "0.15", "0 %"]


def test_table_csv_numbers(result):
    t1 = pd.read_csv(result.out_dir / "table1.csv")
    assert list(t1.columns[:5]) == ["cohort", "params.batch_size", "n_runs", "max_val_f1_mean", "max_val_f1_std"]
    assert set(t1["cohort"]) == {"all runs"}  # r1-r4 logged no config: one cohort
    four = t1[t1["params.batch_size"] == 4].iloc[0]
    assert four.n_runs == 3
    assert four.max_val_f1_mean == pytest.approx((0.6 + 0.5 + 0.38) / 3)
    assert four.energy_total_kwh_std == pytest.approx(0.3)
    assert four.train_time_s_mean == pytest.approx(5400.0) and four.train_time_s_std == pytest.approx(1800.0)
    eight = t1[t1["params.batch_size"] == 8].iloc[0]
    assert eight.n_runs == 1 and math.isnan(eight.max_val_f1_std)
    t2 = pd.read_csv(result.out_dir / "table2.csv")
    four = t2[t2["params.batch_size"] == 4].iloc[0]
    assert four.energy_at_f1_40_kwh_mean == pytest.approx(0.4) and four.energy_at_f1_40_kwh_n == 2
    assert four.extra_cost_95_to_max_mean == pytest.approx((0.25 + 0 + 1) / 3)


def test_latex_table(result):
    tex = (result.out_dir / "table2.tex").read_text()
    assert r"\begin{tabular}{lrrrrrrrr}" in tex and r"\toprule" in tex
    assert r"0.40 $\pm$ 0.28 (2/3)" in tex and r"42 \%" in tex and r"Extra 95 \%$\rightarrow$Max" in tex


def test_savings_table(result):
    rows = md_rows(result.out_dir / "savings.md")
    # stop at best: 1-.5/.6 = 16.7 %, 1-.8/1.2 = 33.3 %, 1-.9/.9 = 0 → 17 ± 17 %
    assert rows[1][4] == "17 ± 17 %"


# --- machines ---------------------------------------------------------------------------------------


def test_group_by_hardware_falls_back_to_cpu(store, tmp_path):
    result = analyze(["paper-a"], None, ["hardware"], tmp_path / "hw", tracking_uri=store)
    rows = md_rows(tmp_path / "hw" / "table1.md")
    assert [r[0] for r in rows[1:]] == ["CPU AMD EPYC", "NVIDIA A100-SXM4-40GB"]
    assert rows[0][0] == "Hardware"
    assert "hardware" in result.runs.columns


def test_a_calibration_charged_by_another_attribution_does_not_normalise(caplog):
    from sedwatt_analysis.machines import Calibration, add_normalised_energy
    from sedwatt_analysis.runs import RunRecord

    hw = {"hw.gpu_model": "none", "hw.cpu_model": "Test CPU"}
    records = {
        run: RunRecord(run, "e", run, "FINISHED", 0, tags={**hw, "energy.attribution": rule})
        for run, rule in (("new", "process-cpu-use"), ("old", "process-cpu-share"))
    }
    runs = pd.DataFrame({"run_id": ["new", "old"], "energy_total_kwh": [1.0, 1.0]})
    calibration = Calibration("cal", ("none", "Test CPU"), 0.5, 0.25, attribution="process-cpu-use")
    with caplog.at_level("WARNING", logger="sedwatt_analysis.machines"):
        frame = add_normalised_energy(runs, records, {(calibration.fingerprint, calibration.attribution): calibration})
    assert frame["energy_total_norm_kwh"].iloc[0] == pytest.approx(0.5)
    assert math.isnan(frame["energy_total_norm_kwh"].iloc[1])
    assert "1 run(s) not normalised" in caplog.text


def test_normalised_energy_with_a_calibration(result):
    runs = by_name(result)
    assert runs["r1"].energy_norm_factor == pytest.approx(0.5)
    assert runs["r1"].energy_total_norm_kwh == pytest.approx(0.3)
    assert math.isnan(runs["r4"].energy_total_norm_kwh)  # no calibration for the CPU machine
    rows = md_rows(result.out_dir / "hardware.md")
    assert rows[0][-1] == "Normalised total (kWh)"
    assert (
        rows[1][:2] == ["4", "NVIDIA A100-SXM4-40GB"] and rows[1][-1] == "0.45 ± 0.15"
    )  # 0.5 × (0.90 ± 0.30)


def test_registered_versions_listed_with_hardware_and_energy(result):
    versions = pd.read_csv(result.out_dir / "model_versions.csv")
    assert len(versions) == 1
    row = versions.iloc[0]
    assert (row["name"], row["version"], row["hw.gpu_model"]) == ("sedwatt-crnn", 1, A100["hw.gpu_model"])
    assert row["run_energy_total_kwh"] == pytest.approx(0.6) and row["energy_total_norm_kwh"] == pytest.approx(0.3)
    assert row["run_max_val_f1"] == pytest.approx(0.6)  # the old tag best_val_f1, read under its new name


# --- findings and report ----------------------------------------------------------------------------


def test_findings_are_computed(result):
    found = {f["key"]: f for f in json.loads((result.out_dir / "findings.json").read_text())}
    savings = found["early_stopping_savings"]["values"]
    assert savings["stop_at_max_mean"] == pytest.approx(
        (1 - 0.5 / 0.6 + 1 - 0.8 / 1.2 + 0 + 1 - 0.1 / 0.15) / 4
    )
    assert savings["stop_at_max_max"] == pytest.approx(1 / 3)
    assert found["last_5_percent_cost"]["values"]["mean"] == pytest.approx((0.25 + 0 + 1 + 0) / 4)
    assert found["never_reached_40"]["values"] == {"never": 1, "runs": 4}
    variation = found["energy_per_minute_variation"]["values"]
    assert variation["across_groups"] == pytest.approx((50 - 10) / 10)  # group means 10 and 50 Wh/min
    assert variation["across_hardware"] == pytest.approx((50 - 10) / 10)
    assert "Stopping at the first epoch reaching the max F1 would have saved 21 %" in found["early_stopping_savings"]["text"]


def test_report_is_self_contained(result):
    html = result.report_path.read_text()
    assert result.report_path.name == "report.html"
    assert html.count("data:image/png;base64,") == 5
    assert not re.search(r'src="(?!data:)', html)
    assert "49.3 ± 11.0" in html and "0.40 ± 0.28 (2/3)" in html
    assert "Stopping at the first epoch reaching the max F1" in html
    for png in ("f1_vs_energy.png", "energy_rates.png", "pareto.png", "time_vs_energy.png"):
        assert (result.out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_energies_switch_to_wh_and_seconds(store, tmp_path):
    analyze(["paper-cpu"], None, None, tmp_path / "cpu", tracking_uri=store)
    rows = md_rows(tmp_path / "cpu" / "table2.md")
    assert rows[0][4] == "@F1=40 % (Wh)"
    # One run reached 40 % at 0.0008 kWh = 0.8 Wh; totals 0.8 and 1.0 Wh: 0.9 ± 0.14. The smallest value,
    # 0.8, needs 2 decimals for two significant digits, and all energy columns share them.
    assert rows[1][4] == "0.80 (1/2)"
    assert rows[1][7] == "0.90 ± 0.14"
    t1 = md_rows(tmp_path / "cpu" / "table1.md")
    assert t1[0][3] == "Time (hh:mm:ss)" and t1[1][3] == "00:01:10 ± 0:00:14"  # 60 s and 80 s


def test_never_reached_versus_not_measured(store, tmp_path):
    result = analyze(["paper-edge"], None, None, tmp_path / "edge", tracking_uri=store)
    rows = md_rows(tmp_path / "edge" / "table2.md")
    # batch 2 measured energy but never reached 40 %; batch 64 reached it but measured no energy.
    assert rows[1][:5] == ["2", "1", "20.0", "19.0", "never (0/1)"]
    assert rows[2][:5] == ["64", "1", "60.0", "57.0", "n/a (0/1)"]
    assert rows[2][7] == "n/a (0/1)"
    t1 = md_rows(tmp_path / "edge" / "table1.md")
    assert t1[2][4:] == ["n/a (0/1)", "n/a (0/1)", "n/a (0/1)"]
    no_energy = result.runs.set_index("params.batch_size").loc["64"]
    assert math.isnan(no_energy.energy_total_kwh) and no_energy.max_val_f1 == 0.6 and no_energy.train_time_s == 20.0
    assert result.report_path.is_file()


# --- selecting runs, user errors ----------------------------------------------------------------------


def test_filter_and_several_experiments(store, tmp_path):
    result = analyze(
        ["paper-a", "paper-cpu"],
        "params.seed = '1'",
        ["experiment", "params.batch_size"],
        tmp_path / "f",
        tracking_uri=store,
    )
    assert sorted(result.runs["run_name"]) == ["c1", "r1", "r4"]
    rows = md_rows(tmp_path / "f" / "table1.md")
    assert rows[0][:3] == ["Experiment", "Batch", "Runs"]
    assert [r[:3] for r in rows[1:]] == [
        ["paper-a", "4", "1"],
        ["paper-a", "8", "1"],
        ["paper-cpu", "4", "1"],
    ]


@pytest.mark.parametrize(
    ("experiments", "filter_string", "group_by", "message"),
    [
        (["nope"], None, None, r"--experiment 'nope': no such experiment .*known: .*paper-a"),
        (
            ["paper-a"],
            "params.batch_size = 4",
            None,
            r"--filter 'params.batch_size = 4': MLflow rejected it: Expected a quoted",
        ),
        (["paper-a"], "params.seed = '99'", None, r"experiment 'paper-a' with --filter .*: no runs matched"),
        (["paper-a"], "tags.sedwatt.kind = 'search'", None, r"runs matched, but none is a training run"),
        (
            ["paper-a"],
            None,
            ["params.lr"],
            r"--group-by 'params.lr': none of the 5 runs has it .*params.batch_size",
        ),
        (["paper-a"], None, ["batch_size"], r"--group-by 'batch_size': name a param or tag"),
        (["paper-a"], "params.seed = '9'", None, r"1 training run\(s\) matched, but none has a logged epoch"),
    ],
)
def test_user_errors_are_one_line(store, tmp_path, experiments, filter_string, group_by, message):
    with pytest.raises(SedwattError, match=message) as caught:
        analyze(experiments, filter_string, group_by, tmp_path / "out", tracking_uri=store)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing written


def test_missing_sqlite_store_is_a_user_error(tmp_path):
    with pytest.raises(SedwattError, match="no such database"):
        analyze(["x"], out_dir=tmp_path / "o", tracking_uri=f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


def test_cli(store, tmp_path, monkeypatch, capsys):
    from sedwatt.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    out = tmp_path / "cli"
    assert main(["analyze", "--experiment", "paper-a", "--group-by", "hardware", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed and "analysed 4 training runs" in printed
    assert main(["analyze", "--experiment", "nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sedwatt analyze: error: --experiment 'nope'") and "\n" not in err


# --- pieces ---------------------------------------------------------------------------------------


def test_curves_keep_the_last_value_of_a_step_logged_twice():
    table = pd.DataFrame(
        [
            ("a", "val_f1", 1, 10, 0.1), ("a", "val_f1", 2, 20, 0.2), ("a", "val_f1", 2, 30, 0.25),
            ("a", "energy_cum_kwh", 1, 10, 1.0), ("a", "energy_cum_kwh", 2, 30, 2.0),
            ("a", "cum_time_s", 2, 30, 60.0), ("a", "energy_cum_kwh", 3, 40, 3.0),  # step 3: no F1, not an epoch
            ("b", "val_f1", 1, 10, float("nan")), ("b", "cum_time_s", 1, 10, 5.0),
        ],
        columns=["run_id", "key", "step", "timestamp", "value"],
    )  # fmt: skip
    result = curves(table)
    assert list(result["a"]["step"]) == [1, 2]
    assert list(result["a"]["val_f1"]) == [0.1, 0.25]
    assert list(result["a"]["energy_cum_kwh"]) == [1.0, 2.0]
    assert np.isnan(result["a"]["cum_time_s"][0]) and result["a"]["cum_time_s"][1] == 60.0
    assert np.isnan(result["b"]["val_f1"][0]) and np.isnan(
        result["b"]["energy_cum_kwh"][0]
    )  # a logged NaN is an epoch


def test_formatting_helpers():
    assert hhmm(30480, pad=True, with_seconds=False) == "08:28"
    assert hhmm(2700, pad=False, with_seconds=False) == "0:45"
    assert hhmm(70, pad=True, with_seconds=True) == "00:01:10"
    assert decimals_for([1.27, 0.83], 2) == 2
    assert decimals_for([0.0123], 2) == 3
    assert decimals_for([0.0], 1) == 1
    assert sorted(["16", "4", "32", "8"], key=natural_key) == ["4", "8", "16", "32"]
    assert sorted(["GTX 1080 Ti", "GTX 980", "A100"], key=natural_key) == ["A100", "GTX 980", "GTX 1080 Ti"]
    assert latex_escape("a_b 5 % & x ± y") == r"a\_b 5 \% \& x $\pm$ y"
    assert normalize_group_key("params.`batch size`") == "params.batch size"
    assert normalize_group_key("tags.hw.gpu_model") == "tags.hw.gpu_model"


def test_pareto_mask():
    f1 = np.array([0.5, 0.6, 0.55, 0.6, np.nan])
    energy = np.array([1.0, 2.0, 3.0, 2.0, 0.1])
    # run 2 is beaten by run 1 (more F1, less energy); runs 1 and 3 tie and both stay.
    assert pareto_mask(f1, energy).tolist() == [True, True, False, True, False]
