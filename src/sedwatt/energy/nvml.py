"""GPU energy by integrating sampled NVML power, for GPUs without an NVML energy counter.

``nvmlDeviceGetTotalEnergyConsumption`` exists only from Volta on; on older GPUs (GTX 980/1080 Ti
in the paper) it raises ``NVMLError_NotSupported`` and CodeCarbon 2.x reported 0 kWh for the GPU
(3.3 averages its own 1 s power readings instead). sedwatt then samples the power itself at
``energy.nvml_sample_secs`` and integrates it with the trapezoidal rule, one trace per epoch, so
the GPU term is known and its method is recorded.

Everything here takes a power source or an NVML-like module as an argument, so the integration and
the counter detection are tested without a GPU (replayed (time, watts) traces, a fake NVML).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

JOULES_PER_KWH = 3.6e6


class PowerSource(Protocol):
    """Anything that reads a device's instantaneous power draw in watts."""

    def read_watts(self) -> float: ...


def trapezoid_joules(samples: Sequence[tuple[float, float]]) -> float:
    """Energy in joules of a (time s, power W) trace, trapezoidal rule; times must not go back."""
    energy = 0.0
    for (t0, w0), (t1, w1) in zip(samples, samples[1:], strict=False):
        if t1 < t0:
            raise ValueError(f"power trace goes back in time: {t0} then {t1}")
        energy += (t1 - t0) * (w0 + w1) / 2.0
    return energy


@dataclass
class PowerTrace:
    """The (time, watts) samples of one measured span and what they integrate to."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    failed_reads: int = 0

    @property
    def duration_s(self) -> float:
        return self.samples[-1][0] - self.samples[0][0] if len(self.samples) > 1 else 0.0

    @property
    def joules(self) -> float:
        return trapezoid_joules(self.samples)

    @property
    def kwh(self) -> float:
        return self.joules / JOULES_PER_KWH

    @property
    def mean_watts(self) -> float:
        if self.duration_s > 0:
            return self.joules / self.duration_s
        return self.samples[0][1] if self.samples else 0.0


class PowerSampler:
    """Samples a power source every ``interval_s`` in a daemon thread between start() and stop().

    A sample is also taken at start and at stop, so the trace covers the whole span exactly; a read
    that raises is skipped and counted (the span is then bridged by its neighbours).
    """

    def __init__(
        self,
        source: PowerSource,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be > 0 s, got {interval_s}")
        self.source = source
        self.interval_s = interval_s
        self.clock = clock
        self._trace = PowerTrace()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        try:
            watts = float(self.source.read_watts())
        except Exception:
            with self._lock:
                self._trace.failed_reads += 1
            logger.debug("power read failed", exc_info=True)
            return
        now = self.clock()
        with self._lock:
            self._trace.samples.append((now, watts))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("power sampler already started")
        self._trace = PowerTrace()
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="sedwatt-nvml-power", daemon=True)
        self._thread.start()

    def stop(self) -> PowerTrace:
        if self._thread is None:
            raise RuntimeError("power sampler not started")
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._sample()
        with self._lock:
            trace, self._trace = self._trace, PowerTrace()
        if len(trace.samples) < 2:
            logger.warning(
                "GPU power: only %d readable sample(s) in this span, its energy is 0", len(trace.samples)
            )
        return trace


# -- NVML ---------------------------------------------------------------------------------------


class NvmlPowerSource:
    """Power of one NVML device (``nvmlDeviceGetPowerUsage`` is in milliwatts)."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle

    def read_watts(self) -> float:
        return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0


class NvmlProcessCounter:
    """How many compute processes hold an NVML device (this one included), or None if unreadable.

    GPU energy is the whole device's (per-process accounting needs root and NVML accounting mode);
    this count is what tells a shared GPU. PIDs are not compared with ours: inside a container NVML
    may report host PIDs.
    """

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle

    def count(self) -> int | None:
        try:
            processes = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except Exception:
            logger.debug("NVML process list unreadable", exc_info=True)
            return None
        return len({getattr(p, "pid", id(p)) for p in processes})


def has_energy_counter(nvml: Any, handle: Any) -> bool:
    """Whether the device has a usable total-energy counter (Volta and later do)."""
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except nvml.NVMLError_NotSupported:
        return False
    except nvml.NVMLError as exc:
        logger.warning("NVML energy counter unreadable (%s): integrating sampled power instead", exc)
        return False
    return True


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _bare_uuid(uuid: str) -> str:
    return uuid.strip().lower().removeprefix("gpu-")


def find_nvml_device(nvml: Any, cuda_index: int, cuda_uuid: str | None) -> tuple[int, Any] | None:
    """The NVML (index, handle) of CUDA device ``cuda_index``.

    CUDA and NVML number devices differently (CUDA_VISIBLE_DEVICES, fastest-first order), so the
    match is by UUID; without one it is by index only when the numbering cannot differ.
    """
    count = int(nvml.nvmlDeviceGetCount())
    if cuda_uuid:
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            if _bare_uuid(_text(nvml.nvmlDeviceGetUUID(handle))) == _bare_uuid(cuda_uuid):
                return index, handle
    if count == 1:
        return 0, nvml.nvmlDeviceGetHandleByIndex(0)
    same_numbering = (
        "CUDA_VISIBLE_DEVICES" not in os.environ and os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID"
    )
    if same_numbering and 0 <= cuda_index < count:
        return cuda_index, nvml.nvmlDeviceGetHandleByIndex(cuda_index)
    return None


@dataclass
class GpuPlan:
    """How the run's GPU energy is measured."""

    method: str  # "none" | "nvml-counter" | "nvml-power-integration" | "codecarbon-default"
    nvml_index: int | None = None  # the device CodeCarbon should track (gpu_ids)
    model: str = "none"
    source: PowerSource | None = None  # set for "nvml-power-integration"
    processes: NvmlProcessCounter | None = None  # compute processes on the device (it is shared if > 1)


def load_nvml() -> Any | None:
    """The initialised ``pynvml`` module (nvidia-ml-py), or None where NVML is not usable."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        logger.debug("NVML not available", exc_info=True)
        return None
    return pynvml


def cuda_uuid(cuda_index: int) -> str | None:
    try:
        import torch

        return str(torch.cuda.get_device_properties(cuda_index).uuid)
    except Exception:
        logger.debug("no CUDA uuid for device %s", cuda_index, exc_info=True)
        return None


def plan_gpu(cuda_index: int | None, nvml: Any | None = None, uuid: str | None = None) -> GpuPlan:
    """Decide how GPU energy is measured for a run on CUDA device ``cuda_index`` (None: no GPU)."""
    if cuda_index is None:
        return GpuPlan("none")
    nvml = nvml if nvml is not None else load_nvml()
    if nvml is None:
        logger.warning("training on a GPU but NVML is not usable: GPU energy is not measured")
        return GpuPlan("none")
    found = find_nvml_device(nvml, cuda_index, uuid if uuid is not None else cuda_uuid(cuda_index))
    if found is None:
        logger.warning(
            "cannot tell which NVML device is CUDA device %d: CodeCarbon tracks its default GPUs", cuda_index
        )
        return GpuPlan("codecarbon-default")
    index, handle = found
    model = _text(nvml.nvmlDeviceGetName(handle))
    processes = NvmlProcessCounter(nvml, handle)
    if has_energy_counter(nvml, handle):
        return GpuPlan("nvml-counter", index, model, processes=processes)
    return GpuPlan("nvml-power-integration", index, model, NvmlPowerSource(nvml, handle), processes)
