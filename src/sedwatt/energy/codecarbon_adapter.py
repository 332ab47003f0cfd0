"""The only module that reads CodeCarbon's private internals; it requires exactly CodeCarbon 3.3.2.

What sedwatt needs and CodeCarbon does not offer publicly:
- ``_measure_power_and_energy()``: a measurement in task mode, where CodeCarbon pauses its own
  scheduler (tracker.py's interval measurer);
- ``_hardware``, ``_active_task``, ``_output_handlers``, ``_scheduler``: the resolved hardware (for
  the ``energy.*`` provenance tags) and whether the constructor, wrapped in CodeCarbon's
  exception-swallowing ``@suppress``, really finished;
- ``_electricitymaps_api_token``, ``_api_call_interval``: cleared, so that no config file can turn
  emissions into an API call or add live output;
- the CPU's ``_mode``/``_tdp``/``_model`` and the TDP table lookup, RAM's ``_force_ram_power``, a GPU
  device's ``_has_counter``: which method produced each energy term.

Any of these can change in a minor release, and most would not fail but silently change an energy
figure or its provenance; so :func:`check_version` refuses every CodeCarbon but ``REQUIRED_VERSION``
(an ``EnergySession`` calls it before building a tracker, and every helper here before its first
use). Moving to a new CodeCarbon means re-reading these names in its source, then raising
``REQUIRED_VERSION`` and the pin in pyproject.toml together.
"""

from __future__ import annotations

from typing import Any

from sedwatt.pins import require_exact

DISTRIBUTION = "codecarbon"
REQUIRED_VERSION = "3.3.2"

# Set by the constructor before run_id, which it sets last: all present ⇔ it did not stop half-way.
_INITIALISED_ATTRIBUTES = ("run_id", "_output_handlers", "_active_task", "_scheduler", "_hardware")

_checked = False


def check_version() -> None:
    """Raise a one-line SedwattError unless exactly ``REQUIRED_VERSION`` is installed."""
    global _checked
    require_exact(DISTRIBUTION, REQUIRED_VERSION)
    _checked = True


def _ensure_checked() -> None:
    if not _checked:
        check_version()


# -- the tracker --------------------------------------------------------------------------------
def is_initialised(tracker: Any) -> bool:
    """Whether the constructor ran to its end (an exception inside it is swallowed, not raised)."""
    _ensure_checked()
    return all(hasattr(tracker, name) for name in _INITIALISED_ATTRIBUTES)


def disable_api_output(tracker: Any) -> None:
    """No grid-intensity API token (from ~/.codecarbon.config) and no live output between measurements."""
    _ensure_checked()
    tracker._electricitymaps_api_token = None
    tracker._api_call_interval = -1


def hardware(tracker: Any) -> list[Any]:
    """The CPU/GPU/RAM objects the tracker measures with."""
    _ensure_checked()
    return list(tracker._hardware)


def task_started(tracker: Any) -> bool:
    """Whether ``start_task`` really started a task (it is silently skipped on a half-built tracker)."""
    _ensure_checked()
    return tracker._active_task is not None


def measure_now(tracker: Any) -> None:
    """One CodeCarbon measurement of every hardware term, added to the running task."""
    _ensure_checked()
    tracker._measure_power_and_energy()


# -- hardware objects (duck-typed: provenance tests pass look-alikes) ----------------------------
def cpu_mode(cpu: Any) -> str:
    """``intel_rapl``, ``cpu_load``, ``constant``, … or ``unknown``."""
    _ensure_checked()
    return str(getattr(cpu, "_mode", "unknown"))


def cpu_tdp(cpu: Any) -> float | None:
    """The TDP (W) a load/constant-mode CPU is estimated from, or None."""
    _ensure_checked()
    tdp = getattr(cpu, "_tdp", None)
    return None if tdp is None else float(tdp)


def cpu_in_tdp_table(cpu: Any) -> bool:
    """Whether CodeCarbon's TDP table knows this CPU model (else it uses a per-thread default)."""
    _ensure_checked()
    from codecarbon.core import cpu as cc_cpu
    from codecarbon.core.hardware_cache import get_cached_tdp

    return bool(get_cached_tdp(cc_cpu)._get_cpu_power_from_registry(cpu._model))


def default_power_per_thread_w() -> float:
    """The power CodeCarbon assumes per CPU thread for a model missing from its table."""
    _ensure_checked()
    from codecarbon.core import cpu as cc_cpu

    return float(cc_cpu.DEFAULT_POWER_PER_CORE)


def ram_forced_power_w(ram: Any) -> float | None:
    _ensure_checked()
    forced = getattr(ram, "_force_ram_power", None)
    return None if forced is None else float(forced)


def gpu_device_has_counter(device: Any) -> bool:
    """Whether CodeCarbon reads this GPU's NVML/AMD-SMI energy counter (else it averages power)."""
    _ensure_checked()
    return bool(getattr(device, "_has_counter", False))
