"""`sedwatt analyze --policies`: stopping rules replayed over recorded histories, against hand-worked numbers.

Three runs in a real SQLite store (one cohort; params.batch_size 16, 16, 32), per epoch:

  a (16)  val_f1  .10 .30 .40 .44 .46 .465 .47 .47     energy_kwh .1 each (logged) → cum .1 … .8
          obj     .20 .35 .40 .42 .41 .41  .43 .43
  b (16)  val_f1  .20 .30 .35 .37 .37 .37  (= obj)     energy_cum_kwh .2 … 1.2 only (energy_kwh not logged:
                                                       the replay takes the differences, .2 per epoch)
  c (32)  val_f1  .50 .62 .62 .62  (= obj)              energy_kwh .1 each → cum .1 … .4

Grid "patience=1,2 slowdown=20%:2 energy=3:2", worked out on run a:
  patience(1):  obj best .42 at epoch 4, epoch 5 waited 1 → stop 5: .5 of .8 kWh (saved .375), F1 .46,
                lost 1 point
  patience(2):  epoch 6 waited 2 → stop 6: .6 kWh (saved .25), best F1 so far .465, lost .5 point
  slowdown(20 %, 2 epochs): epoch 3: .10 → .40 (+300 %); 4: .30 → .44 (+46.7 %);
                5: .40 → .46 (+15 % < 20 %) → stop 5
  energy(3 per kWh, 2 epochs): epoch 3: +300 % for .2 kWh = 15/kWh; 4: +46.7 % / .2 = 2.33 < 3 → stop 4:
                .4 kWh (saved .5), F1 .44, lost 3 points
  oracle: 95 % × .47 = .4465, first reached at epoch 5 (.46): saved .375, runs.csv's savings_stop_at_95pct
  never:  epoch 8, saved 0, lost 0
Run b: patience(1) stop 5 (saved 1/6, lost 0); patience(2) stop 6 (its last epoch: fired, saved 0);
  slowdown: epoch 4 +23.3 %, 5: .35 → .37 (+5.7 %) → stop 5 (saved 1/6); energy: epoch 3: +75 % for .4 kWh
  = 1.875 < 3 → stop 3 (.6 of 1.2: saved .5, F1 .35, lost 2 points); oracle .3515 → epoch 4 (saved 1/3).
Run c: patience(1) stop 3 (saved .25); patience(2) stop 4 (saved 0); slowdown: epoch 3 +24 %, 4: 0 %
  → stop 4 (saved 0); energy: epoch 3: +24 % / .2 kWh = 1.2 → stop 3 (saved .25); all lose 0;
  oracle epoch 2 (saved .5).
Cohort means (saved, lost): patience(1) (.2639, .333), patience(2) (.0833, .1667), slowdown (.1806, .333),
  energy (.4167, 1.667), never (0, 0): slowdown is beaten by patience(1) (more saved, same loss), the
  others form the Pareto front; the largest saving for ≤ 1 point is patience(1): 26 % for 0.3 points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sedwatt_analysis import analyze
from sedwatt_analysis.policies import DEFAULT_POLICIES, parse_policies, replay_run, run_history, stop_index
from sedwatt_analysis.synthetic import SyntheticRun, log_runs

from sedwatt.cli import main
from sedwatt.config import load_config
from sedwatt.errors import SedwattError
from sedwatt.runner import train_run
from sedwatt.training.callbacks import RunState
from sedwatt.training.early_stopping import EnergyAwareStopping, PatienceStopping, SlowdownStopping

GRID = "patience=1,2 slowdown=20%:2 energy=3:2"
P1, P2 = "patience(1 epoch)", "patience(2 epochs)"
SLOW, ENERGY = "slowdown(20 %, 2 epochs)", "energy(3 per kWh, 2 epochs)"
ORACLE, NEVER = "oracle: 95 % of max F1 (hindsight)", "never stop"
TAGS = {"hw.gpu_model": "none", "hw.cpu_model": "AMD EPYC"}


def cumulative(step: float, n: int) -> list[float]:
    return [step * (i + 1) for i in range(n)]


def recorded_runs() -> list[SyntheticRun]:
    a_f1 = [0.10, 0.30, 0.40, 0.44, 0.46, 0.465, 0.47, 0.47]
    a_obj = [0.20, 0.35, 0.40, 0.42, 0.41, 0.41, 0.43, 0.43]
    b_f1 = [0.20, 0.30, 0.35, 0.37, 0.37, 0.37]
    c_f1 = [0.50, 0.62, 0.62, 0.62]
    return [
        SyntheticRun(a_f1, cumulative(0.1, 8), cumulative(60, 8), params={"batch_size": "16", "seed": "1"},
                     tags=TAGS, name="a", extra={"obj_metric": a_obj, "energy_kwh": [0.1] * 8}),
        SyntheticRun(b_f1, cumulative(0.2, 6), cumulative(60, 6), params={"batch_size": "16", "seed": "2"},
                     tags=TAGS, name="b", extra={"obj_metric": b_f1}),
        SyntheticRun(c_f1, cumulative(0.1, 4), cumulative(60, 4), params={"batch_size": "32", "seed": "1"},
                     tags=TAGS, name="c", extra={"obj_metric": c_f1, "energy_kwh": [0.1] * 4}),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("policies-store")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    client = mlflow.MlflowClient(uri)
    log_runs(
        client,
        client.create_experiment("what-if", artifact_location=(root / "art").as_uri()),
        recorded_runs(),
    )
    return uri


@pytest.fixture(scope="module")
def result(store, tmp_path_factory):
    return analyze(
        ["what-if"], None, None, tmp_path_factory.mktemp("out") / "report", tracking_uri=store, policies=GRID
    )


def row(result, run_name: str, rule: str) -> pd.Series:
    frame = pd.read_csv(result.out_dir / "policies.csv")
    match = frame[(frame["run_name"] == run_name) & (frame["rule"] == rule)]
    assert len(match) == 1
    return match.iloc[0]


def test_run_a_by_hand(result):
    expected = {  # rule: (stop epoch, energy used, saved, F1 at stop, F1 lost in points, fired)
        P1: (5, 0.5, 0.375, 0.46, 1.0, True),
        P2: (6, 0.6, 0.25, 0.465, 0.5, True),
        SLOW: (5, 0.5, 0.375, 0.46, 1.0, True),
        ENERGY: (4, 0.4, 0.5, 0.44, 3.0, True),
        ORACLE: (5, 0.5, 0.375, 0.46, 1.0, True),
        NEVER: (8, 0.8, 0.0, 0.47, 0.0, False),
    }
    for rule, (epoch, used, saved, f1, lost, fired) in expected.items():
        r = row(result, "a", rule)
        assert r["stop_epoch"] == epoch, rule
        assert r["energy_used_kwh"] == pytest.approx(used), rule
        assert r["energy_saved_frac"] == pytest.approx(saved), rule
        assert r["val_f1_at_stop"] == pytest.approx(f1), rule
        assert r["val_f1_lost_points"] == pytest.approx(lost), rule
        assert r["max_val_f1"] == pytest.approx(0.47) and r["epochs"] == 8 and bool(r["rule_fired"]) is fired
    assert row(result, "a", P1)["stop_reason"] == (
        "patience: obj_metric has not improved for 1 epochs (best 0.4200 at epoch 4)"
    )
    assert row(result, "a", SLOW)["stop_reason"].startswith(
        "slowdown: best val_f1 rose 15.00% over the last 2 epochs"
    )


def test_runs_b_and_c_by_hand(result):
    # b logged only energy_cum_kwh: the energy rule reads its differences (.2 kWh per epoch).
    energy_b = row(result, "b", ENERGY)
    assert (energy_b["stop_epoch"], energy_b["val_f1_lost_points"]) == (3, pytest.approx(2.0))
    assert energy_b["energy_saved_frac"] == pytest.approx(0.5)
    assert "rose 75.00% for 400.00 Wh over the last 2 epochs" in energy_b["stop_reason"]
    patience_b = row(result, "b", P2)
    assert (patience_b["stop_epoch"], bool(patience_b["rule_fired"])) == (6, True)  # fired at its last epoch
    assert row(result, "b", SLOW)["energy_saved_frac"] == pytest.approx(1 / 6)
    assert [row(result, "c", rule)["stop_epoch"] for rule in (P1, P2, SLOW, ENERGY, ORACLE)] == [
        3,
        4,
        4,
        3,
        2,
    ]


def test_oracle_saving_is_the_runs_csv_savings_column(result):
    runs = pd.read_csv(result.out_dir / "runs.csv").set_index("run_id")
    oracle = pd.read_csv(result.out_dir / "policies.csv").query("rule == @ORACLE").set_index("run_id")
    assert len(oracle) == 3
    for run_id, r in oracle.iterrows():
        assert r["energy_saved_frac"] == runs.loc[run_id, "savings_stop_at_95pct"]  # the same number, exactly


def test_summary_pareto_front_and_sentence(result):
    summary = pd.read_csv(result.out_dir / "policies_summary.csv")
    b16 = summary[summary["params.batch_size"] == 16].set_index("rule")
    # a and b, slowdown: saved .375 and 1/6 → mean .2708, sample std .2083 / √2 = .1473
    assert b16.loc[SLOW, "energy_saved_frac_mean"] == pytest.approx((0.375 + 1 / 6) / 2)
    assert b16.loc[SLOW, "energy_saved_frac_std"] == pytest.approx((0.375 - 1 / 6) / 2**0.5)
    assert b16.loc[ENERGY, "val_f1_lost_points_mean"] == pytest.approx(2.5)
    assert list(b16.index) == [P1, P2, SLOW, ENERGY, ORACLE, NEVER]  # grid order, references last
    front = summary.drop_duplicates("rule").set_index("rule")["on_pareto_front"]
    assert front.to_dict() == {P1: True, P2: True, SLOW: False, ENERGY: True, ORACLE: False, NEVER: True}
    found = {f.key: f for f in result.findings}["stopping_rules"]
    assert found.text.startswith(
        "Over these 3 runs, patience(1 epoch) would have saved 26 % of the energy for 0.3 points of F1"
    )
    assert found.values["energy_saved_frac"] == pytest.approx((0.375 + 1 / 6 + 0.25) / 3)
    # one run in batch 32: its cells show the value alone
    md = (result.out_dir / "policies_summary.md").read_text()
    c_energy = next(line for line in md.splitlines() if line.startswith(f"| 32 | {ENERGY} |"))
    assert "±" not in c_energy and "| 1 | 3.0 |" in c_energy and "| 25 % |" in c_energy


def test_files_plot_and_report(result):
    names = {p.name for p in result.files}
    assert {
        "policies.csv",
        "policies_summary.csv",
        "policies_summary.md",
        "policies_summary.tex",
        "policies.png",
    } <= names
    assert (result.out_dir / "policies.png").read_bytes()[:4] == b"\x89PNG"
    assert r"\begin{tabular}" in (result.out_dir / "policies_summary.tex").read_text()
    html = result.report_path.read_text()
    assert "<h2>What-if stopping rules</h2>" in html
    assert "Over these 3 runs, patience(1 epoch) would have saved 26 %" in html
    keys = [f["key"] for f in json.loads((result.out_dir / "findings.json").read_text())]
    assert "stopping_rules" in keys


def test_grid_syntax_and_yaml(tmp_path):
    labels = [p.label for p in parse_policies("patience=5 slowdown=0.01:10,2%:5 energy=1")]
    assert labels == ["patience(5 epochs)", "slowdown(1 %, 10 epochs)", "slowdown(2 %, 5 epochs)",
                      "energy(1 per kWh, 10 epochs)", ORACLE, NEVER]  # fmt: skip
    yaml_file = tmp_path / "policies.yaml"
    yaml_file.write_text("patience: [5]\nslowdown: ['0.01:10', {min_rel_gain: 0.02, window: 5}]\nenergy: 1\n")
    assert [p.label for p in parse_policies(str(yaml_file))] == labels
    # YAML 1.1 reads an unquoted 1:10 as the base-60 number 70: the grid reads it as gain 1, window 10
    yaml_file.write_text("energy: [1:10, 5]\n")
    assert [p.label for p in parse_policies(str(yaml_file))][:2] == [
        "energy(1 per kWh, 10 epochs)",
        "energy(5 per kWh, 10 epochs)",
    ]
    assert len(parse_policies("")) == len(parse_policies(DEFAULT_POLICIES)) == 11


@pytest.mark.parametrize(
    "spec, named",
    [
        ("patience=5 slowdown=0.01:x", "'slowdown=0.01:x'"),
        ("patiense=5", "'patiense=5'"),
        ("patience=0", "'patience=0'"),
        ("energy=-1:10", "'energy=-1:10'"),
        ("slowdown=0.01,,0.02", "'slowdown=0.01,,0.02'"),
        ("slowdown=0.01 slowdown=1.00001%", "'slowdown=0.01 slowdown=1.00001%'"),  # one label, two rules
        ("missing.yaml", "missing.yaml"),
    ],
)
def test_bad_grid_is_one_line_naming_the_item(store, tmp_path, monkeypatch, capsys, spec, named):
    with pytest.raises(SedwattError, match="--policies"):
        parse_policies(spec)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", "--experiment", "what-if", "--policies", spec, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and named in err
    assert not (tmp_path / "o").exists()


def test_rules_sharing_a_label_are_refused(tmp_path):
    # A label is the rule's name in every table: two rules under one name would be averaged together.
    with pytest.raises(SedwattError) as info:
        parse_policies("energy=1:10,1.00001:10")
    assert str(info.value) == (
        "--policies 'energy=1:10,1.00001:10': the energy values 1.0 and 1.00001 both read as "
        "'energy(1 per kWh, 10 epochs)'; give values that differ within 4 significant digits"
    )
    yaml_file = tmp_path / "grid.yaml"
    yaml_file.write_text("slowdown: ['0.01:10', '0.0100001:10']\n")
    with pytest.raises(SedwattError, match=rf"^--policies {yaml_file}: the slowdown values 0\.01 and"):
        parse_policies(str(yaml_file))
    # The same rule twice is one rule, and values apart in the 4th digit keep apart.
    assert [p.label for p in parse_policies("slowdown=1%,0.01 energy=1,1.001")][:3] == [
        "slowdown(1 %, 10 epochs)", "energy(1 per kWh, 10 epochs)", "energy(1.001 per kWh, 10 epochs)",
    ]  # fmt: skip


def test_a_last_epoch_without_energy_keeps_the_savings():
    # Run a, its 8th epoch's energy not logged: the total is the 7th's .7 kWh (the last measured).
    a = recorded_runs()[0]
    curve = {
        "step": np.arange(1, 9), "val_f1": np.array(a.val_f1), "obj_metric": np.array(a.extra["obj_metric"]),
        "energy_cum_kwh": np.array([*cumulative(0.1, 7), np.nan]),
    }  # fmt: skip
    rows = {r["rule"]: r for r in replay_run(parse_policies(GRID), curve)}
    assert rows[NEVER]["energy_total_kwh"] == pytest.approx(0.7)
    assert (rows[NEVER]["stop_epoch"], rows[NEVER]["energy_saved_frac"]) == (8, 0.0)
    assert rows[P1]["energy_used_kwh"] == pytest.approx(0.5)  # stopped at epoch 5, as with every epoch logged
    assert rows[P1]["energy_saved_frac"] == pytest.approx(1 - 0.5 / 0.7)
    assert rows[ENERGY]["energy_saved_frac"] == pytest.approx(1 - 0.4 / 0.7)
    # No energy at all: the savings are unknown, not 0.
    curve["energy_cum_kwh"] = np.full(8, np.nan)
    assert all(np.isnan(r["energy_saved_frac"]) for r in replay_run(parse_policies(GRID), curve))


def test_bad_yaml_names_the_file_and_entry(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("slowdown: [{gain: 0.01}]\n")
    with pytest.raises(SedwattError, match=r"p\.yaml: slowdown\[0\]: expected the keys min_rel_gain"):
        parse_policies(str(bad))


def test_cli_writes_the_files(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cli"
    assert main(["analyze", "--experiment", "what-if", "--policies", GRID, "--out", str(out)]) == 0
    assert "- Over these 3 runs, patience(1 epoch) would have saved 26 %" in capsys.readouterr().out
    assert len(pd.read_csv(out / "policies.csv")) == 3 * 6
    # --policies without a value: the default grid (9 rules + the 2 references)
    assert main(["analyze", "--experiment", "what-if", "--out", str(out / "d"), "--policies"]) == 0
    assert pd.read_csv(out / "d" / "policies.csv")["rule"].nunique() == 11
    # without --policies nothing is replayed
    assert main(["analyze", "--experiment", "what-if", "--out", str(out / "none")]) == 0
    assert not (out / "none" / "policies.csv").exists()


# --- live training vs replay ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting, grid",
    [
        (["train.slowdown_min_rel_gain=0.01", "train.slowdown_window=2"], "slowdown=0.01:2"),
        (["train.min_rel_gain_per_kwh=1e9", "train.slowdown_window=2"], "energy=1e9:2"),
    ],
)
def test_replay_stops_where_the_live_callback_did(tiny_data, tmp_path, monkeypatch, setting, grid, tiny_overrides):
    """A real tiny training run with a stopping rule on; the same rule replayed on its logged history."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    overrides = [*tiny_overrides, "train.epochs=6", "train.batch_size=32", f"data.cache_dir={tmp_path / 'cache'}",
                 f"train.out_dir={tmp_path / 'out'}", "energy.measure_power_secs=1",
                 "tracking.log_model=false", "tracking.experiment=live", *setting]  # fmt: skip
    outcome = train_run(load_config(None, overrides), tiny_data)
    mlflow.set_tracking_uri(None)
    live_epochs = len(outcome.state.history)
    tag = mlflow.MlflowClient(uri).get_run(outcome.run_id).data.tags.get("sedwatt.stop_reason", "")
    if setting[0].startswith("train.slowdown"):
        assert live_epochs < 6 and tag.startswith("slowdown:")  # F1 barely moves in 6 tiny epochs
    replayed = analyze(["live"], None, None, tmp_path / "report", tracking_uri=uri, policies=grid).policies
    rule = replayed[replayed["rule"] == replayed["rule"].iloc[0]].iloc[0]
    assert rule["run_id"] == outcome.run_id and rule["epochs"] == live_epochs
    assert bool(rule["rule_fired"]) == bool(tag)
    assert rule["stop_reason"] == tag
    if tag:
        assert rule["stop_epoch"] == live_epochs  # the epoch the live callback stopped after


