"""One offline CodeCarbon tracker measured in named segments (epochs, an inference pass).

Why a wrapper: CodeCarbon 3.3.2 has traps that would silently corrupt energy figures: the online
tracker calls geo-IP services, a constructor error is swallowed and leaves a zombie tracker, config
files and ``CODECARBON_*`` variables can switch on API output, and its logger prints dozens of lines. An ``EnergySession`` builds an ``OfflineEmissionsTracker`` with
every behaviour-changing argument given explicitly, checks it really initialised, shows only
CodeCarbon's errors, records the provenance tags, and measures segments with
``start_task``/``stop_task`` on that one tracker. When the GPU has no NVML energy counter, its term
comes from sedwatt's own power integration (nvml.py) instead.

In task mode CodeCarbon pauses its ``measure_power_secs`` scheduler and would read energy counters
only at each segment's ends (averaging its 1 s CPU-load / GPU-power samples in between), so the
session triggers CodeCarbon's measurement itself every ``measure_power_secs`` during a segment.

CodeCarbon always measures the whole machine here (its ``tracking_mode="machine"``); with
``energy.tracking_mode=process`` the session charges the segment its process tree's share of the
machine's CPU time (attribution.py says why CodeCarbon's own process mode is not used). A segment
keeps both figures: the charged terms and the machine's.

Handling these traps needs CodeCarbon's private attributes; they are read only in
codecarbon_adapter.py, which refuses any CodeCarbon but the exact version they were checked against.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sedwatt.energy import codecarbon_adapter as cc
from sedwatt.energy.attribution import (
    ATTRIBUTION_MACHINE,
    ATTRIBUTION_PROCESS,
    CpuShareMeter,
    attribute,
    attribution_name,
)
from sedwatt.energy.nvml import GpuPlan, PowerSampler, plan_gpu
from sedwatt.energy.provenance import codecarbon_gpu_method, cpu_provenance, ram_provenance
from sedwatt.errors import SedwattError
from sedwatt.hardware import used_cuda_index

if TYPE_CHECKING:
    from sedwatt.config import EnergyConfig

logger = logging.getLogger(__name__)

CODECARBON_LOGGER = "codecarbon"
KWH_TO_J = 3.6e6


class _CodecarbonGate(logging.Filter):
    """Lets only CodeCarbon's errors through, and notes the exceptions it swallowed (@suppress)."""

    def __init__(self) -> None:
        super().__init__()
        self.users = 0
        self.swallowed_count = 0
        self.recent: deque[tuple[int, str]] = deque(maxlen=20)  # (sequence number, "Type: message")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            self.recent.append((self.swallowed_count, f"{exc.__class__.__name__}: {exc}"))
            self.swallowed_count += 1
        return record.levelno >= logging.ERROR


_gate = _CodecarbonGate()
_gate_lock = threading.Lock()


@contextlib.contextmanager
def quiet_codecarbon() -> Iterator[_CodecarbonGate]:
    """Silence CodeCarbon's info/warning chatter (errors still print) for the duration."""
    cc_logger = logging.getLogger(CODECARBON_LOGGER)
    with _gate_lock:
        if _gate.users == 0:
            cc_logger.addFilter(_gate)
        _gate.users += 1
    try:
        yield _gate
    finally:
        with _gate_lock:
            _gate.users -= 1
            if _gate.users == 0:
                cc_logger.removeFilter(_gate)


def _swallowed_since(mark: int) -> str | None:
    """The first exception CodeCarbon swallowed after ``mark`` (a ``swallowed_count``), if any."""
    for sequence, text in list(_gate.recent):
        if sequence >= mark:
            return text
    return None


def codecarbon_version() -> str:
    from codecarbon import __version__

    return str(__version__)


def known_country(iso_code: str) -> bool:
    from codecarbon.input import DataSource

    return iso_code in DataSource().get_global_energy_mix_data()


