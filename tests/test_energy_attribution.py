"""Who is charged: the process CPU-time share, its use by the process attribution, the machine-mode flags,
and the energy description on the console, in the run and on the registered model version.

Competing work is real: busy-loop processes pinned with ``os.sched_setaffinity`` to the CPU a measuring
process runs on. The assertions are about accounting (the competitor's CPU time is in the machine's,
the share follows), not about how fast anything ran on this (shared, loaded) machine.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sedwatt.config import SedwattConfig
from sedwatt.energy import EnergyCallback, EnergySession
from sedwatt.energy.attribution import (
    ATTRIBUTION_MACHINE,
    ATTRIBUTION_PROCESS,
    ATTRIBUTION_PROCESS_BUSY_SHARE,
    CpuShare,
    CpuShareMeter,
    attribute,
    machine_cpu_seconds,
    process_tree_seconds,
)
from sedwatt.energy.nvml import GpuPlan, NvmlProcessCounter
from sedwatt.energy.provenance import describe_energy
from sedwatt.training.callbacks import RunState

BUSY = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"

# Measures its own share while busy-looping on one CPU, and the CPU time of the pids it is given.
MEASURE = """
import json, os, sys, time
import psutil
from sedwatt.energy.attribution import CpuShareMeter
cpu, seconds, others = int(sys.argv[1]), float(sys.argv[2]), [psutil.Process(int(p)) for p in sys.argv[3:]]
os.sched_setaffinity(0, {cpu})
def others_s():
    return sum(t.user + t.system for t in (p.cpu_times() for p in others))
meter = CpuShareMeter()
before = others_s()
meter.start()
end = time.monotonic() + seconds
while time.monotonic() < end:
    pass
share = meter.stop()
print(json.dumps({"process_s": share.process_s, "machine_s": share.machine_s, "share": share.share,
                  "others_s": others_s() - before}))
