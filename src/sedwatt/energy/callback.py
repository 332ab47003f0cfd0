"""Per-epoch energy of a training run, as a training callback (key "energy").

One offline CodeCarbon tracker per process measures each epoch as a task (start at
``on_epoch_start``, stop at ``on_epoch_end``), so the per-epoch energies sum exactly to the run's
cumulative energy (time between epochs — checkpoint writing — is not counted, as in the paper's
per-epoch curves). The callback adds the schema's energy metrics to each epoch, records the
provenance tags at train start, and keeps a per-epoch CSV next to CodeCarbon's own CSVs, with a
README.md saying what each file holds and why CodeCarbon's figures read differently. Its state
(cumulative sums and the rows so far) goes into checkpoints, so a resumed run continues the curve.

Each epoch also gets ``energy_process_cpu_share`` and ``energy_process_cpu_capacity`` (this process tree's share of the CPU time used
on the machine, and of all its CPU time: attribution.py). In ``energy.tracking_mode=machine`` an epoch below ``energy.contended_share`` is
charged for other processes' work too: it is warned about on the console and counted in the
``energy.contended_epochs`` / ``energy.min_process_cpu_share`` tags, so an analysis can exclude it.
The loop prints ``state.info["epoch_report"]`` after each epoch; this callback puts there the
epoch's energy with what kind of figure it is (``describe_energy``).
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from sedwatt import names
from sedwatt.atomic import write_atomic
from sedwatt.config import EnergyConfig
from sedwatt.energy.attribution import (
    ATTRIBUTION_MACHINE,
    ATTRIBUTION_PROCESS,
    ATTRIBUTION_PROCESS_BUSY_SHARE,
)
from sedwatt.energy.nvml import GpuPlan
from sedwatt.energy.provenance import describe_energy
from sedwatt.energy.tracker import EnergySession, Segment
from sedwatt.training.callbacks import Callback, RunState

logger = logging.getLogger(__name__)

ATTRIBUTION_TAG = "energy.attribution"
# Run tag: the attribution(s) a resumed checkpoint's epochs were charged by, when not this session's.
RESUMED_FROM_TAG = "energy.attribution_resumed_from"

PREDICT_AFTER_EPOCHS = (1, 3)  # CarbonTracker-style linear extrapolation points
CUMULATIVE_KEYS = names.ENERGY_TERMS  # Segment fields of those names, summed over epochs
CSV_COLUMNS = (
    "epoch",
    "complete",
    "duration_s",
    "energy_kwh",
    "energy_cum_kwh",
    "cpu_energy_kwh",
    "gpu_energy_kwh",
    "ram_energy_kwh",
    "emissions_kg",
    "cpu_power_w",
    "gpu_power_w",
    "ram_power_w",
    "cpu_util_pct",
    "gpu_util_pct",
    "codecarbon_gpu_energy_kwh",
    "attribution",
    "process_cpu_share",
    "process_cpu_capacity",
    "process_cpu_s",
    "machine_cpu_s",
    "machine_energy_kwh",
    "machine_cpu_energy_kwh",
    "machine_ram_energy_kwh",
    "process_energy_kwh",
    "gpu_processes",
    "cpu_method",
    "gpu_method",
    "ram_method",
    "session",
)


def epoch_list(epochs: list[int]) -> str:
    """Epochs for a message: ``1-3`` when they run on without a gap, else ``1, 3``."""
    epochs = sorted(set(epochs))
    if len(epochs) > 2 and epochs[-1] - epochs[0] == len(epochs) - 1:
        return f"{epochs[0]}-{epochs[-1]}"
    return ", ".join(map(str, epochs))


def write_csv_atomic(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Path:
    """Write rows as CSV through a temporary file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_atomic(path, buffer.getvalue())


