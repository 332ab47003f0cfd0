"""GPU power integration and NVML counter detection, without a GPU.

Traces are replayed as (time s, power W) sequences whose energies are worked out by hand; the NVML
detection runs against a fake NVML module shaped like pynvml (same exception hierarchy).
"""

from __future__ import annotations

import itertools
import time
import types

import pytest

from sedwatt.energy.nvml import (
    JOULES_PER_KWH,
    NvmlPowerSource,
    PowerSampler,
    PowerTrace,
    find_nvml_device,
    has_energy_counter,
    plan_gpu,
    trapezoid_joules,
)
from sedwatt.energy.provenance import codecarbon_gpu_method

# -- trapezoidal integration of replayed traces ---------------------------------------------------


def test_constant_power_trace():
    trace = PowerTrace([(float(t), 100.0) for t in range(11)])  # 100 W for 10 s
    assert trace.joules == pytest.approx(1000.0)
    assert trace.kwh == pytest.approx(1000.0 / 3.6e6)
    assert trace.duration_s == pytest.approx(10.0)
    assert trace.mean_watts == pytest.approx(100.0)


def test_irregular_trace_hand_computed():
    # 0→1 s ramps 100→200 W: 150 J; 1→3 s at 200 W: 400 J; 3→3.5 s falls 200→50 W: 62.5 J.
    samples = [(0.0, 100.0), (1.0, 200.0), (3.0, 200.0), (3.5, 50.0)]
    assert trapezoid_joules(samples) == pytest.approx(612.5)
    assert PowerTrace(samples).mean_watts == pytest.approx(612.5 / 3.5)


def test_trace_with_offset_clock_and_uneven_gaps():
    # A monotonic clock does not start at 0; a missed sample leaves a 3 s gap bridged linearly.
    samples = [(5000.0, 60.0), (5001.0, 80.0), (5004.0, 80.0), (5004.25, 240.0)]
    expected = 1.0 * 70.0 + 3.0 * 80.0 + 0.25 * 160.0  # 70 + 240 + 40
    assert trapezoid_joules(samples) == pytest.approx(expected)


def test_degenerate_traces():
    assert trapezoid_joules([]) == 0.0
    assert trapezoid_joules([(1.0, 250.0)]) == 0.0
    assert PowerTrace([(1.0, 250.0)]).mean_watts == 250.0
    assert PowerTrace().mean_watts == 0.0


def test_time_going_back_is_an_error():
    with pytest.raises(ValueError, match="back in time"):
        trapezoid_joules([(0.0, 1.0), (2.0, 1.0), (1.0, 1.0)])


# -- the sampler thread ------------------------------------------------------------------------


class LinearPower:
    """Power rising linearly with the clock: trapezoids integrate it exactly."""

    def __init__(self, t0: float, base_w: float, slope_w_per_s: float) -> None:
        self.t0, self.base_w, self.slope = t0, base_w, slope_w_per_s

    def watts_at(self, t: float) -> float:
        return self.base_w + self.slope * (t - self.t0)

    def read_watts(self) -> float:
        return self.watts_at(time.monotonic())


def test_sampler_integrates_a_linear_ramp_exactly():
    source = LinearPower(time.monotonic(), base_w=100.0, slope_w_per_s=400.0)
    sampler = PowerSampler(source, interval_s=0.01)
    sampler.start()
    time.sleep(0.3)
    trace = sampler.stop()
    assert len(trace.samples) >= 5  # start, several ticks, stop
    (t_first, _), (t_last, _) = trace.samples[0], trace.samples[-1]
    exact = (source.watts_at(t_first) + source.watts_at(t_last)) / 2 * (t_last - t_first)
    assert trace.joules == pytest.approx(exact, rel=1e-3)
    assert trace.duration_s == pytest.approx(t_last - t_first)
    assert trace.duration_s >= 0.29