"""


@contextlib.contextmanager
def busy_loops(cpu: int | None, count: int):
    """``count`` busy-loop processes (pinned to ``cpu``, or to every usable CPU when None); yields pids."""
    cpus = sorted(os.sched_getaffinity(0)) if cpu is None else [cpu]
    # Started through a shell that exits at once: the loops are re-parented, so they are *other* processes,
    # not descendants of this one (whose CPU time the process-tree share rightly counts as its own).
    pids = []
    for i in range(count):
        launcher = subprocess.run(
            ["sh", "-c", f'"$0" -c "$1" {cpus[i % len(cpus)]} >/dev/null 2>&1 & echo $!', sys.executable, BUSY],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        pids.append(int(launcher.stdout.strip()))
    procs = [psutil.Process(pid) for pid in pids]
    try:
        deadline = time.monotonic() + 10

        def starting() -> bool:  # not yet busy-looping (still importing)
            return any(p.cpu_times().user < 0.05 for p in procs)

        while time.monotonic() < deadline and starting():
            time.sleep(0.05)
        yield pids
    finally:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)


def measure_share(cpu: int, seconds: float, others: list[int]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(cpu), str(seconds), *map(str, others)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def test_share_drops_when_busy_processes_compete_for_the_cpu():
    cpu = min(os.sched_getaffinity(0))
    alone = measure_share(cpu, 1.5, [])
    with busy_loops(cpu, 2) as pids:
        shared = measure_share(cpu, 1.5, pids)
    for result in (alone, shared):
        assert 0.0 <= result["share"] <= 1.0
        assert result["process_s"] > 0.05  # it did run
    # The competitors' CPU time is part of the machine's, so the share is at most own / (own + theirs);
    # pinned to the same CPU as the measured loop, they took about two thirds of it.
    assert shared["others_s"] > shared["process_s"]
    tolerance = 0.05  # clock-tick granularity of /proc (10 ms) over the 1.5 s window
    assert shared["machine_s"] >= (shared["process_s"] + shared["others_s"]) * (1 - tolerance)
    assert shared["share"] <= shared["process_s"] / (shared["process_s"] + shared["others_s"]) + tolerance
    assert shared["share"] < alone["share"]


def test_tree_time_counts_a_child_that_exited_between_readings():
    """A DataLoader-like worker that starts and exits inside the span is counted in full."""
    burn = "import time\nwhile time.process_time() < 0.5:\n    pass\n"
    before = process_tree_seconds()
    subprocess.run([sys.executable, "-c", burn], check=True, timeout=120)  # waited for: reaped
    assert process_tree_seconds() - before >= 0.5 - 0.02  # clock ticks of 10 ms


def test_share_from_replayed_cpu_times():
    # (process, (machine busy, machine total)) CPU seconds at start and stop
    readings = iter([(10.0, (100.0, 400.0)), (13.0, (112.0, 448.0))])
    values = {"now": (0.0, (0.0, 0.0))}

    def advance() -> None:
        values["now"] = next(readings)

    meter = CpuShareMeter(process_seconds=lambda: values["now"][0], machine_seconds=lambda: values["now"][1])
    advance()
    meter.start()
    advance()
    share = meter.stop()
    assert (share.process_s, share.machine_s, share.total_s, share.share) == (3.0, 12.0, 48.0, 0.25)
    assert share.capacity == 3.0 / 48.0  # of everything the CPUs could have done, busy or idle
    assert share.machine_util_pct == 25.0
    assert CpuShare(1.0, 2.0).capacity == 0.5  # no total read: the busy share stands in
    assert CpuShare(5.0, 4.0, 4.0).capacity == 1.0
    assert CpuShare(1.0, 2.0).machine_util_pct == 0.0  # no total read: no utilisation claimed
    assert CpuShare(0.0, 0.0).share == 1.0  # nothing ran: nobody else to charge
    assert CpuShare(5.0, 4.0).share == 1.0  # tick rounding never charges more than the machine
    with pytest.raises(RuntimeError):
        meter.stop()


def test_machine_busy_time_excludes_idle_iowait_and_steal():
    fields = "user nice system idle iowait irq softirq steal guest guest_nice"
    scputimes = collections.namedtuple("scputimes", fields)
    times = scputimes(10.0, 1.0, 4.0, 80.0, 2.0, 0.5, 0.5, 3.0, 1.0, 0.0)
    busy, total = machine_cpu_seconds(times)
    assert busy == pytest.approx(16.0) and total == pytest.approx(101.0)  # guest is inside user already
    busy, total = machine_cpu_seconds()
    assert 0 < busy <= total


def test_attribute_charges_cpu_by_busy_share_ram_by_capacity_and_the_whole_gpu():
    used = CpuShare(process_s=3.0, machine_s=12.0, total_s=48.0)  # share 0.25, capacity 0.0625
    process = attribute(ATTRIBUTION_PROCESS, used, cpu_kwh=4.0, gpu_kwh=10.0, ram_kwh=8.0)
    assert (process.cpu_kwh, process.gpu_kwh, process.ram_kwh, process.total_kwh) == (1.0, 10.0, 0.5, 11.5)
    assert (process.cpu_factor, process.ram_factor) == (0.25, 0.0625)
    machine = attribute(ATTRIBUTION_MACHINE, used, cpu_kwh=4.0, gpu_kwh=10.0, ram_kwh=8.0)
    assert machine.total_kwh == 22.0
    with pytest.raises(ValueError, match="unknown energy attribution"):
        attribute("per-socket", used, cpu_kwh=1.0, gpu_kwh=0.0, ram_kwh=1.0)


@pytest.mark.parametrize("neighbours", [0, 1])
def test_the_same_work_is_charged_the_same_alone_or_beside_another_job(neighbours):
    """Modelled on the 2-core VM (TDP × load CPU estimate at 8 W, RAM constant 20 W): one single-thread job
    doing 0.8 CPU-s of work per 0.8 s epoch alone, or per 0.9 s beside a second such job. The machine's
    figures differ; the job's own-use charge does not, where the old busy-share rule charged 5.3 vs 3.4 mWh."""
    seconds = 0.8 if neighbours == 0 else 0.9
    busy = 0.8 * (1 + neighbours)  # the neighbour does the same work
    used = CpuShare(process_s=0.8, machine_s=busy, total_s=2 * seconds)
    cpu_kwh = 8.0 * (busy / (2 * seconds)) * seconds / 3.6e6  # TDP × machine load
    ram_kwh = 20.0 * seconds / 3.6e6
    charged = attribute(ATTRIBUTION_PROCESS, used, cpu_kwh=cpu_kwh, gpu_kwh=0.0, ram_kwh=ram_kwh)
    own = (8.0 * 0.8 / 2 + 20.0 * 0.8 / 2) / 3.6e6  # the job's own load's CPU power, its half of the machine's RAM
    assert charged.total_kwh == pytest.approx(own)
    busy_share = (cpu_kwh + ram_kwh) * used.share  # the rule before 2026-12-02
    assert busy_share * 3.6e6 == pytest.approx(19.2 if neighbours == 0 else 12.2)  # J: 5.3 vs 3.4 mWh