@dataclass
class Segment:
    """The energy of one measured span (kWh, W, %, s); powers are averages over the span.

    ``energy_kwh`` and its CPU/GPU/RAM terms are what the job is charged (``attribution``);
    ``machine_*`` are the whole machine's figures they come from. The charged fields are named as the
    metrics (``sedwatt.names.ENERGY_TERMS``): the callbacks copy them by those names.
    """

    name: str
    duration_s: float
    energy_kwh: float
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    emissions_kg: float
    cpu_power_w: float
    gpu_power_w: float
    ram_power_w: float
    cpu_util_pct: float  # system-wide busy ÷ all CPU time over the span (attribution.machine_cpu_seconds)
    gpu_util_pct: float
    codecarbon_gpu_energy_kwh: float  # CodeCarbon's own GPU figure (differs when sedwatt integrates)
    attribution: str = ATTRIBUTION_MACHINE  # or ATTRIBUTION_PROCESS (attribution.py)
    process_cpu_share: float = 1.0  # this process tree's CPU time ÷ the machine's busy CPU time
    process_cpu_capacity: float = 1.0  # this process tree's CPU time ÷ all the machine's CPU time (RAM's factor)
    process_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0
    machine_energy_kwh: float = 0.0  # CPU + GPU + RAM of the whole machine
    machine_cpu_energy_kwh: float = 0.0
    machine_ram_energy_kwh: float = 0.0
    process_energy_kwh: float = 0.0  # what the process attribution charges, whichever attribution is used
    gpu_processes: int = 0  # compute processes seen on the measured GPU (0: no GPU or unreadable)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean_power(kwh: float, seconds: float) -> float:
    return kwh * KWH_TO_J / seconds if seconds > 0 else 0.0


