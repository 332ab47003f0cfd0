"""Only comparable runs are compared: cohorts of equal config, single-run cells, clipped error bars, run links.

The demo's case in a real SQLite store: one 45-epoch training run (batch 16, `mlflow run` params) and
three 8-epoch search trials (batch 16 / 32 / 48, Optuna's params, no model registered), all with the
params the training callback logs (the flattened cpu_demo config). Per epoch, hand-picked:

  train  45 epochs, 60 s and 10 Wh each, F1 up to .60   → 2700 s, 0.45 kWh, 10 Wh/min
  b16     8 epochs, 60 s and 10 Wh each, F1 up to .42   →  480 s, 80 Wh,   10 Wh/min
  b32     8 epochs, 45 s and 15 Wh each, F1 up to .45   →  360 s, 120 Wh,  20 Wh/min
  b48     8 epochs, 40 s and 20 Wh each, F1 up to .35   →  320 s, 160 Wh,  30 Wh/min

Among the trials: energy per minute varies by (30 − 10) / 10 = 200 %, time by (480 − 320) / 320 = 50 %,
total energy by (160 − 80) / 80 = 100 %; the best F1 is batch 32. Mixed with the training run (the bug),
batch 16 would read (2700 + 480) / 2 s and (.60 + .42) / 2 F1: time "varies by 397 %", best batch 16.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sedwatt_analysis import analyze
from sedwatt_analysis.cohorts import NOT_LOGGED, split_cohorts
from sedwatt_analysis.links import run_url
from sedwatt_analysis.plots import clipped_error, energy_rates_figure
from sedwatt_analysis.runs import RunRecord
from sedwatt_analysis.synthetic import log_runs

from cohort_runs import demo_runs


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("cohort-store")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("demo", artifact_location=(root / "artifacts").as_uri())
    log_runs(client, experiment, demo_runs())
    result = analyze(["demo"], None, None, root / "report", tracking_uri=uri)
    return uri, result


def md_tables(path) -> list[tuple[str, list[list[str]]]]:
    """(title, rows) of every table in a Markdown file."""
    tables: list[tuple[str, list[list[str]]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("**"):
            tables.append((line.strip("*"), []))
        elif line.startswith("| "):
            tables[-1][1].append([c.strip() for c in line.strip("|").split(" | ")])
    return tables


def test_the_training_run_and_the_trials_are_two_cohorts(demo):
    _, result = demo
    assert [(a.cohort.label, sorted(a.runs["run_name"])) for a in result.cohorts] == [
        ("train.epochs = 8", ["trial-16", "trial-32", "trial-48"]),
        ("train.epochs = 45", ["train"]),
    ]
    by_name = result.runs.set_index("run_name")["cohort"]
    assert by_name["train"] == "train.epochs = 45" and by_name["trial-32"] == "train.epochs = 8"
    # runs.csv says it too
    csv = pd.read_csv(result.out_dir / "runs.csv").set_index("run_name")
    assert csv.loc["trial-48", "cohort"] == "train.epochs = 8"


def test_tables_are_per_cohort(demo):
    _, result = demo
    tables = md_tables(result.out_dir / "table1.md")
    assert [title for title, _ in tables] == [
        "Table 1: performance, time, energy by params.batch_size — Cohort 1 (train.epochs = 8)",
        "Table 1: performance, time, energy by params.batch_size — Cohort 2 (train.epochs = 45)",
    ]
    trials, train = tables[0][1], tables[1][1]
    assert [row[:2] for row in trials[1:]] == [["16", "1"], ["32", "1"], ["48", "1"]]
    # One run per group: the value alone. 2700 s < 1 h → hh:mm:ss; 0.45 kWh ≥ 0.1 → kWh.
    assert train[1] == ["16", "1", "60.0", "00:45:00", "0.45", "10.0", "10.0"]
    # 0.08 / 0.12 / 0.16 kWh: kWh (the largest ≥ 0.1), 3 decimals for two significant digits of 0.08.
    assert trials[1] == ["16", "1", "42.0", "00:08:00", "0.080", "10.0", "10.0"]
    t1 = pd.read_csv(result.out_dir / "table1.csv")
    sixteen = t1[t1["params.batch_size"] == 16].set_index("cohort")
    assert sixteen.loc["train.epochs = 45", "train_time_s_mean"] == 2700.0
    assert sixteen.loc["train.epochs = 8", "train_time_s_mean"] == 480.0  # not (2700 + 480) / 2


def test_findings_compare_only_within_a_cohort(demo):
    _, result = demo
    found = json.loads((result.out_dir / "findings.json").read_text())
    trials = {f["key"]: f for f in found if f["cohort"] == "train.epochs = 8"}
    train = {f["key"]: f for f in found if f["cohort"] == "train.epochs = 45"}
    assert {f["cohort"] for f in found} == {"train.epochs = 8", "train.epochs = 45", ""}
    assert [f["key"] for f in found if f["cohort"] == ""] == ["normalisation"]  # not a comparison
    variation = trials["energy_per_minute_variation"]["values"]
    assert variation["across_groups"] == pytest.approx(2.0)  # 10, 20, 30 Wh/min
    assert variation["time_across_groups"] == pytest.approx(0.5)  # 480, 360, 320 s
    assert variation["energy_across_groups"] == pytest.approx(1.0)  # 80, 120, 160 Wh
    assert trials["best_and_cheapest"]["values"] == {"best_f1_group": "32", "lowest_energy_group": "16"}
    assert trials["never_reached_40"]["values"] == {"never": 1, "runs": 3}  # batch 48 tops at 35 %
    # The training run's cohort has one batch size: nothing "varies", no best group.
    assert "energy_per_minute_variation" not in train and "best_and_cheapest" not in train
    assert train["single_group"]["values"] == {"groups": 1}
    assert not any("varies by" in f["text"] for f in train.values())
    assert train["never_reached_40"]["values"] == {"never": 0, "runs": 1}


def test_report_and_console_say_which_cohort(demo, tmp_path, monkeypatch, capsys):
    uri, result = demo
    html = result.report_path.read_text()
    assert "They are analysed as 2 cohorts of comparable runs" in html
    assert "<h3>Cohort 1 (train.epochs = 8)</h3>" in html and "<h3>Cohort 2 (train.epochs = 45)</h3>" in html
    assert "<h2>Cohort 2 (train.epochs = 45): Tables</h2>" in html
    assert html.count("data:image/png;base64,") == 10  # 5 plots per cohort
    assert (result.out_dir / "pareto_cohort2.png").read_bytes()[:4] == b"\x89PNG"
    assert "± n/a" not in html
    assert 'href="' not in html  # a sqlite store has no UI address: run ids stay plain text
    from sedwatt.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["analyze", "--experiment", "demo", "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert "2 cohorts of comparable runs" in printed
    assert (
        "cohort 1 (train.epochs = 8): 3 runs" in printed and "cohort 2 (train.epochs = 45): 1 run" in printed
    )
    assert re.search(r"^- \[train\.epochs = 45\] One params\.batch_size group \(16\)", printed, re.MULTILINE)


def test_wide_tables_scroll_instead_of_overflowing(demo):
    _, result = demo
    html = result.report_path.read_text()
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", html)
    runs_table = html[html.index("<h3>Runs (recomputed") :]
    assert runs_table.split("</h3>", 1)[1].startswith('<div class="table-wrap"><table>')


# --- which runs are comparable ---------------------------------------------------------------------


def record(run_id: str, **params: str) -> RunRecord:
    return RunRecord(run_id, "e", run_id, "FINISHED", 0, params=params)


def cohorts_of(records: list[RunRecord], keys: list[str]) -> list[tuple[list[str], dict[str, str]]]:
    return [(list(c.run_ids), c.differs) for c in split_cohorts(records, keys)]


def test_per_run_settings_do_not_split_but_config_does():
    same = {"train.epochs": "8", "model.rnn_hidden": "64", "dataset_fingerprint": "abc"}
    records = [
        record("a", **same, **{"train.seed": "1", "train.out_dir": "x", "tracking.experiment": "e1"},
               batch_size="16", **{"train.batch_size": "16"}, trial_number="0", name="cpu_demo"),
        record("b", **same, **{"train.seed": "2", "train.out_dir": "y", "tracking.experiment": "e2"},
               batch_size="32", **{"train.batch_size": "32"}, trial_number="1", name="other"),
    ]  # fmt: skip
    assert cohorts_of(records, ["params.batch_size"]) == [(["a", "b"], {})]
    # Grouped by seed instead, the batch size is a config difference: two cohorts, labelled by it.
    assert cohorts_of(records, ["params.seed"]) == [
        (["a"], {"train.batch_size": "16"}),
        (["b"], {"train.batch_size": "32"}),
    ]
    other_data = [
        records[0],
        record("c", **{**same, "dataset_fingerprint": "zzz"}, **{"train.batch_size": "16"}),
    ]
    assert [d for _, d in cohorts_of(other_data, ["params.batch_size"])] == [
        {"dataset_fingerprint": "abc"},
        {"dataset_fingerprint": "zzz"},
    ]


def test_the_device_setting_does_not_split():
    # "auto" and an explicit "cuda" train the same model on a GPU machine; the hw.* tags say where.
    same = {"train.epochs": "8", "train.precision": "fp32"}
    records = [record("a", **same, **{"train.device": "auto"}), record("b", **same, **{"train.device": "cuda"}),
               record("c", **same)]  # fmt: skip
    assert cohorts_of(records, ["params.batch_size"]) == [(["a", "b", "c"], {})]
    # What is computed does split: another precision.
    other = record("d", **{**same, "train.precision": "bf16", "train.device": "cuda"})
    assert [d for _, d in cohorts_of([*records, other], ["params.batch_size"])] == [
        {"train.precision": "bf16"},
        {"train.precision": "fp32"},
    ]


def test_missing_keys_take_the_default_and_the_callbacks_renamed_value_wins():
    # "b" was logged before validation.dtc existed: it counts as the default (0.7), like "a".
    a = record("a", **{"train.epochs": "8", "validation.dtc": "0.7"})
    b = record("b", **{"train.epochs": "8"})
    assert cohorts_of([a, b], ["params.batch_size"]) == [(["a", "b"], {})]
    # "c" had train.epochs already set by someone else; the config's 45 went to sedwatt.train.epochs.
    c = record("c", **{"train.epochs": "8", "sedwatt.train.epochs": "45"})
    assert cohorts_of([a, c], ["params.batch_size"]) == [
        (["a"], {"train.epochs": "8"}),
        (["c"], {"train.epochs": "45"}),
    ]
    # A run with no config key at all has an unknown config, not the defaults.
    bare = record("d", batch_size="4")
    assert cohorts_of([b, bare], ["params.batch_size"]) == [
        (["b"], {"train.epochs": "8"}),
        (["d"], {"train.epochs": NOT_LOGGED}),
    ]


def test_cohorts_that_agree_on_the_shown_params_keep_distinct_labels():
    # The label names a cohort in runs.csv, the tables and findings.json: a shared label merges cohorts.
    base = {"train.epochs": "8", "model.kernel_size": "3", "model.rnn_hidden": "64", "model.rnn_layers": "2"}
    other = {"train.epochs": "45", "model.kernel_size": "5", "model.rnn_hidden": "128",
             "model.rnn_layers": "1"}  # fmt: skip
    a = record("a", **base, **{"train.lr": "0.001"})
    b = record("b", **base, **{"train.lr": "0.002"})  # differs from "a" in the 4th param shown only
    c = record("c", **other, **{"train.lr": "0.001"})
    cohorts = split_cohorts([a, b, c], ["params.batch_size"])
    assert [c.run_ids for c in cohorts] == [("a",), ("b",), ("c",)]
    labels = [c.label for c in cohorts]
    assert len(set(labels)) == 3
    assert labels == [c.description for c in cohorts]  # the full labels, every cohort alike
    assert labels[1] == (
        "train.epochs = 8; model.kernel_size = 3; model.rnn_hidden = 64; model.rnn_layers = 2; "
        "train.lr = 0.002"
    )
    # Without a clash the label stays short.
    (first, second) = split_cohorts([a, c], ["params.batch_size"])
    assert first.label == "train.epochs = 8; model.kernel_size = 3; model.rnn_hidden = 64; +1 more"
    assert second.label != first.label


def test_grouping_by_the_epoch_budget_compares_it():
    records = [record("a", **{"train.epochs": "8"}), record("b", **{"train.epochs": "45"})]
    assert cohorts_of(records, ["params.train.epochs"]) == [(["a", "b"], {})]
    assert cohorts_of(records, ["params.epochs"]) == [(["a", "b"], {})]  # the entry point's name for it


# --- error bars and links ------------------------------------------------------------------------------


def test_lower_error_bar_stops_at_zero():
    mean, yerr = clipped_error(np.array([1.0, 1.0, 10.0]))  # mean 4, std 5.196: mean − std < 0
    assert mean == 4.0 and yerr[0, 0] == 4.0 and yerr[1, 0] == pytest.approx(np.std([1, 1, 10], ddof=1))
    assert clipped_error(np.array([2.0]))[1] is None  # one value: no bar
    _, tight = clipped_error(np.array([10.0, 11.0]))
    assert tight[0, 0] == tight[1, 0]  # symmetric when the bar stays above 0
    runs = pd.DataFrame({"g": ["a", "a", "a", "b"], "wh_per_epoch": [1.0, 1.0, 10.0, 3.0],
                         "wh_per_minute": [1.0, 1.0, 10.0, 3.0]})  # fmt: skip
    figure = energy_rates_figure(runs, ["g"])
    for ax in figure.axes:
        bars = [c for c in ax.containers if getattr(c, "errorbar", None) is not None]
        (segment,) = bars[0].errorbar.lines[2][0].get_segments()
        assert segment[:, 1].min() == 0.0 and segment[:, 1].max() == pytest.approx(4.0 + 5.196, abs=1e-3)


def test_run_url():
    expected = "http://127.0.0.1:5000/#/experiments/3/runs/abc123?workflowType=machine_learning"
    assert run_url("http://127.0.0.1:5000", "3", "abc123") == expected
    assert run_url("http://127.0.0.1:5000/", "3", "abc123") == expected
    # credentials never reach the page; a path prefix (server behind a proxy) is kept
    assert run_url("https://me:secret@mlflow.example.org/team/", "7", "r") == (
        "https://mlflow.example.org/team/#/experiments/7/runs/r?workflowType=machine_learning"
    )
    for uri in ("sqlite:///mlruns.db", "postgresql://u:p@h/db", "file:///tmp/mlruns", "databricks"):
        assert run_url(uri, "3", "abc123") is None