@pytest.mark.parametrize(
    ("mode", "attribution"), [("process", ATTRIBUTION_PROCESS), ("machine", ATTRIBUTION_MACHINE)]
)
def test_attribution_tag_and_codecarbon_measures_the_machine(tmp_path, mode, attribution):
    config = SedwattConfig().energy.model_copy(update={"measure_power_secs": 0.5, "tracking_mode": mode})
    session = EnergySession(config, tmp_path)
    try:
        assert session.tags["energy.attribution"] == attribution
        assert session.tags["energy.tracking_mode"] == mode
        session.start_segment("spin")
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            pass
        segment = session.stop_segment()
    finally:
        session.close()
    assert segment.attribution == attribution
    assert 0.0 <= segment.process_cpu_share <= 1.0
    assert segment.machine_energy_kwh == pytest.approx(
        segment.machine_cpu_energy_kwh + segment.machine_ram_energy_kwh + segment.gpu_energy_kwh
    )
    cpu_factor = segment.process_cpu_share if mode == "process" else 1.0
    ram_factor = segment.process_cpu_capacity if mode == "process" else 1.0
    assert 0.0 < segment.process_cpu_capacity <= segment.process_cpu_share
    assert segment.cpu_energy_kwh == pytest.approx(segment.machine_cpu_energy_kwh * cpu_factor)
    assert segment.ram_energy_kwh == pytest.approx(segment.machine_ram_energy_kwh * ram_factor)
    assert {row["tracking_mode"] for row in read_rows(tmp_path / "emissions.csv")} == {"machine"}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def one_epoch(callback: EnergyCallback, state: RunState, epoch: int, seconds: float) -> dict[str, float]:
    state.epoch = epoch
    callback.on_epoch_start(state)
    time.sleep(seconds)  # this process idles while the competitors run
    metrics: dict[str, float] = {}
    callback.on_epoch_end(state, metrics)
    return metrics


