"""Which method produced each energy term, read from the hardware objects CodeCarbon resolved.

CodeCarbon picks its CPU/RAM/GPU methods silently (RAPL when readable, else a TDP table or a
4 W-per-thread default scaled by CPU load; a RAM model from DIMM counts; NVML counters or power
averages), and the paper's caveat is that figures from different methods are not comparable. So the
``energy.*`` tags are derived from what the tracker actually set up (its hardware list), never
from what the configuration asked for. The private attributes this needs are read through
codecarbon_adapter.py, which pins the CodeCarbon version they were checked against.

``describe_energy`` turns a run's (or an epoch's) energy metrics and these tags into the one line
shown wherever a figure is shown (console, registered model version, report): the total, whether it
is a reading or an estimate, each term with its method, and to whom it is charged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sedwatt import names
from sedwatt.energy import codecarbon_adapter as cc
from sedwatt.energy.attribution import ATTRIBUTION_MACHINE, ATTRIBUTION_PROCESS, PROCESS_ATTRIBUTIONS
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


# -- saying what a figure is ----------------------------------------------------------------------
READING, ESTIMATE = "reading", "estimate"


def _forced_watts(method: str) -> str:
    """``forced-65W-cpu-load`` → ``65``."""
    return method.removeprefix("forced-").split("W", 1)[0]


def cpu_method_label(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """(label, reading|estimate) of the CPU term, or None when there is no CPU term."""
    method = tags.get("energy.cpu_method", "unknown")
    readings = {
        "rapl": "RAPL reading",
        "windows-emi": "Windows EMI reading",
        "power-gadget": "Power Gadget reading",
        "powermetrics": "powermetrics reading",
        "raspberry-pmic": "PMIC reading",
    }
    if method == "none":
        return None
    if method in readings:
        return readings[method], READING
    tdp = tags.get("energy.cpu_tdp_w", "?")
    default_tdp = tags.get("energy.cpu_tdp_source", "").startswith("default-")
    tdp_text = f"{tdp} W {'default ' if default_tdp else ''}TDP"
    if method == "cpu-load-estimate":
        return f"TDP × load estimate at {tdp_text}", ESTIMATE
    if method == "tdp-estimate":
        return f"constant half of {tdp_text} estimate", ESTIMATE
    if method.startswith("forced-") and method.endswith("-cpu-load"):
        return f"forced {_forced_watts(method)} W × load estimate", ESTIMATE
    if method.startswith("forced-"):
        return f"constant half of forced {_forced_watts(method)} W estimate", ESTIMATE
    return f"{method} (unknown method)", ESTIMATE


def ram_method_label(tags: Mapping[str, str]) -> tuple[str, str] | None:
    method = tags.get("energy.ram_method", "unknown")
    if method == "none":
        return None
    if method == "raspberry-pmic":
        return "PMIC reading", READING
    if method == "dimm-estimate":
        return f"constant {tags.get('energy.ram_power_w', '?')} W estimate from RAM size", ESTIMATE
    if method.startswith("forced-"):
        return f"constant forced {_forced_watts(method)} W", ESTIMATE
    return f"{method} (unknown method)", ESTIMATE


def gpu_method_label(tags: Mapping[str, str]) -> tuple[str, str] | None:
    method = tags.get("energy.gpu_method", "none")
    labels = {
        "nvml-counter": "NVML energy counter",
        "amdsmi-counter": "AMD SMI energy counter",
        "nvml-power-integration": "NVML power sampled and integrated",
        "codecarbon-power-average": "NVML power average",
        "powermetrics": "powermetrics reading",
    }
    if method == "none":
        return None
    return labels.get(method, f"{method} (unknown method)"), READING


def format_energy(kwh: float) -> str:
    """3 significant digits in kWh, Wh or mWh, whichever reads best."""
    wh = kwh * 1000.0
    if abs(wh) >= 1000:
        return f"{wh / 1000:.3g} kWh"
    if abs(wh) >= 0.1 or wh == 0:
        return f"{wh:.3g} Wh"
    return f"{wh * 1000:.3g} mWh"


def _number(values: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = values.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


def describe_energy(
    values: Mapping[str, Any], tags: Mapping[str, str], *, epoch: bool = False, short: bool = False
) -> str:
    """One line saying what an energy figure is: total, reading or estimate, and each term's method.

    ``values`` holds the energy metrics (a run's latest metrics, ``state.history[-1]``, or one epoch's
    metrics with ``epoch=True``); ``tags`` the run's ``energy.*`` tags. The run total is
    ``energy_total_kwh`` (else ``energy_cum_kwh``) with the ``*_energy_cum_kwh`` terms; an epoch's is
    ``energy_kwh`` with the ``*_energy_kwh`` terms. E.g. ``4.36 Wh (estimate: CPU 1.1 Wh TDP × load
    estimate at 85 W TDP, RAM 3.26 Wh constant 20 W estimate from RAM size, no GPU; this process's share
    of the machine's CPU and RAM by CPU time)``. ``short`` gives only the total and its kind, for the
    per-epoch console line.
    """
    if epoch:
        total = _number(values, names.ENERGY_KWH)
        keys = {"CPU": names.CPU_ENERGY_KWH, "RAM": names.RAM_ENERGY_KWH, "GPU": names.GPU_ENERGY_KWH}
    else:
        total = _number(values, names.ENERGY_TOTAL_KWH, names.ENERGY_CUM_KWH)
        keys = {label: names.COMPONENT_CUM_KWH[key] for label, key in
                (("CPU", names.CPU_ENERGY_KWH), ("RAM", names.RAM_ENERGY_KWH), ("GPU", names.GPU_ENERGY_KWH))}  # fmt: skip
    if total is None:
        return "energy not measured"
    terms = [
        ("CPU", cpu_method_label(tags), _number(values, keys["CPU"])),
        ("RAM", ram_method_label(tags), _number(values, keys["RAM"])),
        ("GPU", gpu_method_label(tags), _number(values, keys["GPU"])),
    ]
    kinds = {label[1] for _, label, _ in terms if label is not None}
    kind = "measured" if kinds == {READING} else "estimate" if kinds == {ESTIMATE} else "partly estimated"
    attribution = tags.get("energy.attribution", ATTRIBUTION_MACHINE)
    share = _number(values, names.ENERGY_PROCESS_CPU_SHARE)
    capacity = _number(values, names.ENERGY_PROCESS_CPU_CAPACITY)
    if short:
        if attribution in PROCESS_ATTRIBUTIONS:
            scope = f"process share {share:.2f}" if share is not None else "process share"
            if attribution == ATTRIBUTION_PROCESS and capacity is not None:
                scope += f", capacity {capacity:.2f}"  # RAM's factor
        else:
            scope = "whole machine"
            if share is not None and share < 0.995:
                scope += f", this process {share:.0%} of the CPU time"
        return f"{format_energy(total)} ({kind}, {scope})"
    parts = []
    for name, label, kwh in terms:
        if label is None:
            parts.append(f"no {name}")
        else:
            amount = f" {format_energy(kwh)}" if kwh is not None else ""
            parts.append(f"{name}{amount} {label[0]}")
    if attribution == ATTRIBUTION_PROCESS:
        scope = "this process's own use: its share of the machine's busy CPU time and of its CPU capacity"
    elif attribution in PROCESS_ATTRIBUTIONS:
        scope = "this process's share of the machine's CPU and RAM by CPU time"
    else:
        scope = "whole machine"
        contended = _number(tags, "energy.contended_epochs")
        lowest = _number(tags, "energy.min_process_cpu_share")
        if contended and lowest is not None:
            scope += f", shared with busy processes in {contended:g} epochs (this one down to {lowest:.0%})"
    if gpu_method_label(tags) is not None:
        scope += "; GPU whole device"
        if _number(tags, "energy.gpu_shared_epochs"):
            scope += " shared with other processes"
    return f"{format_energy(total)} ({kind}: {', '.join(parts)}; {scope})"