def test_sampler_skips_failed_reads_and_counts_them():
    counter = itertools.count()

    class Flaky:
        def read_watts(self) -> float:
            if next(counter) % 3 == 1:
                raise RuntimeError("NVML hiccup")
            return 50.0

    sampler = PowerSampler(Flaky(), interval_s=0.01)
    sampler.start()
    time.sleep(0.15)
    trace = sampler.stop()
    assert trace.failed_reads >= 1
    assert all(w == 50.0 for _, w in trace.samples)
    assert trace.joules == pytest.approx(50.0 * trace.duration_s)


def test_sampler_is_reusable_and_rejects_misuse():
    sampler = PowerSampler(NvmlPowerSource(FakeNvml([DEVICE_1080TI]), 0), interval_s=0.01)
    with pytest.raises(RuntimeError):
        sampler.stop()
    sampler.start()
    with pytest.raises(RuntimeError):
        sampler.start()
    first = sampler.stop()
    sampler.start()
    second = sampler.stop()
    assert first.samples and second.samples
    assert second.samples[0][0] >= first.samples[-1][0]  # a new trace, not appended to the old one
    with pytest.raises(ValueError):
        PowerSampler(LinearPower(0, 1, 0), interval_s=0)


# -- counter detection with a fake NVML ------------------------------------------------------------


class FakeNvml:
    """The parts of pynvml sedwatt uses; a device without ``energy_mj`` is pre-Volta."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's name
        pass

    class NVMLError_Unknown(NVMLError):  # noqa: N801
        pass

    def __init__(self, devices: list[dict]) -> None:
        self.devices = devices

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - pynvml's names
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:  # noqa: N802
        return self.devices[handle]["uuid"]

    def nvmlDeviceGetName(self, handle: int) -> bytes:  # noqa: N802
        return self.devices[handle]["name"].encode()  # old pynvml returns bytes

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:  # noqa: N802
        energy = self.devices[handle].get("energy_mj")
        if isinstance(energy, type) and issubclass(energy, Exception):
            raise energy()
        if energy is None:
            raise self.NVMLError_NotSupported()
        return energy

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        return self.devices[handle]["power_mw"]


DEVICE_1080TI = {
    "uuid": "GPU-1111aaaa-0000-0000-0000-000000000001",
    "name": "NVIDIA GeForce GTX 1080 Ti",
    "power_mw": 187_500,
}
DEVICE_A100 = {
    "uuid": "GPU-2222bbbb-0000-0000-0000-000000000002",
    "name": "NVIDIA A100-SXM4-40GB",
    "power_mw": 250_000,
    "energy_mj": 123_456_789,
}


def test_pre_volta_has_no_counter_volta_has_one():
    nvml = FakeNvml([DEVICE_1080TI, DEVICE_A100])
    assert has_energy_counter(nvml, 0) is False
    assert has_energy_counter(nvml, 1) is True


def test_other_nvml_errors_mean_no_usable_counter():
    nvml = FakeNvml([{**DEVICE_A100, "energy_mj": FakeNvml.NVMLError_Unknown}])
    assert has_energy_counter(nvml, 0) is False


def test_non_nvml_errors_are_not_hidden():
    nvml = FakeNvml([{**DEVICE_A100, "energy_mj": KeyError}])
    with pytest.raises(KeyError):
        has_energy_counter(nvml, 0)


def test_real_pynvml_has_the_exception_hierarchy_relied_on():
    pynvml = pytest.importorskip("pynvml")
    assert issubclass(pynvml.NVMLError_NotSupported, pynvml.NVMLError)


def test_plan_for_a_pre_volta_gpu_integrates_its_power():
    nvml = FakeNvml([DEVICE_A100, DEVICE_1080TI])
    # CUDA device 0 is the 1080 Ti (e.g. CUDA_VISIBLE_DEVICES=1): matched by UUID, NVML index 1.
    plan = plan_gpu(0, nvml=nvml, uuid="1111aaaa-0000-0000-0000-000000000001")
    assert plan.method == "nvml-power-integration"
    assert plan.nvml_index == 1
    assert plan.model == "NVIDIA GeForce GTX 1080 Ti"
    assert plan.source is not None
    assert plan.source.read_watts() == pytest.approx(187.5)


def test_plan_for_a_gpu_with_counter_leaves_it_to_codecarbon():
    plan = plan_gpu(
        0, nvml=FakeNvml([DEVICE_1080TI, DEVICE_A100]), uuid="GPU-2222bbbb-0000-0000-0000-000000000002"
    )
    assert (plan.method, plan.nvml_index, plan.source) == ("nvml-counter", 1, None)


def test_plan_counts_the_processes_of_the_planned_device():
    """GPU energy is the whole device's; the plan can tell how many compute processes share it."""
    nvml = FakeNvml([DEVICE_1080TI, DEVICE_A100])
    # device 0 (the 1080 Ti) runs one process, device 1 (the A100) two
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda h: [types.SimpleNamespace(pid=100 + i) for i in range(h + 1)]
    for uuid, expected in ((DEVICE_1080TI["uuid"], 1), (DEVICE_A100["uuid"], 2)):
        plan = plan_gpu(0, nvml=nvml, uuid=uuid)
        assert plan.processes is not None and plan.processes.count() == expected