def test_machine_mode_flags_an_epoch_shared_with_busy_processes(tmp_path, caplog):
    config = SedwattConfig()
    config.train.device = "cpu"
    config.energy.measure_power_secs = 0.5
    config.energy.tracking_mode = "machine"
    callback = EnergyCallback(config.energy, tmp_path, total_epochs=1)
    state = RunState(config=config, out_dir=tmp_path)
    callback.on_train_start(state)
    with caplog.at_level(logging.WARNING, logger="sedwatt.energy"), busy_loops(None, 2):
        metrics = one_epoch(callback, state, 1, 0.8)
    callback.on_train_end(state)
    share = metrics["energy_process_cpu_share"]
    assert 0.0 <= share < config.energy.contended_share
    assert metrics["energy_kwh"] == pytest.approx(metrics["energy_machine_kwh"])  # charged the whole machine
    tags = state.info["tags"]
    assert tags["energy.attribution"] == "machine"
    assert tags["energy.contended_epochs"] == "1"
    assert float(tags["energy.min_process_cpu_share"]) == pytest.approx(share, abs=1e-3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("epoch 1: this process used" in w and "energy.tracking_mode=process" in w for w in warnings)
    assert "whole machine, this process" in state.info["epoch_report"]["energy"]
    assert "shared with busy processes in 1 epochs" in describe_energy(metrics, tags)
    (row,) = read_rows(tmp_path / "energy" / "epochs.csv")
    assert float(row["process_energy_kwh"]) == pytest.approx(  # the process attribution's figure, kept beside
        float(row["machine_cpu_energy_kwh"]) * share
        + float(row["machine_ram_energy_kwh"]) * float(row["process_cpu_capacity"])
    )


def test_process_mode_charges_the_share_and_does_not_warn(tmp_path, caplog):
    config = SedwattConfig()
    config.train.device = "cpu"
    config.energy.measure_power_secs = 0.5
    callback = EnergyCallback(config.energy, tmp_path, total_epochs=1)  # default: process
    state = RunState(config=config, out_dir=tmp_path)
    callback.on_train_start(state)
    with caplog.at_level(logging.WARNING, logger="sedwatt.energy"), busy_loops(None, 2):
        metrics = one_epoch(callback, state, 1, 0.8)
    callback.on_train_end(state)
    assert state.info["tags"]["energy.attribution"] == "process-cpu-use"
    share, capacity = metrics["energy_process_cpu_share"], metrics["energy_process_cpu_capacity"]
    assert 0.0 <= capacity <= share  # all CPU time includes the busy time (this test itself mostly sleeps)
    (row,) = read_rows(tmp_path / "energy" / "epochs.csv")
    assert float(row["process_cpu_capacity"]) == pytest.approx(capacity)
    machine_cpu, machine_ram = float(row["machine_cpu_energy_kwh"]), float(row["machine_ram_energy_kwh"])
    assert metrics["cpu_energy_kwh"] == pytest.approx(machine_cpu * share)
    assert metrics["ram_energy_kwh"] == pytest.approx(machine_ram * capacity)
    assert metrics["energy_kwh"] == pytest.approx(float(row["process_energy_kwh"]))
    assert metrics["energy_kwh"] < 0.5 * metrics["energy_machine_kwh"]  # the competitors' part is not ours
    assert not [r for r in caplog.records if "tracking_mode=machine" in r.getMessage()]
    assert "process share" in state.info["epoch_report"]["energy"]


class FakeNvml:
    """NVML's compute-process list for one device, as nvidia-ml-py returns it."""

    class Proc:
        def __init__(self, pid: int) -> None:
            self.pid = pid

    def __init__(self, pids: list[int] | Exception) -> None:
        self.pids = pids

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802
        if isinstance(self.pids, Exception):
            raise self.pids
        return [self.Proc(pid) for pid in self.pids]


def test_nvml_process_counter():
    assert NvmlProcessCounter(FakeNvml([11, 12, 12]), 0).count() == 2
    assert NvmlProcessCounter(FakeNvml([]), 0).count() == 0
    assert NvmlProcessCounter(FakeNvml(RuntimeError("no permission")), 0).count() is None


def test_a_shared_gpu_is_flagged(tmp_path, caplog):
    config = SedwattConfig()
    config.train.device = "cpu"
    config.energy.measure_power_secs = 0.5
    plan = GpuPlan("none", processes=NvmlProcessCounter(FakeNvml([os.getpid(), 4242]), 0))
    callback = EnergyCallback(config.energy, tmp_path, total_epochs=1, gpu_plan=plan)
    state = RunState(config=config, out_dir=tmp_path)
    callback.on_train_start(state)
    with caplog.at_level(logging.WARNING, logger="sedwatt.energy"):
        metrics = one_epoch(callback, state, 1, 0.2)
    callback.on_train_end(state)
    assert metrics["energy_gpu_processes"] == 2.0
    assert state.info["tags"]["energy.gpu_shared_epochs"] == "1"
    assert any("2 compute processes were on the GPU" in r.getMessage() for r in caplog.records)


# -- end to end: `sedwatt train` prints, logs and registers what its energy figure is -------------------


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory, tiny_overrides, fresh_store):
    """(store URI, run id, console lines) of a one-epoch `sedwatt train` with progress lines."""
    import mlflow

    from sedwatt.cli import main

    work = tmp_path_factory.mktemp("described")
    store = fresh_store(work / "store")
    overrides = [
        *tiny_overrides,
        "train.epochs=1",
        "train.batch_size=32",
        "train.progress=true",
        f"data.cache_dir={work / 'cache'}",
        f"train.out_dir={work / 'out'}",
        "energy.measure_power_secs=1",
        "tracking.log_model=false",
        "tracking.experiment=energy-described",
    ]
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        patch.chdir(work)
        args = ["train", "--data", str(tiny_data), *[a for o in overrides for a in ("--set", o)]]
        with contextlib.redirect_stdout(stdout):
            assert main(args) == 0
    mlflow.set_tracking_uri(None)
    lines = stdout.getvalue().splitlines()
    run_id = next(line for line in lines if line.startswith("run ")).split()[1].rstrip(":")
    return store, run_id, lines


