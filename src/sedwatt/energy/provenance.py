"""Which method produced each energy term, read from the hardware objects CodeCarbon resolved.

CodeCarbon picks its CPU/RAM/GPU methods silently (RAPL when readable, else a TDP table or a
4 W-per-thread default scaled by CPU load; a RAM model from DIMM counts; NVML counters or power
averages), and the paper's caveat is that figures from different methods are not comparable. So the
``energy.*`` tags are derived from what the tracker actually set up (its hardware list), never
from what the configuration asked for. The private attributes this needs are read through
codecarbon_adapter.py, which pins the CodeCarbon version they were checked against.
"""

from __future__ import annotations

import logging
from typing import Any

from sedwatt.energy import codecarbon_adapter as cc
from sedwatt.errors import SedwattError

logger = logging.getLogger(__name__)

# CodeCarbon CPU ``_mode`` → sedwatt method name.
CPU_MODE_METHODS = {
    "intel_rapl": "rapl",
    "windows_emi": "windows-emi",
    "intel_power_gadget": "power-gadget",
    "cpu_load": "cpu-load-estimate",
    "constant": "tdp-estimate",
}


def _watts(value: float) -> str:
    return f"{value:g}"


def tdp_source(cpu: Any) -> str:
    """Where a load/constant-mode CPU's TDP came from: "tdp-table" or "default-<W>W-per-thread"."""
    try:
        if cc.cpu_in_tdp_table(cpu):
            return "tdp-table"
        return f"default-{_watts(cc.default_power_per_thread_w())}W-per-thread"
    except SedwattError:
        raise
    except Exception:  # the table could not be read: say so rather than guess
        logger.debug("TDP source lookup failed", exc_info=True)
        return "unknown"


def cpu_provenance(hardware: list[Any], force_cpu_power: float | None) -> dict[str, str]:
    cpus = [hw for hw in hardware if type(hw).__name__ == "CPU"]
    chips = [hw for hw in hardware if type(hw).__name__ in ("AppleSiliconChip", "Raspberry")]
    if not cpus:
        for chip in chips:
            if getattr(chip, "chip_part", "") == "CPU":
                name = "powermetrics" if type(chip).__name__ == "AppleSiliconChip" else "raspberry-pmic"
                return {"energy.cpu_method": name}
        return {"energy.cpu_method": "none"}
    cpu = cpus[0]
    mode = cc.cpu_mode(cpu)
    method = CPU_MODE_METHODS.get(mode, mode)
    tags: dict[str, str] = {}
    if mode in ("cpu_load", "constant"):
        tdp = cc.cpu_tdp(cpu)
        if force_cpu_power is not None and tdp == force_cpu_power:
            suffix = "-cpu-load" if mode == "cpu_load" else ""
            method = f"forced-{_watts(force_cpu_power)}W{suffix}"
            tags["energy.cpu_tdp_source"] = "forced"
        else:
            tags["energy.cpu_tdp_source"] = tdp_source(cpu)
        if tdp is not None:
            tags["energy.cpu_tdp_w"] = _watts(tdp)
    return {"energy.cpu_method": method, **tags}


def ram_provenance(hardware: list[Any]) -> dict[str, str]:
    for hw in hardware:
        if type(hw).__name__ == "Raspberry" and getattr(hw, "chip_part", "") == "RAM":
            return {"energy.ram_method": "raspberry-pmic"}
        if type(hw).__name__ == "RAM":
            forced = cc.ram_forced_power_w(hw)
            method = f"forced-{_watts(forced)}W" if forced is not None else "dimm-estimate"
            tags = {"energy.ram_method": method}
            try:
                tags["energy.ram_power_w"] = _watts(round(float(hw.total_power().W), 3))
            except Exception:
                logger.debug("RAM power probe failed", exc_info=True)
            return tags
    return {"energy.ram_method": "none"}


def codecarbon_gpu_method(hardware: list[Any]) -> str:
    """How CodeCarbon itself measures the tracked GPUs: counter, power average, or none."""
    for hw in hardware:
        if type(hw).__name__ == "AppleSiliconChip" and getattr(hw, "chip_part", "") == "GPU":
            return "powermetrics"
        if type(hw).__name__ != "GPU":
            continue
        tracked = set(hw.gpu_ids or [])
        devices = [d for d in getattr(hw.devices, "devices", []) if not tracked or d.gpu_index in tracked]
        if not devices:
            return "none"
        backend = "amdsmi" if any(type(d).__name__.startswith("AMD") for d in devices) else "nvml"
        if all(cc.gpu_device_has_counter(d) for d in devices):
            return f"{backend}-counter"
        return "codecarbon-power-average"
    return "none"