class _IntervalMeasurer:
    """Calls CodeCarbon's measurement every ``interval_s`` while a segment runs.

    CodeCarbon pauses its own ``measure_power_secs`` scheduler during a task and reads counters only
    at the task's ends; measuring at the configured interval keeps long epochs from losing
    wrapped RAPL counters and makes ``energy.interval_s`` mean what it says.
    """

    def __init__(self, tracker: Any, interval_s: float) -> None:
        self.tracker = tracker
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sedwatt-energy-interval", daemon=True)
        self.failures = 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                cc.measure_now(self.tracker)
            except Exception:
                self.failures += 1
                if self.failures == 1:
                    logger.warning("energy: an interval measurement failed", exc_info=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class EnergySession:
    """An offline CodeCarbon tracker measuring named segments one after the other.

    ``tags`` holds the provenance (energy.tool, energy.cpu_method, …). Call ``close()`` once at the
    end (it is idempotent and also stops a segment left open); it returns CodeCarbon's CSV files.
    """

    def __init__(
        self,
        config: EnergyConfig,
        out_dir: Path,
        *,
        project_name: str = "sedwatt",
        device: str | None = None,
        gpu_plan: GpuPlan | None = None,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self._closed = False
        self._active: str | None = None
        self._sampler: PowerSampler | None = None
        self._measurer: _IntervalMeasurer | None = None
        self._share_meter = CpuShareMeter()
        self._gpu_processes = 0
        self._quiet = quiet_codecarbon()  # before the first codecarbon import: it logs at import
        self._quiet.__enter__()
        try:
            cc.check_version()  # before any figure: another CodeCarbon may read its internals differently
            self._validate(config)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.gpu_plan = gpu_plan if gpu_plan is not None else plan_gpu(used_cuda_index(device))
            self.tracker = self._build_tracker(project_name)
            self.tags = self._provenance()
        except BaseException:
            self._quiet.__exit__(None, None, None)
            self._closed = True
            raise

    # -- construction ---------------------------------------------------------------------------
    @staticmethod
    def _validate(config: EnergyConfig) -> None:
        if config.measure_power_secs <= 0:
            raise SedwattError(f"energy.measure_power_secs={config.measure_power_secs}: must be > 0")
        if config.nvml_sample_secs <= 0:
            raise SedwattError(f"energy.nvml_sample_secs={config.nvml_sample_secs}: must be > 0")
        for key in ("force_cpu_power_w", "force_ram_power_w"):
            value = getattr(config, key)
            if value is not None and value <= 0:
                raise SedwattError(f"energy.{key}={value}: a forced power must be > 0 W (or unset)")
        if not known_country(config.country_iso_code):
            raise SedwattError(
                f"energy.country_iso_code={config.country_iso_code!r}: not a country CodeCarbon knows "
                "(a 3-letter ISO code such as FRA, DEU, USA)"
            )

    def _build_tracker(self, project_name: str) -> Any:
        from codecarbon import OfflineEmissionsTracker, OutputMethod

        cfg = self.config
        mark = _gate.swallowed_count
        kwargs: dict[str, Any] = {
            "country_iso_code": cfg.country_iso_code,
            "region": None,
            "cloud_provider": None,
            "cloud_region": None,
            "project_name": project_name,
            "experiment_name": project_name,
            "measure_power_secs": cfg.measure_power_secs,
            "tracking_mode": "machine",  # attribution to the process is sedwatt's (attribution.py)
            "force_cpu_power": cfg.force_cpu_power_w,
            "force_ram_power": cfg.force_ram_power_w,
            "force_mode_cpu_load": False,
            "force_carbon_intensity_g_co2e_kwh": None,
            "pue": 1.0,
            "output_dir": str(self.out_dir),
            "output_file": "emissions.csv",
            "output_methods": [OutputMethod.CSV],
            "emissions_endpoint": None,
            "electricitymaps_api_token": None,
            "allow_multiple_runs": True,
            "rapl_include_dram": False,
            "rapl_prefer_psys": False,
            "log_level": "warning",  # warnings reach the gate (which hides them) so swallowed errors are seen
        }
        if self.gpu_plan.nvml_index is not None:
            kwargs["gpu_ids"] = [self.gpu_plan.nvml_index]
        # The constructor is wrapped in CodeCarbon's @suppress: an exception inside it is logged as a
        # warning and leaves a half-built tracker. Let warnings reach the gate to see it.
        logging.getLogger(CODECARBON_LOGGER).setLevel(logging.WARNING)
        tracker = OfflineEmissionsTracker(**kwargs)
        swallowed = _swallowed_since(mark)
        if swallowed or not cc.is_initialised(tracker):
            cause = swallowed or "no exception recorded"
            raise SedwattError(
                f"energy: CodeCarbon {codecarbon_version()} tracker failed to initialise ({cause}); "
                "fix the cause or set energy.enabled=false"
            )
        # A co2_signal token from ~/.codecarbon.config would make emissions an API call: never; and no
        # live output between measurements, only the CSVs at stop.
        cc.disable_api_output(tracker)
        try:
            tracker.get_detected_hardware()  # resolve CPU/GPU/RAM methods now, not at the first epoch
        except Exception as exc:
            raise SedwattError(
                f"energy: CodeCarbon {codecarbon_version()} could not set up hardware tracking "
                f"({exc.__class__.__name__}: {exc}); set energy.enabled=false to train without it"
            ) from exc
        return tracker

    def _provenance(self) -> dict[str, str]:
        cfg = self.config
        hardware = cc.hardware(self.tracker)
        tags = {
            "energy.tool": f"codecarbon {codecarbon_version()}",
            **cpu_provenance(hardware, cfg.force_cpu_power_w),
            **ram_provenance(hardware),
            "energy.interval_s": f"{cfg.measure_power_secs:g}",
            "energy.tracking_mode": cfg.tracking_mode,
            "energy.attribution": attribution_name(cfg.tracking_mode),
            "energy.country": cfg.country_iso_code,
        }
        codecarbon_gpu = codecarbon_gpu_method(hardware)
        if self.gpu_plan.method == "nvml-power-integration":
            tags["energy.gpu_method"] = "nvml-power-integration"
            tags["energy.gpu_sample_s"] = f"{cfg.nvml_sample_secs:g}"
        else:
            tags["energy.gpu_method"] = codecarbon_gpu
        if codecarbon_gpu != "none" or self.gpu_plan.method != "none":
            tags["energy.gpu_model"] = (
                self.gpu_plan.model if self.gpu_plan.model != "none" else "codecarbon-default"
            )
        return tags

    # -- segments -------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active is not None

    def start_segment(self, name: str) -> None:
        if self._closed:
            raise RuntimeError("energy session is closed")
        if self._active is not None:
            raise RuntimeError(f"segment {self._active!r} is still being measured")
        self.tracker.start_task(name)
        if not cc.task_started(self.tracker):
            raise SedwattError(
                f"energy: CodeCarbon did not start measuring {name!r} (tracker not initialised)"
            )
        if self.gpu_plan.source is not None:
            self._sampler = PowerSampler(self.gpu_plan.source, self.config.nvml_sample_secs)
            self._sampler.start()
        self._measurer = _IntervalMeasurer(self.tracker, self.config.measure_power_secs)
        self._measurer.start()
        self._share_meter.start()
        self._gpu_processes = self._count_gpu_processes()
        self._active = name

    def _count_gpu_processes(self) -> int:
        counter = self.gpu_plan.processes
        count = counter.count() if counter is not None else None
        return int(count or 0)

    def stop_segment(self) -> Segment:
        if self._active is None:
            raise RuntimeError("no segment is being measured")
        name, self._active = self._active, None
        share = self._share_meter.stop()  # also the machine's utilisation: one reading, one definition of busy
        gpu_processes = max(self._gpu_processes, self._count_gpu_processes())
        if self._measurer is not None:  # before stop_task: never two measurements at once
            self._measurer.stop()
            self._measurer = None
        trace = self._sampler.stop() if self._sampler is not None else None
        self._sampler = None
        data = self.tracker.stop_task()
        if data is None:
            raise SedwattError(f"energy: CodeCarbon lost the measurement of {name!r}")
        duration = float(data.duration)
        machine_cpu, machine_ram = float(data.cpu_energy), float(data.ram_energy)
        cc_gpu = float(data.gpu_energy)
        gpu = trace.kwh if trace is not None else cc_gpu
        attribution = attribution_name(self.config.tracking_mode)
        charged = attribute(attribution, share, cpu_kwh=machine_cpu, gpu_kwh=gpu, ram_kwh=machine_ram)
        as_process = (
            charged
            if attribution == ATTRIBUTION_PROCESS
            else attribute(ATTRIBUTION_PROCESS, share, cpu_kwh=machine_cpu, gpu_kwh=gpu, ram_kwh=machine_ram)
        )
        cpu, ram, energy = charged.cpu_kwh, charged.ram_kwh, charged.total_kwh
        cc_energy = float(data.energy_consumed)
        emissions = float(data.emissions)
        if cc_energy > 0:  # same grid intensity, for sedwatt's GPU term and the job's share
            emissions *= energy / cc_energy
        return Segment(
            name=name,
            duration_s=duration,
            energy_kwh=energy,
            cpu_energy_kwh=cpu,
            gpu_energy_kwh=gpu,
            ram_energy_kwh=ram,
            emissions_kg=emissions,
            cpu_power_w=_mean_power(cpu, duration),
            gpu_power_w=_mean_power(gpu, duration),
            ram_power_w=_mean_power(ram, duration),
            cpu_util_pct=share.machine_util_pct,
            gpu_util_pct=float(data.gpu_utilization_percent or 0.0),
            codecarbon_gpu_energy_kwh=cc_gpu,
            attribution=attribution,
            process_cpu_share=share.share,
            process_cpu_capacity=share.capacity,
            process_cpu_s=share.process_s,
            machine_cpu_s=share.machine_s,
            machine_energy_kwh=machine_cpu + gpu + machine_ram,
            machine_cpu_energy_kwh=machine_cpu,
            machine_ram_energy_kwh=machine_ram,
            process_energy_kwh=as_process.total_kwh,
            gpu_processes=gpu_processes,
        )

    def close(self) -> list[Path]:
        """Stop the tracker (writes CodeCarbon's CSVs); returns the CSV files it wrote."""
        if self._closed:
            return self.codecarbon_files()
        self._closed = True
        try:
            if self._active is not None:
                self.stop_segment()
            mark = _gate.swallowed_count
            self.tracker.stop()
            cause = _swallowed_since(mark)
            if cause:
                logger.warning("energy: CodeCarbon failed while stopping (%s); its CSV may be missing", cause)
        finally:
            if self._measurer is not None:
                self._measurer.stop()
                self._measurer = None
            if self._sampler is not None:
                with contextlib.suppress(RuntimeError):
                    self._sampler.stop()
                self._sampler = None
            self._quiet.__exit__(None, None, None)
        return self.codecarbon_files()

    def codecarbon_files(self) -> list[Path]:
        return sorted(p for p in self.out_dir.glob("emissions*.csv") if p.is_file())
