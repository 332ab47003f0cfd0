"""Per-epoch energy of a training run, as a training callback (key "energy").

One offline CodeCarbon tracker per process measures each epoch as a task (start at
``on_epoch_start``, stop at ``on_epoch_end``), so the per-epoch energies sum exactly to the run's
cumulative energy (time between epochs — checkpoint writing — is not counted, as in the paper's
per-epoch curves). The callback adds the schema's energy metrics to each epoch, records the
provenance tags at train start, and keeps a per-epoch CSV next to CodeCarbon's own CSVs. Its state
(cumulative sums and the rows so far) goes into checkpoints, so a resumed run continues the curve.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from sedwatt.atomic import write_atomic
from sedwatt.config import EnergyConfig
from sedwatt.energy.nvml import GpuPlan
from sedwatt.energy.tracker import EnergySession, Segment
from sedwatt.training.callbacks import Callback, RunState

logger = logging.getLogger(__name__)

PREDICT_AFTER_EPOCHS = (1, 3)  # CarbonTracker-style linear extrapolation points
CUMULATIVE_KEYS = ("energy_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh", "emissions_kg")
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
    "cpu_method",
    "gpu_method",
    "ram_method",
    "session",
)


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

    @property
    def energy_dir(self) -> Path:
        return self.out_dir / "energy"

    @property
    def csv_path(self) -> Path:
        return self.energy_dir / "epochs.csv"

    # -- hooks ----------------------------------------------------------------------------------
    def on_train_start(self, state: RunState) -> None:
        if not self.config.enabled:
            return
        self.session_index += 1
        self.session = EnergySession(
            self.config,
            self.energy_dir / "codecarbon",
            project_name="sedwatt",
            device=state.config.train.device,
            gpu_plan=self.gpu_plan,
        )
        self.tags = dict(self.session.tags)
        state.info.setdefault("tags", {}).update(self.tags)
        self._keep_unfinished_rows_on_disk()

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
        for key, value in (
            ("energy_kwh", segment.energy_kwh),
            ("cpu_energy_kwh", segment.cpu_energy_kwh),
            ("gpu_energy_kwh", segment.gpu_energy_kwh),
            ("ram_energy_kwh", segment.ram_energy_kwh),
            ("emissions_kg", segment.emissions_kg),
        ):
            self.cumulative[key] += value
            metrics[key] = value
        metrics["energy_cum_kwh"] = self.cumulative["energy_kwh"]
        if state.epoch in PREDICT_AFTER_EPOCHS and state.epoch > 0:
            metrics["energy_pred_total_kwh"] = self.cumulative["energy_kwh"] / state.epoch * self.total_epochs
        self._record(segment, state.epoch, complete=True)
        self._write_csv()

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
        artifacts = state.info.setdefault("artifacts", {})
        artifacts["energy"] = str(csv_path)
        if files:
            artifacts["energy/codecarbon"] = [str(path) for path in files]

    # -- resume ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "cumulative": dict(self.cumulative),
            "rows": [dict(row) for row in self.rows],
            "session_index": self.session_index,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cumulative = {key: float(state.get("cumulative", {}).get(key, 0.0)) for key in CUMULATIVE_KEYS}
        self.rows = [dict(row) for row in state.get("rows", [])]
        self.session_index = int(state.get("session_index", 0))

    # -- rows -----------------------------------------------------------------------------------
    def _record(self, segment: Segment, epoch: int, *, complete: bool) -> None:
        tags = self.tags
        row = {
            "epoch": epoch,
            "complete": int(complete),
            **{k: v for k, v in segment.as_dict().items() if k != "name"},
            "energy_cum_kwh": self.cumulative["energy_kwh"] if complete else "",
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