def test_train_cli_says_what_the_energy_is(trained):
    import mlflow

    store, run_id, lines = trained
    client = mlflow.MlflowClient(store)
    run = client.get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["energy.attribution"] == "process-cpu-use"
    assert 0.0 <= metrics["energy_process_cpu_capacity"] <= metrics["energy_process_cpu_share"] <= 1.0
    described = describe_energy(metrics, tags)
    # The console's last line says the same as the run's logged figures.
    assert lines[-1] == f"energy: {described}"
    epoch_line = next(line for line in lines if line.startswith("epoch   1/1"))
    assert "energy " in epoch_line and "process share" in epoch_line
    assert f"constant {tags['energy.ram_power_w']} W estimate" in described  # RAM is always an estimate here
    assert "(estimate: CPU " in described or tags["energy.cpu_method"] == "rapl"
    # CodeCarbon's CSVs travel with their explanation.
    files = {a.path for a in client.list_artifacts(run_id, "energy")}
    assert {"energy/epochs.csv", "energy/README.md", "energy/codecarbon"} <= files


def test_registered_version_says_what_the_energy_is(trained, monkeypatch):
    import mlflow
    import torch

    from sedwatt.tracking import registry

    store, run_id, _ = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    try:
        name = f"energy-described-{os.getpid()}"
        registry.log_and_register(torch.nn.Linear(2, 2), run_id, name, {"run_max_val_f1": "0.1"})
        client = mlflow.MlflowClient(store)
        (version,) = client.search_model_versions(f"name = '{name}'")
        run = client.get_run(run_id)
    finally:
        mlflow.set_tracking_uri(None)
    best = run.data.metrics["max_val_f1"]
    expected = f"run max val_f1 {best:.3f} (teacher); training energy {describe_energy(run.data.metrics, run.data.tags)}"
    assert version.description.splitlines()[0] == expected


@pytest.mark.parametrize(
    ("first_mode", "replayed_as", "resumed_from"),
    [
        ("machine", None, "machine"),
        ("process", ATTRIBUTION_PROCESS_BUSY_SHARE, "process-cpu-share"),  # a checkpoint from before 2026-12-02
        ("process", None, None),
    ],
)
def test_a_resume_across_attributions_is_warned_and_tagged(tmp_path, caplog, first_mode, replayed_as, resumed_from):
    """Session 1 measures two epochs and its state goes into the checkpoint; session 2 resumes it with
    ``energy.tracking_mode=process``. Rows charged by another rule make the run's totals mix two rules."""
    config = SedwattConfig()
    config.train.device = "cpu"
    config.energy.measure_power_secs = 0.5
    config.energy.tracking_mode = first_mode
    first = EnergyCallback(config.energy, tmp_path, total_epochs=4)
    state = RunState(config=config, out_dir=tmp_path)
    first.on_train_start(state)
    for epoch in (1, 2):
        one_epoch(first, state, epoch, 0.1)
    first.on_train_end(state)
    checkpoint = first.state_dict()
    if replayed_as:
        for row in checkpoint["rows"]:
            row["attribution"] = replayed_as

    config.energy.tracking_mode = "process"
    resumed = EnergyCallback(config.energy, tmp_path, total_epochs=4)
    resumed.load_state_dict(checkpoint)
    state = RunState(config=config, out_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="sedwatt.energy"):
        resumed.on_train_start(state)
        one_epoch(resumed, state, 3, 0.1)
        resumed.on_train_end(state)
    tags = state.info["tags"]
    assert tags["energy.attribution"] == ATTRIBUTION_PROCESS
    assert tags.get("energy.attribution_resumed_from") == resumed_from
    warnings = [r.getMessage() for r in caplog.records if "resumed from a checkpoint" in r.getMessage()]
    readme = (tmp_path / "energy" / "README.md").read_text()
    if resumed_from is None:
        assert warnings == [] and "attribution_resumed_from" not in readme
        return
    assert warnings == [
        f"energy: resumed from a checkpoint charged by energy.attribution {resumed_from} (epochs 1, 2) but this "
        "session charges process-cpu-use: the run's energy totals mix both rules (tag energy.attribution_resumed_from)"
    ]
    assert f"were charged by `{resumed_from}`" in readme
    rows = read_rows(tmp_path / "energy" / "epochs.csv")
    assert [(r["epoch"], r["attribution"]) for r in rows] == [
        ("1", resumed_from), ("2", resumed_from), ("3", ATTRIBUTION_PROCESS)
    ]  # fmt: skip
