"""Energy of one block of work outside training: dev-test inference, the calibration reference.

``sedwatt evaluate`` and ``sedwatt calibrate`` wrap their inference pass in ``measure_energy`` and
read the totals afterwards; the same offline tracker, provenance and GPU fallback as training, so
an inference figure and a training figure on one machine come from the same methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sedwatt import names
from sedwatt.config import EnergyConfig
from sedwatt.energy.nvml import GpuPlan
from sedwatt.energy.tracker import EnergySession


@dataclass
class EnergyMeasurement:
    """Filled in when the ``measure_energy`` block exits; ``measured`` is False when disabled.

    The energy fields are named as ``sedwatt.names.ENERGY_TERMS`` (and ``Segment``'s): the metrics' names.
    """

    name: str
    measured: bool = False
    duration_s: float | None = None
    energy_kwh: float | None = None
    cpu_energy_kwh: float | None = None
    gpu_energy_kwh: float | None = None
    ram_energy_kwh: float | None = None
    emissions_kg: float | None = None
    process_cpu_share: float | None = None  # this process's share of the machine's busy CPU time (attribution.py)
    process_cpu_capacity: float | None = None  # … and of all its CPU time, idle included (RAM's factor)
    tags: dict[str, str] = field(default_factory=dict)  # energy.* provenance
    files: list[Path] = field(default_factory=list)  # CodeCarbon's CSVs

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """The measured totals as MLflow metrics (nothing when not measured)."""
        if not self.measured:
            return {}
        keys = (*names.ENERGY_TERMS, "duration_s", "process_cpu_share", "process_cpu_capacity")
        values = {key: getattr(self, key) for key in keys}
        return {f"{prefix}{key}": float(value) for key, value in values.items() if value is not None}


@contextlib.contextmanager
def measure_energy(
    config: EnergyConfig,
    out_dir: Path,
    name: str = "inference",
    *,
    device: str | None = None,
    gpu_plan: GpuPlan | None = None,
) -> Iterator[EnergyMeasurement]:
    """Measure the energy of the ``with`` block; CodeCarbon's CSVs go to ``out_dir``.

    The totals are set also when the block raises (the energy was spent), then the error propagates.
    """
    result = EnergyMeasurement(name=name)
    if not config.enabled:
        yield result
        return
    session = EnergySession(
        config, Path(out_dir), project_name=f"sedwatt-{name}", device=device, gpu_plan=gpu_plan
    )
    result.tags = dict(session.tags)
    try:
        session.start_segment(name)
        yield result
    finally:
        try:
            if session.active:
                segment = session.stop_segment()
                result.measured = True
                for key in (*names.ENERGY_TERMS, "duration_s", "process_cpu_share", "process_cpu_capacity"):
                    setattr(result, key, getattr(segment, key))
        finally:
            result.files = session.close()