def test_replay_is_the_training_loop_calling_the_callback(tmp_path):
    """Each epoch appended to state.history then the callback, as the loop does: same stop, same reason."""
    make = {"patience": lambda p: PatienceStopping(int(p.value)),
            "slowdown": lambda p: SlowdownStopping(p.value, p.window),
            "energy": lambda p: EnergyAwareStopping(p.value, p.window)}  # fmt: skip
    for run in recorded_runs():
        n = len(run.val_f1)
        curve = {"step": np.arange(1, n + 1), "val_f1": np.array(run.val_f1),
                 "energy_cum_kwh": np.array(run.energy_cum_kwh),
                 **{k: np.array(v) for k, v in run.extra.items()}}  # fmt: skip
        history = run_history(curve)
        for policy in parse_policies(GRID)[:-2]:
            state, callback = RunState(config=load_config(), out_dir=tmp_path), make[policy.kind](policy)
            for epoch in history:
                state.history.append(dict(epoch))
                callback.on_epoch_end(state, state.history[-1])
                if state.stop_reason:
                    break
            index, reason = stop_index(policy, history)
            assert (index + 1, reason) == (len(state.history), state.stop_reason), (run.name, policy.label)


def test_mlproject_analyze_entry_passes_policies(store, tmp_path):
    """The entry's `policies` parameter ("" = none) reaches `sedwatt analyze --policies` as one argument."""
    root = Path(__file__).resolve().parents[1]
    entry = yaml.safe_load((root / "MLproject").read_text())["entry_points"]["analyze"]
    assert entry["parameters"]["policies"] == {"type": "string", "default": ""}
    assert "--policies {policies}" in entry["command"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    script = str(root / "mlflow_project" / "analyze.py")
    for policies, out in ((GRID, tmp_path / "grid"), ("", tmp_path / "none")):
        args = [sys.executable, script, "--experiment", "what-if", "--filter", "",
                "--group-by", "params.batch_size", "--out", str(out), "--policies", policies]  # fmt: skip
        subprocess.run(args, env=env, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    assert pd.read_csv(tmp_path / "grid" / "policies.csv")["rule"].nunique() == 6
    assert (tmp_path / "none" / "report.html").is_file() and not (tmp_path / "none" / "policies.csv").exists()


def test_each_cohort_is_replayed_on_its_own(tmp_path):
    """The demo's 45-epoch training run and 8-epoch trials: two cohorts, each replayed on its own."""
    from cohort_runs import demo_runs

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = mlflow.MlflowClient(uri)
    log_runs(
        client, client.create_experiment("demo", artifact_location=(tmp_path / "a").as_uri()), demo_runs()
    )
    result = analyze(["demo"], None, None, tmp_path / "report", tracking_uri=uri, policies="patience=3")
    rows = pd.read_csv(tmp_path / "report" / "policies.csv")
    assert rows.groupby("cohort")["run_id"].nunique().to_dict() == {
        "train.epochs = 8": 3,
        "train.epochs = 45": 1,
    }
    assert (tmp_path / "report" / "policies_cohort1.png").is_file()
    assert (tmp_path / "report" / "policies_cohort2.png").is_file()
    summary = pd.read_csv(tmp_path / "report" / "policies_summary.csv")
    assert set(summary["cohort"]) == {"train.epochs = 8", "train.epochs = 45"}
    sentences = [f for f in result.findings if f.key == "stopping_rules"]
    assert [f.cohort for f in sentences] == ["train.epochs = 8", "train.epochs = 45"]
    # F1 rises every epoch in these runs: patience never fires, and the one run alone says "this run"
    assert sentences[1].text.startswith("Over this run, none of the replayed stopping rules")
    html = result.report_path.read_text()
    assert "<h2>Cohort 2 (train.epochs = 45): What-if stopping rules</h2>" in html
