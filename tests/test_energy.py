"""Energy measurement with the real CodeCarbon (offline), on short sleeps: sums, resume, provenance,
forced powers, the GPU fallback's replacement of the GPU term, silence, no network, no zombie, what the
files next to the figures say, and the one-line description of a figure.

Epochs here last ~0.4 s; CodeCarbon's per-task figures are still exact sums of its measurements,
and RAM power is a constant, so energy = power × time can be checked without timing assumptions.
These tests check CodeCarbon's machine figures, so they run with ``tracking_mode=machine`` (the process
attribution on top of them is tested in test_energy_attribution.py).
"""

from __future__ import annotations

import copy
import csv
import itertools
import logging
import socket
import time
from pathlib import Path

import pytest
import torch

from sedwatt.config import EnergyConfig, SedwattConfig
from sedwatt.energy import EnergyCallback, EnergySession, measure_energy, quiet_codecarbon
from sedwatt.energy.nvml import GpuPlan
from sedwatt.energy.provenance import describe_energy, format_energy
from sedwatt.errors import SedwattError
from sedwatt.training.callbacks import RunState

J_PER_KWH = 3.6e6
EPOCH_S = 0.4
ENERGY_METRICS = (
    "energy_kwh",
    "energy_cum_kwh",
    "cpu_energy_kwh",
    "gpu_energy_kwh",
    "ram_energy_kwh",
    "emissions_kg",
)


def run_config(**energy) -> SedwattConfig:
    config = SedwattConfig()
    config.train.device = "cpu"
    defaults = {"measure_power_secs": 0.5, "country_iso_code": "FRA", "tracking_mode": "machine"}
    for key, value in {**defaults, **energy}.items():
        setattr(config.energy, key, value)
    return config


def train(
    callback: EnergyCallback, state: RunState, epochs: range, gap_s: float = 0.0
) -> list[dict[str, float]]:
    """Drive the hooks like the training loop does, sleeping through each 'epoch'."""
    history = []
    for epoch in epochs:
        if history:
            time.sleep(gap_s)
        state.epoch = epoch
        callback.on_epoch_start(state)
        time.sleep(EPOCH_S)
        metrics = {"val_f1": 0.1 * epoch}
        callback.on_epoch_end(state, metrics)
        history.append(metrics)
    return history


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    """One run of 3 epochs (out of 4 configured) with pauses between epochs."""
    out = tmp_path_factory.mktemp("run")
    config = run_config()
    callback = EnergyCallback(config.energy, out, total_epochs=4)
    state = RunState(config=config, out_dir=out)
    callback.on_train_start(state)
    session = callback.session
    history = train(callback, state, range(1, 4), gap_s=0.3)
    callback.on_train_end(state)
    return {"out": out, "state": state, "history": history, "session": session, "callback": callback}


def test_metrics_added_each_epoch(three_epochs):
    history = three_epochs["history"]
    for epoch, metrics in enumerate(history, start=1):
        assert all(metrics[key] >= 0 for key in ENERGY_METRICS)
        assert metrics["energy_kwh"] > 0
        assert metrics["energy_kwh"] == pytest.approx(
            metrics["cpu_energy_kwh"] + metrics["gpu_energy_kwh"] + metrics["ram_energy_kwh"]
        )
        assert ("energy_pred_total_kwh" in metrics) == (epoch in (1, 3))
    assert history[0]["energy_pred_total_kwh"] == pytest.approx(history[0]["energy_cum_kwh"] * 4)
    assert history[2]["energy_pred_total_kwh"] == pytest.approx(history[2]["energy_cum_kwh"] / 3 * 4)