class EnergyCallback(Callback):
    """Measures each epoch's energy with CodeCarbon and adds it to the epoch metrics."""

    key = "energy"

    def __init__(
        self,
        config: EnergyConfig,
        out_dir: Path,
        total_epochs: int,
        *,
        gpu_plan: GpuPlan | None = None,
    ) -> None:
        self.config = config
        self.gpu_plan = gpu_plan  # None: decided from the run's device at train start
        self.out_dir = Path(out_dir)
        self.total_epochs = int(total_epochs)
        self.session: EnergySession | None = None
        self.tags: dict[str, str] = {}
        self.cumulative: dict[str, float] = dict.fromkeys(CUMULATIVE_KEYS, 0.0)
        self.rows: list[dict[str, Any]] = []
        self.session_index = 0  # 1 for the first process, 2 after a resume, ...
        self.contended_epochs = 0  # epochs below config.contended_share
        self.min_share: float | None = None
        self.gpu_shared_epochs = 0  # epochs with another compute process on the measured GPU
        self._warned: set[str] = set()

    @property
    def energy_dir(self) -> Path:
        return self.out_dir / "energy"

    @property
    def csv_path(self) -> Path:
        return self.energy_dir / "epochs.csv"

    @property
    def readme_path(self) -> Path:
        return self.energy_dir / "README.md"

    # -- hooks ----------------------------------------------------------------------------------
    def on_train_start(self, state: RunState) -> None:
        self.session_index += 1
        self.session = EnergySession(
            self.config,
            self.energy_dir / "codecarbon",
            project_name="sedwatt",
            # the device the trainer resolved ("cuda" for "auto"), the one it computes on; else the setting
            device=state.info.get("device") or state.config.train.device,
            gpu_plan=self.gpu_plan,
        )
        self.tags = dict(self.session.tags)
        self._flag_resumed_attribution()
        state.info.setdefault("tags", {}).update(self.tags)
        self._keep_unfinished_rows_on_disk()
        self._write_readme()  # before the first epoch: a killed run still explains its files

    def on_epoch_start(self, state: RunState) -> None:
        if self.session is None:
            return
        if self.session.active:  # an epoch that never reached on_epoch_end (should not happen)
            self._record(self.session.stop_segment(), state.epoch - 1, complete=False)
        self.session.start_segment(f"epoch_{state.epoch}")

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        if self.session is None or not self.session.active:
            return
        segment = self.session.stop_segment()
        for key in CUMULATIVE_KEYS:
            value = getattr(segment, key)
            self.cumulative[key] += value
            metrics[key] = value
        metrics[names.ENERGY_CUM_KWH] = self.cumulative[names.ENERGY_KWH]
        for key, cumulative_key in names.COMPONENT_CUM_KWH.items():
            metrics[cumulative_key] = self.cumulative[key]
        metrics[names.ENERGY_MACHINE_KWH] = segment.machine_energy_kwh
        metrics[names.ENERGY_PROCESS_CPU_SHARE] = segment.process_cpu_share
        metrics[names.ENERGY_PROCESS_CPU_CAPACITY] = segment.process_cpu_capacity
        if self.session.gpu_plan.processes is not None:
            metrics[names.ENERGY_GPU_PROCESSES] = float(segment.gpu_processes)
        if state.epoch in PREDICT_AFTER_EPOCHS and state.epoch > 0:
            spent = self.cumulative[names.ENERGY_KWH]
            metrics[names.ENERGY_PRED_TOTAL_KWH] = spent / state.epoch * self.total_epochs
        self._record(segment, state.epoch, complete=True)
        self._write_csv()
        self._flag_sharing(state, segment)
        tags = state.info.get("tags", self.tags)
        report = describe_energy(metrics, tags, epoch=True, short=True)
        state.info.setdefault("epoch_report", {})["energy"] = f"energy {report}"

    def _flag_sharing(self, state: RunState, segment: Segment) -> None:
        """Count (and in machine mode, warn about) epochs whose machine-wide figures include others' work."""
        share = segment.process_cpu_share
        self.min_share = share if self.min_share is None else min(self.min_share, share)
        contended = share < self.config.contended_share
        if contended:
            self.contended_epochs += 1
        if segment.gpu_processes > 1:
            self.gpu_shared_epochs += 1
        tags = state.info.setdefault("tags", {})
        tags["energy.contended_epochs"] = str(self.contended_epochs)
        tags["energy.min_process_cpu_share"] = f"{self.min_share:.3f}"
        if self.gpu_shared_epochs:
            tags["energy.gpu_shared_epochs"] = str(self.gpu_shared_epochs)
        if contended and segment.attribution == ATTRIBUTION_MACHINE and "cpu" not in self._warned:
            self._warned.add("cpu")
            logger.warning(
                "energy: epoch %d: this process used %.0f%% of the CPU time on this machine, but "
                "energy.tracking_mode=machine charges it the whole machine's CPU and RAM energy "
                "(set energy.tracking_mode=process; later epochs are counted in tag energy.contended_epochs)",
                state.epoch,
                100 * share,
            )
        if segment.gpu_processes > 1 and "gpu" not in self._warned:
            self._warned.add("gpu")
            logger.warning(
                "energy: epoch %d: %d compute processes were on the GPU; its energy is the whole device's "
                "(tag energy.gpu_shared_epochs counts such epochs)",
                state.epoch,
                segment.gpu_processes,
            )

    def on_train_end(self, state: RunState) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            if session.active:  # training failed or was interrupted inside an epoch
                self._record(session.stop_segment(), state.epoch, complete=False)
        finally:
            files = session.close()
        csv_path = self._write_csv()
        readme = self._write_readme(files)
        artifacts = state.info.setdefault("artifacts", {})
        artifacts["energy"] = str(csv_path)
        artifacts["energy/README.md"] = str(readme)
        if files:
            artifacts["energy/codecarbon"] = [str(path) for path in files]
        if self.contended_epochs and self.tags.get("energy.attribution") == ATTRIBUTION_MACHINE:
            logger.warning(
                "energy: %d epoch(s) ran beside other busy processes (this process down to %.0f%% of the "
                "CPU time); their energy is the whole machine's",
                self.contended_epochs,
                100 * (self.min_share or 0.0),
            )

    # -- resume ---------------------------------------------------------------------------------
    def _flag_resumed_attribution(self) -> None:
        """Resumed from a checkpoint whose epochs were charged by another rule (e.g. ``process-cpu-share``
        before 2026-12-02): the run's totals mix both, so say so once and tag it for analysis."""
        current = self.tags.get(ATTRIBUTION_TAG, "")
        earlier: dict[str, list[int]] = {}
        for row in self.rows:  # the checkpoint's rows, the ones in the cumulative sums
            rule = str(row.get("attribution") or "")
            if rule and rule != current and str(row.get("complete", 1)) != "0":
                earlier.setdefault(rule, []).append(int(row["epoch"]))
        if not earlier:
            return
        self.tags[RESUMED_FROM_TAG] = ",".join(sorted(earlier))
        logger.warning(
            "energy: resumed from a checkpoint charged by energy.attribution %s (epochs %s) but this session "
            "charges %s: the run's energy totals mix both rules (tag %s)",
            " and ".join(sorted(earlier)),
            "; ".join(epoch_list(epochs) for _, epochs in sorted(earlier.items())),
            current,
            RESUMED_FROM_TAG,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "cumulative": dict(self.cumulative),
            "rows": [dict(row) for row in self.rows],
            "session_index": self.session_index,
            "contended_epochs": self.contended_epochs,
            "min_share": self.min_share,
            "gpu_shared_epochs": self.gpu_shared_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cumulative = {key: float(state.get("cumulative", {}).get(key, 0.0)) for key in CUMULATIVE_KEYS}
        self.rows = [dict(row) for row in state.get("rows", [])]
        self.session_index = int(state.get("session_index", 0))
        self.contended_epochs = int(state.get("contended_epochs", 0))
        min_share = state.get("min_share")
        self.min_share = None if min_share is None else float(min_share)
        self.gpu_shared_epochs = int(state.get("gpu_shared_epochs", 0))

    # -- rows -----------------------------------------------------------------------------------
    def _record(self, segment: Segment, epoch: int, *, complete: bool) -> None:
        tags = self.tags
        row = {
            "epoch": epoch,
            "complete": int(complete),
            **{k: v for k, v in segment.as_dict().items() if k != "name"},
            names.ENERGY_CUM_KWH: self.cumulative[names.ENERGY_KWH] if complete else "",
            "cpu_method": tags.get("energy.cpu_method", ""),
            "gpu_method": tags.get("energy.gpu_method", ""),
            "ram_method": tags.get("energy.ram_method", ""),
            "session": self.session_index,
        }
        self.rows.append(row)

    def _keep_unfinished_rows_on_disk(self) -> None:
        """After a resume, keep the epochs the killed process measured but no checkpoint saw.

        Their energy was spent (the epoch running when the process died, or one finished just before
        its checkpoint was written), but the resumed curve redoes them: they stay in the CSV with
        complete=0 and no cumulative value.
        """
        if not self.csv_path.is_file():
            return
        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            on_disk = list(csv.DictReader(handle))
        known = {(int(row["session"]), int(row["epoch"])) for row in self.rows}
        for row in on_disk:
            try:
                key = (int(row["session"]), int(row["epoch"]))
            except (KeyError, TypeError, ValueError):
                continue
            if key[0] < self.session_index and key not in known:
                self.rows.append({**row, "complete": 0, "energy_cum_kwh": ""})
        self.rows.sort(key=lambda row: (int(row["session"]), int(row["epoch"])))

    def _write_csv(self) -> Path:
        return write_csv_atomic(self.csv_path, self.rows, CSV_COLUMNS)

    def _write_readme(self, files: list[Path] | None = None) -> Path:
        """energy/README.md: what each file holds and why CodeCarbon's CSVs read differently."""
        text = files_readme(self.tags)
        check = self._session_check(files or [])
        if check:
            text += "\n## This process's figures, side by side\n\n" + check
        return write_atomic(self.readme_path, text)

    def _session_check(self, files: list[Path]) -> str:
        """This session's epochs against the emissions.csv row its tracker just wrote."""
        summary = next((f for f in files if f.name == "emissions.csv"), None)
        rows = [r for r in self.rows if int(r["session"]) == self.session_index]
        if summary is None or not rows:
            return ""
        with open(summary, newline="", encoding="utf-8") as handle:
            written = list(csv.DictReader(handle))
        if not written:
            return ""
        last = written[-1]
        terms = ("machine_cpu_energy_kwh", "machine_ram_energy_kwh", "codecarbon_gpu_energy_kwh")
        codecarbon_kwh = sum(float(r.get(key) or 0.0) for r in rows for key in terms)
        seconds = sum(float(r.get("duration_s") or 0.0) for r in rows)
        charged = sum(float(r.get("energy_kwh") or 0.0) for r in rows)
        return (
            f"Session {self.session_index} ({len(rows)} epochs measured):\n\n"
            "| | epochs.csv | codecarbon/emissions.csv (last row) |\n|---|---:|---:|\n"
            f"| energy, whole machine (CodeCarbon's terms), kWh | {codecarbon_kwh:.6g} (sum) | "
            f"{float(last.get('energy_consumed') or 0):.6g} |\n"
            f"| duration, s | {seconds:.1f} (sum of epochs) | "
            f"{float(last.get('duration') or 0):.1f} (last epoch) |\n"
            f"| charged to this run, kWh | {charged:.6g} | — |\n"
        )


def files_readme(tags: dict[str, str]) -> str:
    """The explanation written next to the energy files (markdown)."""
    attribution = tags.get(ATTRIBUTION_TAG, ATTRIBUTION_MACHINE)
    charged = (
        "its own use of the machine: the machine's CPU energy × `process_cpu_share` (this process and its "
        "children's CPU time ÷ all busy CPU time on the machine during the epoch) plus its RAM energy × "
        "`process_cpu_capacity` (the same CPU time ÷ all the machine's CPU time, idle included), plus the GPU's"
        if attribution == ATTRIBUTION_PROCESS
        else "its share of the machine: the machine's CPU and RAM energy × `process_cpu_share`, plus the GPU's "
        "(the rule before 2026-12-02)"
        if attribution == ATTRIBUTION_PROCESS_BUSY_SHARE
        else "the whole machine's energy, other processes' included (`energy.tracking_mode=machine`)"
    )
    resumed = tags.get(RESUMED_FROM_TAG)
    mixed = (
        f"Epochs restored from an earlier session's checkpoint were charged by `{resumed}` (tag "
        f"`{RESUMED_FROM_TAG}`): `energy_cum_kwh` and the run's totals mix the two rules; the `attribution` "
        "column says which rule charged each row.\n"
        if resumed
        else ""
    )
    return f"""# Energy files of this run

Written by sedwatt. Energy attribution: `{attribution}`: each epoch is charged {charged}.
{mixed}Methods: CPU `{tags.get("energy.cpu_method", "?")}`, RAM `{tags.get("energy.ram_method", "?")}`, \
GPU `{tags.get("energy.gpu_method", "?")}` (run tags `energy.*`). A `*-estimate` or `forced-*` method \
is a model, not a reading: without RAPL, CPU power is the TDP scaled by the machine's load and RAM power \
is a constant for the installed memory, so such an energy is about wall time × a constant.

## epochs.csv (sedwatt): the figures logged to MLflow

One row per measured epoch; `session` is 1 for the first process, 2 after a resume, ...

- `energy_kwh`, `cpu_energy_kwh`, `gpu_energy_kwh`, `ram_energy_kwh`, `emissions_kg`: what the run is charged
  (the MLflow metrics of the same names); `energy_cum_kwh`: their running sum over complete epochs.
- `machine_energy_kwh`, `machine_cpu_energy_kwh`, `machine_ram_energy_kwh`: the whole machine, as CodeCarbon
  measured it; `process_energy_kwh`: what the process attribution charges (equal to `energy_kwh` when the
  attribution is `process-cpu-use`); `process_cpu_share` = `process_cpu_s` / `machine_cpu_s`;
  `process_cpu_capacity` = `process_cpu_s` / all the machine's CPU time over the epoch (idle included).
- `cpu_util_pct`: the machine's CPU utilisation over the epoch, `machine_cpu_s` ÷ all CPU time (psutil CPU
  times; idle, iowait and a VM's steal are not busy); `gpu_processes`: compute
  processes seen on the measured GPU (GPU energy is the whole device's in both attributions).
- `complete=0`: energy spent in an epoch that did not finish (failure) or that a resume redid; not in
  `energy_cum_kwh`.
- `codecarbon_gpu_energy_kwh`: CodeCarbon's own GPU figure; it differs from `gpu_energy_kwh` only when sedwatt
  integrates NVML power itself (`energy.gpu_method=nvml-power-integration`).

## codecarbon/: CodeCarbon's own files, unchanged

CodeCarbon measures the whole machine here (its `tracking_mode` column says `machine` whatever the
attribution), one task per epoch; the time between epochs (checkpoint writing) is not measured.

- `emissions_<project>_<id>.csv`: one row per epoch of one process (`task_name` `epoch_N`). `cpu_energy`,
  `ram_energy`, `gpu_energy`, `energy_consumed` are the epoch's machine figures (`machine_cpu_energy_kwh`,
  `machine_ram_energy_kwh`, `codecarbon_gpu_energy_kwh` in epochs.csv). Its `cpu_utilization_percent`,
  `gpu_utilization_percent`, `ram_utilization_percent` and `ram_used_gb` are always 0 (CodeCarbon 3.3.2
  does not copy them into task rows), and its `cpu_power`, `gpu_power`, `ram_power` are averages since the
  process started, not over the epoch: use `cpu_util_pct` and the `*_power_w` columns of epochs.csv.
- `emissions.csv`: one row per process of the run (a resume appends one), written when training ends. Its
  energy and emissions columns are that process's totals over all its epochs (plus the moment between the
  last epoch and the end of training), but `duration`, `emissions_rate` and the utilisation columns cover only
  the last epoch (CodeCarbon restarts its clock at each task): divide energy by the sum of the epochs'
  `duration_s`, not by this duration.
"""