def test_plan_without_gpu_or_nvml(monkeypatch):
    assert plan_gpu(None).method == "none"
    monkeypatch.setattr("sedwatt.energy.nvml.load_nvml", lambda: None)
    assert plan_gpu(0).method == "none"


def test_unmatched_device_among_several_is_not_guessed(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    nvml = FakeNvml([DEVICE_1080TI, DEVICE_A100])
    assert find_nvml_device(nvml, 0, "GPU-ffff") is None
    assert plan_gpu(0, nvml=nvml, uuid="GPU-ffff").method == "codecarbon-default"
    # A single GPU cannot be confused with another.
    assert find_nvml_device(FakeNvml([DEVICE_1080TI]), 0, None) == (0, 0)


def test_replayed_nvml_power_through_the_sampler():
    """The fake NVML reports a power that changes between reads; the energy follows the samples."""
    device = dict(DEVICE_1080TI)
    nvml = FakeNvml([device])
    sampler = PowerSampler(NvmlPowerSource(nvml, 0), interval_s=0.01)
    sampler.start()
    time.sleep(0.1)
    device["power_mw"] = 62_500
    time.sleep(0.1)
    trace = sampler.stop()
    watts = [w for _, w in trace.samples]
    assert watts[0] == 187.5 and watts[-1] == 62.5
    assert trace.joules == pytest.approx(trapezoid_joules(trace.samples))
    assert 62.5 * trace.duration_s < trace.joules < 187.5 * trace.duration_s
    assert trace.kwh == pytest.approx(trace.joules / JOULES_PER_KWH)


# -- CodeCarbon's own GPU method, read from its device objects -------------------------------------


class NvidiaGPUDevice:
    def __init__(self, index: int, has_counter: bool) -> None:
        self.gpu_index, self._has_counter = index, has_counter


class _Devices:
    def __init__(self, devices):
        self.devices = devices


class GPU:  # named like CodeCarbon's class: provenance reads type names
    def __init__(self, gpu_ids, devices):
        self.gpu_ids, self.devices = gpu_ids, _Devices(devices)


def test_codecarbon_gpu_method_reads_the_tracked_devices():
    mixed = [NvidiaGPUDevice(0, True), NvidiaGPUDevice(1, False)]
    assert codecarbon_gpu_method([GPU([0], mixed)]) == "nvml-counter"
    assert codecarbon_gpu_method([GPU([1], mixed)]) == "codecarbon-power-average"
    assert codecarbon_gpu_method([GPU(None, mixed)]) == "codecarbon-power-average"
    assert codecarbon_gpu_method([]) == "none"