def test_epochs_sum_to_the_run_total(three_epochs):
    history = three_epochs["history"]
    per_epoch = [m["energy_kwh"] for m in history]
    assert [m["energy_cum_kwh"] for m in history] == pytest.approx(list(itertools.accumulate(per_epoch)))
    # CodeCarbon's own task CSV holds the same three epochs.
    files = three_epochs["state"].info["artifacts"]["energy/codecarbon"]
    tasks = [row for f in files if "emissions_sedwatt_" in f for row in read_csv(Path(f))]
    assert [row["task_name"] for row in tasks] == ["epoch_1", "epoch_2", "epoch_3"]
    assert sum(float(row["energy_consumed"]) for row in tasks) == pytest.approx(sum(per_epoch), rel=1e-9)
    # The tracker's run total excludes the 0.3 s pauses between epochs (they would add ~50 %).
    total = three_epochs["session"].tracker.final_emissions_data.energy_consumed
    assert sum(per_epoch) * (1 - 1e-9) <= total < 1.2 * sum(per_epoch)  # (float sums differ in the last bit)


def test_ram_energy_is_its_power_times_duration(three_epochs):
    ram_w = float(three_epochs["state"].info["tags"]["energy.ram_power_w"])
    for row in read_csv(three_epochs["out"] / "energy" / "epochs.csv"):
        # CodeCarbon integrates RAM power over its own sample intervals, which drift from the task's wall
        # duration by a few % on a loaded 2-core machine; 10 % still tells 20 W from any other wattage.
        assert float(row["ram_energy_kwh"]) * J_PER_KWH == pytest.approx(
            ram_w * float(row["duration_s"]), rel=0.10
        )
        assert float(row["duration_s"]) == pytest.approx(EPOCH_S, abs=0.15)


