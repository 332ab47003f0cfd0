"""One row per run: its group keys and the convergence numbers recomputed from its per-epoch curve.

Group keys are named as in MLflow's search syntax (``params.batch_size``, ``tags.hw.gpu_model``),
plus two conveniences: ``hardware`` (the GPU model, or the CPU model on a machine without a GPU —
the paper's "GPU" axis, on any machine) and ``experiment``. The summary metrics a run logged at its
end are ignored: the per-epoch history is the source of truth (``sedwatt.convergence``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sedwatt.convergence import SUMMARY_FIELDS, summarize_curve
from sedwatt.errors import SedwattError
from sedwatt.evaluation.calibration import hardware_fingerprint  # noqa: F401  (one definition, shared)

from .runs import RunRecord

HARDWARE = "hardware"
EXPERIMENT = "experiment"
MISSING = "(missing)"
NO_GPU = ("", "none")
EXTRA_COLUMNS = ("hardware", "experiment", "run_name", "status")


def hardware_label(tags: dict[str, str]) -> str:
    """``hw.gpu_model``, or ``hw.cpu_model`` when the run had no GPU; "unknown" if neither is tagged."""
    gpu = (tags.get("hw.gpu_model") or "").strip()
    if gpu.lower() not in NO_GPU:
        return gpu
    cpu = (tags.get("hw.cpu_model") or "").strip()
    return f"CPU {cpu}" if cpu else "unknown"


def normalize_group_key(key: str) -> str:
    """Validate one ``--group-by`` key; returns it with MLflow's optional backticks removed."""
    raw = key.strip()
    if raw in (HARDWARE, EXPERIMENT):
        return raw
    prefix, dot, name = raw.partition(".")
    name = name.strip().strip("`").strip('"')
    if not dot or prefix not in ("params", "tags") or not name:
        raise SedwattError(
            f"--group-by {key!r}: name a param or tag as in MLflow's search syntax "
            f"(params.batch_size, tags.hw.gpu_model), or 'hardware' / 'experiment'"
        )
    return f"{prefix}.{name}"


def group_value(record: RunRecord, key: str) -> str | None:
    if key == HARDWARE:
        return hardware_label(record.tags)
    if key == EXPERIMENT:
        return record.experiment
    prefix, _, name = key.partition(".")
    source = record.params if prefix == "params" else record.tags
    return source.get(name)


def check_group_keys(records: Sequence[RunRecord], keys: Sequence[str]) -> None:
    """A key that no run carries is a typo, not a group: say so, with what the runs do carry."""
    for key in keys:
        if key in (HARDWARE, EXPERIMENT) or any(group_value(r, key) is not None for r in records):
            continue
        prefix = key.partition(".")[0]
        names = sorted({n for r in records for n in (r.params if prefix == "params" else r.tags)})
        hint = ", ".join(f"{prefix}.{n}" for n in names[:8]) + (" …" if len(names) > 8 else "")
        raise SedwattError(
            f"--group-by {key!r}: none of the {len(records)} runs has it (they have: {hint or 'nothing'})"
        )


def runs_frame(
    records: Sequence[RunRecord], run_curves: dict[str, dict[str, np.ndarray]], group_keys: Sequence[str]
) -> pd.DataFrame:
    """runs.csv: run_id, the group keys, the CurveSummary fields, then hardware/experiment/name/status.

    Runs without any epoch on record are left out.
    """
    rows = []
    for record in records:
        curve = run_curves.get(record.run_id)
        if curve is None or len(curve["step"]) == 0:
            continue
        summary = summarize_curve(curve["val_f1"], curve["energy_cum_kwh"], curve["cum_time_s"])
        row: dict[str, object] = {"run_id": record.run_id}
        for key in group_keys:
            value = group_value(record, key)
            row[key] = MISSING if value is None else value
        row.update(summary.as_dict())
        extras = {
            "hardware": hardware_label(record.tags),
            "experiment": record.experiment,
            "run_name": record.run_name,
            "status": record.status,
        }
        row.update({k: v for k, v in extras.items() if k not in row})
        rows.append(row)
    columns = ["run_id", *group_keys, *SUMMARY_FIELDS, *[c for c in EXTRA_COLUMNS if c not in group_keys]]
    frame = pd.DataFrame(rows, columns=columns)
    for name in SUMMARY_FIELDS:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    frame["epochs"] = frame["epochs"].astype("int64")
    frame["max_val_f1_epoch"] = frame["max_val_f1_epoch"].astype("Int64")
    return frame
