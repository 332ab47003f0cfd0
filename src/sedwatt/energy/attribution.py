"""Which part of the machine's energy is this job's: its share of the CPU time used on the machine.

CodeCarbon measures (or estimates) the whole machine: RAPL counts the package, the load estimate is
TDP × machine load, RAM is a constant for the installed memory. A job that shares the machine with
other work is then charged for all of it, and its figure grows with the time it waits for the CPU.

CodeCarbon 3.3.2's own ``tracking_mode="process"`` does not fix this (see its ``external/hardware.py``
and ``external/ram.py``): it changes only the load estimate (TDP × this process tree's CPU time ÷
(wall time × CPUs), but a child's CPU time is lost for the interval in which it appears and the one
in which it exits); a RAPL reading stays machine-wide; and RAM becomes a DIMM-count guess from the
process's RSS with a floor of two DIMMs (10 W on x86), so every process is charged at least 10 W
whatever its size and however many run. So sedwatt measures the machine with CodeCarbon (always its
``machine`` mode) and, with ``energy.tracking_mode=process``, charges the job for its own use:

    CPU energy × share,     share    = this process tree's CPU time ÷ all busy CPU time
    RAM energy × capacity,  capacity = this process tree's CPU time ÷ all CPU time (busy or idle)

over each measured segment. The CPU term is the busy-time rule Scaphandre and Kepler use: under a TDP ×
load estimate it is exactly the job's own load's power. The RAM term is (without a per-process reading) a
constant for the installed memory, drawn whether the CPUs work or not, so it is charged by the part of the
machine's CPU capacity the job used: charged by the busy share instead, a job alone would carry all of it
and each of two jobs half, and the same training came out 36–46 % cheaper beside a second job than alone
(benchmarks/contention.py, README "Measured"). With both terms following the job's own CPU time, the same
work costs about the same alone or beside others, the charges of jobs running together add up to at most
the machine's figure, and idle capacity is charged to nobody — so a job alone that uses one core of a
16-core machine is no longer charged the whole machine (``machine`` mode still is). Until 2026-12-02 the
rule charged RAM by the busy share too; such runs carry the tag value ``process-cpu-share``. The GPU is
measured for the whole device in both modes (NVML's per-process accounting needs root and
accounting mode); the number of compute processes on it is recorded instead so a shared GPU shows.

Everything here is plain psutil/NVML reading and arithmetic; no CodeCarbon internals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

ATTRIBUTION_PROCESS = "process-cpu-use"
ATTRIBUTION_MACHINE = "machine"
# Runs logged before 2026-12-02: CPU and RAM both charged by the busy share (``energy.attribution`` tag).
ATTRIBUTION_PROCESS_BUSY_SHARE = "process-cpu-share"
PROCESS_ATTRIBUTIONS = (ATTRIBUTION_PROCESS, ATTRIBUTION_PROCESS_BUSY_SHARE)


def attribution_name(tracking_mode: str) -> str:
    """The ``energy.attribution`` tag value for a config's ``energy.tracking_mode``."""
    return ATTRIBUTION_PROCESS if tracking_mode == "process" else ATTRIBUTION_MACHINE


# -- CPU time -------------------------------------------------------------------------------------
def machine_cpu_seconds(times: Any | None = None) -> tuple[float, float]:
    """(busy, total) CPU-seconds of this machine (all CPUs) since boot, from one ``psutil.cpu_times()``.

    total is every CPU's time; busy leaves out idle, iowait and steal (time the hypervisor gave to
    another VM). Guest time is already inside user/nice on Linux, so it is not added again. The one
    definition of busy behind both the job's share and the machine's utilisation.
    """
    if times is None:
        import psutil

        times = psutil.cpu_times()
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "steal", 0.0), total


def process_tree_seconds(pid: int | None = None) -> float:
    """CPU-seconds (user + system) of process ``pid`` and all its descendants, live or reaped.

    A live descendant counts its own time and that of the children it reaped; a reaped one is in its
    parent's ``children_*`` times. So a DataLoader worker that exits between two readings is counted
    once, in full, on both sides of its exit.
    """
    import psutil

    root = psutil.Process(pid if pid is not None else os.getpid())
    seconds = 0.0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        processes = [root]
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # exited (its time moves to its parent's children_* once reaped)
            continue
        seconds += times.user + times.system + times.children_user + times.children_system
    return seconds


@dataclass(frozen=True)
class CpuShare:
    """CPU time of this process tree and of the whole machine over one span."""

    process_s: float
    machine_s: float  # busy CPU-seconds of the whole machine
    total_s: float = 0.0  # all CPU-seconds of the whole machine, idle included

    @property
    def machine_util_pct(self) -> float:
        """The machine's CPU utilisation over the span (busy ÷ total), in %; 0 when no time passed."""
        if self.total_s <= 0:
            return 0.0
        return min(max(100.0 * self.machine_s / self.total_s, 0.0), 100.0)

    @property
    def share(self) -> float:
        """process ÷ machine, in [0, 1]; 1 when nothing ran at all (nobody else to charge)."""
        if self.machine_s <= 0:
            return 1.0
        return min(max(self.process_s / self.machine_s, 0.0), 1.0)

    @property
    def capacity(self) -> float:
        """process ÷ all CPU time of the machine (its capacity over the span), in [0, 1]; the share when no
        time was read at all."""
        if self.total_s <= 0:
            return self.share
        return min(max(self.process_s / self.total_s, 0.0), 1.0)


class CpuShareMeter:
    """Reads both CPU times at ``start()`` and ``stop()``; ``stop()`` returns the span's ``CpuShare``.

    ``machine_seconds`` returns (busy, total) as ``machine_cpu_seconds`` does.
    """

    def __init__(
        self,
        pid: int | None = None,
        *,
        process_seconds: Callable[[], float] | None = None,
        machine_seconds: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        self._process = process_seconds or (lambda: process_tree_seconds(pid))
        self._machine = machine_seconds or machine_cpu_seconds
        self._start: tuple[float, tuple[float, float]] | None = None

    def start(self) -> None:
        self._start = (self._process(), self._machine())

    def stop(self) -> CpuShare:
        if self._start is None:
            raise RuntimeError("CPU share meter not started")
        process, (busy, total) = self._process(), self._machine()
        (process0, (busy0, total0)), self._start = self._start, None
        return CpuShare(max(process - process0, 0.0), max(busy - busy0, 0.0), max(total - total0, 0.0))


# -- energy ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attributed:
    """A segment's energy terms after attribution (kWh) and the factors applied to CPU and RAM."""

    cpu_kwh: float
    gpu_kwh: float
    ram_kwh: float
    cpu_factor: float
    ram_factor: float

    @property
    def total_kwh(self) -> float:
        return self.cpu_kwh + self.gpu_kwh + self.ram_kwh


def attribute(
    attribution: str, share: CpuShare, *, cpu_kwh: float, gpu_kwh: float, ram_kwh: float
) -> Attributed:
    """Charge the job its own use (process attribution: CPU × busy share, RAM × capacity; module docstring),
    or the whole machine. The GPU term is the whole device's in both cases."""
    if attribution == ATTRIBUTION_MACHINE:
        cpu_factor = ram_factor = 1.0
    elif attribution == ATTRIBUTION_PROCESS:
        cpu_factor, ram_factor = share.share, share.capacity
    else:
        raise ValueError(f"unknown energy attribution {attribution!r}")
    return Attributed(cpu_kwh * cpu_factor, gpu_kwh, ram_kwh * ram_factor, cpu_factor, ram_factor)