def test_per_epoch_csv_and_artifacts(three_epochs):
    state, out = three_epochs["state"], three_epochs["out"]
    csv_path = out / "energy" / "epochs.csv"
    assert state.info["artifacts"]["energy"] == str(csv_path)
    rows = read_csv(csv_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(r["complete"] == "1" and r["session"] == "1" for r in rows)
    for row, metrics in zip(rows, three_epochs["history"], strict=True):
        assert float(row["energy_kwh"]) == pytest.approx(metrics["energy_kwh"])
        assert float(row["energy_cum_kwh"]) == pytest.approx(metrics["energy_cum_kwh"])
        assert 0.0 <= float(row["cpu_util_pct"]) <= 100.0
        assert row["cpu_method"] == state.info["tags"]["energy.cpu_method"]
    for path in state.info["artifacts"]["energy/codecarbon"]:
        assert Path(path).is_file() and Path(path).parent == out / "energy" / "codecarbon"


def test_readme_explains_codecarbon_csvs_and_what_it_says_holds(three_epochs):
    state, out = three_epochs["state"], three_epochs["out"]
    readme = out / "energy" / "README.md"
    assert state.info["artifacts"]["energy/README.md"] == str(readme)
    text = readme.read_text()
    assert "emissions.csv" in text and "cpu_utilization_percent" in text and "machine" in text
    assert "Session 1 (3 epochs measured)" in text
    rows = read_csv(out / "energy" / "epochs.csv")
    files = state.info["artifacts"]["energy/codecarbon"]
    (summary,) = [row for f in files if Path(f).name == "emissions.csv" for row in read_csv(Path(f))]
    tasks = [row for f in files if "emissions_sedwatt_" in f for row in read_csv(Path(f))]
    machine = sum(float(r["machine_cpu_energy_kwh"]) + float(r["machine_ram_energy_kwh"]) for r in rows)
    # What the README says of CodeCarbon 3.3.2's files: the summary's energy covers every epoch (plus the
    # instant between the last epoch and the tracker's stop) but its duration only the last epoch ...
    assert machine * (1 - 1e-9) <= float(summary["energy_consumed"]) < 1.2 * machine
    assert float(rows[-1]["duration_s"]) - 0.01 <= float(summary["duration"]) < 0.5 * sum(
        float(r["duration_s"]) for r in rows
    )
    # ... and the task rows hold the epochs' machine figures with a CPU utilisation of 0, which ours is not.
    for task, row in zip(tasks, rows, strict=True):
        assert float(task["cpu_energy"]) == pytest.approx(float(row["machine_cpu_energy_kwh"]), rel=1e-9)
        assert float(task["ram_energy"]) == pytest.approx(float(row["machine_ram_energy_kwh"]), rel=1e-9)
        assert float(task["cpu_utilization_percent"]) == 0.0
    assert any(float(r["cpu_util_pct"]) > 0 for r in rows)


def test_description_of_the_recorded_run(three_epochs):
    """describe_energy on what this machine's run recorded: its tags and its last epoch's metrics."""
    tags, last = three_epochs["state"].info["tags"], three_epochs["history"][-1]
    text = describe_energy(last, tags)
    assert text.startswith(f"{format_energy(last['energy_cum_kwh'])} (")
    ram = f"RAM {format_energy(last['ram_energy_cum_kwh'])} constant {tags['energy.ram_power_w']} W estimate"
    assert ram in text
    assert text.endswith("; whole machine)") or "shared with busy processes" in text
    assert "no GPU" in text
    if tags["energy.cpu_method"] == "cpu-load-estimate":
        assert text.startswith(f"{format_energy(last['energy_cum_kwh'])} (estimate: CPU ")
        assert f"TDP × load estimate at {tags['energy.cpu_tdp_w']} W" in text
    epoch = describe_energy(last, tags, epoch=True, short=True)
    assert epoch.startswith(f"{format_energy(last['energy_kwh'])} (") and "whole machine" in epoch


# Tags and cumulative metrics as runs recorded them: this 2-core VM (no RAPL) in process mode, and a GPU
# server with RAPL and an NVML energy counter.
RECORDED_VM = (
    {
        "energy.tool": "codecarbon 3.3.2",
        "energy.cpu_method": "cpu-load-estimate",
        "energy.cpu_tdp_source": "default-4W-per-thread",
        "energy.cpu_tdp_w": "8",
        "energy.ram_method": "dimm-estimate",
        "energy.ram_power_w": "20",
        "energy.attribution": "process-cpu-share",
        "energy.gpu_method": "none",
    },
    {
        "energy_total_kwh": 0.00436,
        "cpu_energy_cum_kwh": 0.0011,
        "ram_energy_cum_kwh": 0.00326,
        "gpu_energy_cum_kwh": 0.0,
    },
)
RECORDED_GPU_SERVER = (
    {
        "energy.cpu_method": "rapl",
        "energy.ram_method": "dimm-estimate",
        "energy.ram_power_w": "40",
        "energy.gpu_method": "nvml-counter",
        "energy.attribution": "machine",
    },
    {
        "energy_cum_kwh": 1.234,
        "cpu_energy_cum_kwh": 0.2,
        "ram_energy_cum_kwh": 0.034,
        "gpu_energy_cum_kwh": 1.0,
    },
)


def test_description_of_recorded_provenance():
    tags, values = RECORDED_VM
    assert describe_energy(values, tags) == (
        "4.36 Wh (estimate: CPU 1.1 Wh TDP × load estimate at 8 W default TDP, "
        "RAM 3.26 Wh constant 20 W estimate from RAM size, no GPU; "
        "this process's share of the machine's CPU and RAM by CPU time)"
    )
    own_use = {**tags, "energy.attribution": "process-cpu-use"}  # runs since 2026-12-02
    assert describe_energy(values, own_use).endswith(
        "; this process's own use: its share of the machine's busy CPU time and of its CPU capacity)"
    )
    tags, values = RECORDED_GPU_SERVER
    assert describe_energy(values, tags) == (
        "1.23 kWh (partly estimated: CPU 200 Wh RAPL reading, "
        "RAM 34 Wh constant 40 W estimate from RAM size, "
        "GPU 1 kWh NVML energy counter; whole machine; GPU whole device)"
    )
    shared = {**tags, "energy.contended_epochs": "3", "energy.min_process_cpu_share": "0.45"}
    assert "whole machine, shared with busy processes in 3 epochs (this one down to 45%)" in describe_energy(
        values, shared
    )
    forced = {**RECORDED_VM[0], "energy.cpu_method": "forced-65W-cpu-load", "energy.ram_method": "forced-5W"}
    assert "CPU 1.1 Wh forced 65 W × load estimate, RAM 3.26 Wh constant forced 5 W" in describe_energy(
        RECORDED_VM[1], forced
    )
    assert describe_energy({}, tags) == "energy not measured"
    one_epoch = {"energy_kwh": 2e-5, "energy_process_cpu_share": 0.4}
    short = describe_energy(one_epoch, RECORDED_VM[0], epoch=True, short=True)
    assert short == "20 mWh (estimate, process share 0.40)"


def test_energy_format():
    assert [format_energy(k) for k in (0.0, 2e-5, 0.00436, 0.02712, 1.234)] == [
        "0 Wh",
        "20 mWh",
        "4.36 Wh",
        "27.1 Wh",
        "1.23 kWh",
    ]


def test_provenance_tags_match_this_machine(three_epochs):
    import codecarbon

    tags = three_epochs["state"].info["tags"]
    assert tags["energy.tool"] == f"codecarbon {codecarbon.__version__}"
    assert tags["energy.interval_s"] == "0.5"
    assert tags["energy.tracking_mode"] == "machine"
    assert tags["energy.attribution"] == "machine"
    assert tags["energy.country"] == "FRA"
    assert tags["energy.ram_method"] == "dimm-estimate"
    if not Path("/sys/class/powercap/intel-rapl").exists():
        assert tags["energy.cpu_method"] in ("cpu-load-estimate", "tdp-estimate")
        assert tags["energy.cpu_tdp_source"] in ("tdp-table", "default-4W-per-thread")
        assert float(tags["energy.cpu_tdp_w"]) > 0
    else:
        assert tags["energy.cpu_method"] == "rapl"
    assert tags["energy.gpu_method"] == "none"  # train.device=cpu: no GPU is tracked


def test_tracker_is_stopped_at_train_end(three_epochs):
    tracker = three_epochs["session"].tracker
    assert tracker._start_time is None  # CodeCarbon's "stopped" state
    assert three_epochs["callback"].session is None


def test_resume_continues_the_cumulative_curve(tmp_path):
    config = run_config()
    first = EnergyCallback(config.energy, tmp_path, total_epochs=4)
    state = RunState(config=config, out_dir=tmp_path)
    first.on_train_start(state)
    before = train(first, state, range(1, 3))
    saved = copy.deepcopy(first.state_dict())  # what the checkpoint holds after epoch 2
    first.on_train_end(state)

    resumed = EnergyCallback(config.energy, tmp_path, total_epochs=4)
    resumed.load_state_dict(saved)
    state = RunState(config=config, out_dir=tmp_path, epoch=2, resumed_from_epoch=2)
    resumed.on_train_start(state)
    after = train(resumed, state, range(3, 4))
    resumed.on_train_end(state)

    epoch3 = after[0]
    assert epoch3["energy_cum_kwh"] == pytest.approx(before[-1]["energy_cum_kwh"] + epoch3["energy_kwh"])
    assert epoch3["energy_pred_total_kwh"] == pytest.approx(epoch3["energy_cum_kwh"] / 3 * 4)
    rows = read_csv(tmp_path / "energy" / "epochs.csv")
    assert [(r["epoch"], r["session"]) for r in rows] == [("1", "1"), ("2", "1"), ("3", "2")]
    assert sum(float(r["energy_kwh"]) for r in rows) == pytest.approx(epoch3["energy_cum_kwh"])


def test_resume_keeps_the_epoch_the_killed_process_measured(tmp_path):
    """Killed after epoch 2 was measured but before its checkpoint: the resumed run redoes it."""
    config = run_config()
    first = EnergyCallback(config.energy, tmp_path, total_epochs=3)
    state = RunState(config=config, out_dir=tmp_path)
    first.on_train_start(state)
    train(first, state, range(1, 2))
    checkpoint = copy.deepcopy(first.state_dict())
    train(first, state, range(2, 3))
    first.on_train_end(state)  # the process dies; its CSV has epochs 1 and 2

    resumed = EnergyCallback(config.energy, tmp_path, total_epochs=3)
    resumed.load_state_dict(checkpoint)
    state = RunState(config=config, out_dir=tmp_path, epoch=1, resumed_from_epoch=1)
    resumed.on_train_start(state)
    (redone,) = train(resumed, state, range(2, 3))
    resumed.on_train_end(state)
    rows = read_csv(tmp_path / "energy" / "epochs.csv")
    assert [(r["session"], r["epoch"], r["complete"]) for r in rows] == [
        ("1", "1", "1"),
        ("1", "2", "0"),
        ("2", "2", "1"),
    ]
    assert rows[1]["energy_cum_kwh"] == "" and float(rows[1]["energy_kwh"]) > 0
    assert redone["energy_cum_kwh"] == pytest.approx(float(rows[0]["energy_kwh"]) + redone["energy_kwh"])


def test_failed_training_stops_the_tracker_and_keeps_the_partial_epoch(tmp_path):
    config = run_config()
    callback = EnergyCallback(config.energy, tmp_path, total_epochs=3)
    state = RunState(config=config, out_dir=tmp_path)
    callback.on_train_start(state)
    session = callback.session
    train(callback, state, range(1, 2))
    state.epoch = 2
    callback.on_epoch_start(state)  # ... and the epoch raises
    time.sleep(0.2)
    state.request_stop("failed: RuntimeError: boom")
    callback.on_train_end(state)
    assert session.tracker._start_time is None and not session.active
    rows = read_csv(tmp_path / "energy" / "epochs.csv")
    assert [(r["epoch"], r["complete"]) for r in rows] == [("1", "1"), ("2", "0")]
    assert float(rows[1]["energy_kwh"]) > 0


def test_forced_powers_change_the_method_and_scale_the_energy(tmp_path):
    config = EnergyConfig(
        measure_power_secs=0.5, force_cpu_power_w=1000.0, force_ram_power_w=5.0, tracking_mode="machine"
    )
    with measure_energy(config, tmp_path / "forced", "forced") as result:
        time.sleep(0.8)
    assert result.measured
    assert result.tags["energy.cpu_method"] == "forced-1000W-cpu-load"
    assert result.tags["energy.cpu_tdp_w"] == "1000"
    assert result.tags["energy.ram_method"] == "forced-5W"
    seconds = result.duration_s
    # RAM: a constant 5 W. CPU: CodeCarbon scales the forced wattage by load, 1000 W × (0.1 + 0.9 load³).
    assert result.ram_energy_kwh * J_PER_KWH == pytest.approx(5.0 * seconds, rel=0.02)
    assert 0.1 * 1000.0 * seconds * 0.98 <= result.cpu_energy_kwh * J_PER_KWH <= 1000.0 * seconds * 1.02


def test_forced_cpu_power_exceeds_any_unforced_estimate(tmp_path):
    plain = EnergySession(EnergyConfig(measure_power_secs=0.5, tracking_mode="machine"), tmp_path / "plain")
    plain.close()
    tdp = plain.tags.get("energy.cpu_tdp_w")
    if tdp is None:
        pytest.skip("CPU measured by a counter here, not a TDP estimate")
    forced_w = 20 * float(tdp)  # its 10 % floor is twice the unforced maximum
    forced = EnergyConfig(force_cpu_power_w=forced_w, tracking_mode="machine")
    with measure_energy(forced, tmp_path / "forced", "x") as result:
        time.sleep(0.5)
    assert result.cpu_energy_kwh * J_PER_KWH > float(tdp) * result.duration_s


def test_measurements_follow_the_interval_inside_an_epoch(tmp_path):
    """CodeCarbon pauses its scheduler during a task; the session measures at measure_power_secs."""
    session = EnergySession(EnergyConfig(measure_power_secs=0.1, tracking_mode="machine"), tmp_path)
    before = session.tracker._power_measurement_count
    session.start_segment("long")
    time.sleep(0.65)
    segment = session.stop_segment()
    measured = session.tracker._power_measurement_count - before
    session.close()
    assert measured >= 4  # ~6 interval measurements + the one at stop (CodeCarbon alone: 1)
    ram_w = float(session.tags["energy.ram_power_w"])
    assert segment.ram_energy_kwh * J_PER_KWH == pytest.approx(ram_w * segment.duration_s, rel=0.02)


def test_inference_measurement_holds_totals_and_provenance(tmp_path):
    config = EnergyConfig(measure_power_secs=0.5, tracking_mode="machine")
    with measure_energy(config, tmp_path, "devtest") as result:
        assert not result.measured
        time.sleep(0.5)
    assert result.measured and result.duration_s == pytest.approx(0.5, abs=0.15)
    assert result.energy_kwh == pytest.approx(
        result.cpu_energy_kwh + result.gpu_energy_kwh + result.ram_energy_kwh
    )
    assert result.emissions_kg > 0
    assert result.tags["energy.tool"].startswith("codecarbon ")
    assert any(p.name == "emissions.csv" for p in result.files)
    assert set(result.metrics("inference_")) >= {"inference_energy_kwh", "inference_duration_s"}


def test_inference_measurement_survives_an_error(tmp_path):
    machine = EnergyConfig(tracking_mode="machine")
    with pytest.raises(ZeroDivisionError), measure_energy(machine, tmp_path, "broken") as result:
        time.sleep(0.2)
        _ = 1 / 0
    assert result.measured and result.energy_kwh > 0


class ConstantPower:
    def __init__(self, watts: float) -> None:
        self.watts = watts

    def read_watts(self) -> float:
        return self.watts


def test_gpu_power_integration_replaces_the_gpu_term(tmp_path):
    """A counter-less GPU (faked at 150 W): its energy comes from sedwatt's integration."""
    config = run_config(nvml_sample_secs=0.05)
    plan = GpuPlan("nvml-power-integration", None, "NVIDIA GeForce GTX 1080 Ti", ConstantPower(150.0))
    callback = EnergyCallback(config.energy, tmp_path, total_epochs=1, gpu_plan=plan)
    state = RunState(config=config, out_dir=tmp_path)
    callback.on_train_start(state)
    (metrics,) = train(callback, state, range(1, 2))
    callback.on_train_end(state)
    assert state.info["tags"]["energy.gpu_method"] == "nvml-power-integration"
    assert state.info["tags"]["energy.gpu_sample_s"] == "0.05"
    (row,) = read_csv(tmp_path / "energy" / "epochs.csv")
    assert metrics["gpu_energy_kwh"] * J_PER_KWH == pytest.approx(150.0 * float(row["duration_s"]), rel=0.03)
    assert float(row["codecarbon_gpu_energy_kwh"]) == 0.0  # CodeCarbon saw no GPU
    assert metrics["energy_kwh"] == pytest.approx(
        metrics["cpu_energy_kwh"] + metrics["gpu_energy_kwh"] + metrics["ram_energy_kwh"]
    )
    # Emissions follow the added energy at the country's intensity.
    with measure_energy(EnergyConfig(tracking_mode="machine"), tmp_path / "plain", "plain") as plain:
        time.sleep(0.2)
    intensity = plain.emissions_kg / plain.energy_kwh
    assert metrics["emissions_kg"] / metrics["energy_kwh"] == pytest.approx(intensity, rel=1e-6)


def test_disabled_measures_nothing(tmp_path):
    """energy.enabled=false: inference measures nothing (training gets no energy callback at all, so its
    run logs no energy: test_pyfunc_model's version says "training energy not measured")."""
    config = run_config(enabled=False)
    with measure_energy(config.energy, tmp_path / "inf", "x") as result:
        pass
    assert not result.measured and result.energy_kwh is None and result.metrics() == {}


def test_no_network_call(tmp_path, monkeypatch):
    from codecarbon.core.hardware_cache import clear_cache

    attempts: list[str] = []

    def refuse(name):
        def blocked(*args, **kwargs):
            attempts.append(f"{name} {args[1:] or args} {kwargs.get('url', '')}")
            raise OSError("network disabled in this test")

        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr("requests.Session.request", refuse("requests"))
    clear_cache()  # the full hardware probe runs under the patch, not a cached plan
    config = run_config()
    callback = EnergyCallback(config.energy, tmp_path, total_epochs=1)
    state = RunState(config=config, out_dir=tmp_path)
    callback.on_train_start(state)
    train(callback, state, range(1, 2))
    callback.on_train_end(state)
    assert attempts == []
    # The trap works: a real attempt would have been recorded.
    import requests

    with pytest.raises(OSError):
        requests.get("https://get.geojs.io/v1/ip/geo.json", timeout=1)
    assert attempts


def test_codecarbon_chatter_is_silenced_but_errors_show(tmp_path, capfd):
    session = EnergySession(EnergyConfig(measure_power_secs=0.5), tmp_path)
    session.start_segment("quiet")
    time.sleep(0.2)
    session.stop_segment()
    with quiet_codecarbon():
        logging.getLogger("codecarbon").warning("a-warning-nobody-needs")
        logging.getLogger("codecarbon").error("a-real-error")
    session.close()
    err = capfd.readouterr().err
    assert "a-real-error" in err
    assert "a-warning-nobody-needs" not in err
    assert "[codecarbon INFO" not in err and "[codecarbon WARNING" not in err


def test_swallowed_constructor_error_is_reported_not_a_zombie(tmp_path, monkeypatch):
    from codecarbon.output_methods import file as cc_file

    def broken(self, *args, **kwargs):
        raise OSError("disk gone")

    from sedwatt.energy.tracker import _gate

    monkeypatch.setattr(cc_file.FileOutput, "__init__", broken)
    users = _gate.users
    with pytest.raises(SedwattError, match=r"failed to initialise \(OSError: disk gone\)"):
        EnergySession(EnergyConfig(), tmp_path)
    assert _gate.users == users  # the log gate was released


def test_unknown_country_is_a_user_error(tmp_path):
    with pytest.raises(SedwattError, match="energy.country_iso_code='XYZ'"):
        EnergySession(EnergyConfig(country_iso_code="XYZ"), tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_is_measured_when_training_on_it(tmp_path):
    config = run_config()
    config.train.device = "cuda"
    callback = EnergyCallback(config.energy, tmp_path, total_epochs=1)
    state = RunState(config=config, out_dir=tmp_path)
    callback.on_train_start(state)
    x = torch.randn(4096, 4096, device="cuda")
    state.epoch = 1
    callback.on_epoch_start(state)
    for _ in range(200):
        x = (x @ x).tanh()
    torch.cuda.synchronize()
    metrics: dict[str, float] = {}
    callback.on_epoch_end(state, metrics)
    callback.on_train_end(state)
    assert state.info["tags"]["energy.gpu_method"] in ("nvml-counter", "nvml-power-integration")
    assert metrics["gpu_energy_kwh"] > 0


def test_the_session_measures_the_device_the_trainer_resolved(tmp_path, monkeypatch):
    """The trainer's resolved device (state.info["device"]) picks the GPU to measure, not the raw setting."""
    import sedwatt.energy.tracker as tracker

    seen: list[object] = []
    real = tracker.used_cuda_index
    monkeypatch.setattr(tracker, "used_cuda_index", lambda device: seen.append(device) or real(device))
    config = run_config()
    config.train.device = "auto"
    callback = EnergyCallback(config.energy, tmp_path, total_epochs=1)
    state = RunState(config=config, out_dir=tmp_path, info={"device": "cpu"})
    callback.on_train_start(state)
    callback.on_train_end(state)
    assert seen == ["cpu"]
    assert state.info["tags"]["energy.gpu_method"] == "none"
