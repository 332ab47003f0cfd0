"""Comparing across machines: hardware fingerprints, calibrations, and the registered model versions.

Energy is only comparable on the same hardware (paper, finding 2). Two aids:
- calibration runs (experiment ``sedwatt-calibration``, tag ``sedwatt.kind = 'calibration'``) measure
  the reference model's dev-test inference energy on one machine; a run's normalised energy is
  E × ref_published / ref_measured_here, using the latest calibration with the run's fingerprint
  (``hw.gpu_model``, ``hw.cpu_model``) whose energy was charged by the run's rule (``energy.attribution``);
- the model registry: each registered version carries its run's ``hw.*`` tags and energy, so the
  versions of the analysed runs are listed side by side.
Both are optional: without calibrations or registered versions the report says so.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from sedwatt import names
from sedwatt.evaluation.calibration import (  # noqa: F401  (re-exported for the report)
    CALIBRATION_EXPERIMENT,
    REF_METRIC,
    REF_PUBLISHED_PARAM,
    Calibration,
    CalibrationKey,
    charged_otherwise,
    load_calibrations,
    match_calibration,
)

from .history import chunks
from .per_run import hardware_label
from .runs import RunRecord

logger = logging.getLogger(__name__)


def add_normalised_energy(
    runs: pd.DataFrame, records: dict[str, RunRecord], calibrations: dict[CalibrationKey, Calibration]
) -> pd.DataFrame:
    """Columns ``energy_norm_factor`` and ``energy_total_norm_kwh`` (NaN where no calibration matches).

    Each run is normalised by the newest calibration of its hardware fingerprint charged by its own rule
    (``energy.attribution``; untagged runs by untagged calibrations, ``load_calibrations``): a factor measured
    under one rule does not normalise an energy charged by another. Runs whose machine has calibrations only
    under other rules are counted in a warning.
    """
    frame = runs.copy()
    factors, mismatched = [], 0
    for run_id in frame["run_id"]:
        tags = records[run_id].tags
        attribution = tags.get("energy.attribution")
        calibration = match_calibration(calibrations, tags, attribution)
        if calibration is None and charged_otherwise(calibrations, tags, attribution):
            mismatched += 1
        factors.append(calibration.factor if calibration else np.nan)
    if mismatched:
        logger.warning(
            "%d run(s) not normalised: their machine's calibrations charged energy by another energy.attribution "
            "(run `sedwatt calibrate` again there)",
            mismatched,
        )
    frame["energy_norm_factor"] = np.asarray(factors, dtype=float)
    frame["energy_total_norm_kwh"] = frame["energy_total_kwh"] * frame["energy_norm_factor"]
    return frame


CALIBRATION_COLUMNS = [
    "hardware", "gpu_model", "cpu_model", "attribution", "ref_measured_kwh", "ref_published_kwh", "factor", "run_id",
]  # fmt: skip


def calibration_frame(calibrations: dict[CalibrationKey, Calibration]) -> pd.DataFrame:
    """One row per (hardware, attribution) calibration; ``attribution`` is empty for an untagged one."""
    rows = [
        {
            "hardware": hardware_label({"hw.gpu_model": c.fingerprint[0], "hw.cpu_model": c.fingerprint[1]}),
            "gpu_model": c.fingerprint[0],
            "cpu_model": c.fingerprint[1],
            "attribution": c.attribution or "",
            "ref_measured_kwh": c.measured_kwh,
            "ref_published_kwh": c.published_kwh,
            "factor": c.factor,
            "run_id": c.run_id,
        }
        for c in calibrations.values()
    ]
    frame = pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)
    return frame.sort_values(["hardware", "attribution"], kind="stable").reset_index(drop=True)


def _tag_float(tags: dict[str, str], key: str) -> float:
    try:
        return float(tags[key])
    except (KeyError, ValueError):
        return np.nan


MODEL_VERSION_COLUMNS = [
    "name", "version", "aliases", "run_id", "hardware", "hw.gpu_model", "hw.cpu_model",
    "run_max_val_f1", "run_energy_total_kwh", "max_val_f1", "energy_total_kwh_from_history", "energy_total_norm_kwh",
]  # fmt: skip


def model_versions(client: Any, runs: pd.DataFrame) -> pd.DataFrame:
    """Registered versions of the analysed runs, with their hardware tags and energy.

    ``run_max_val_f1`` / ``run_energy_total_kwh`` are the version's own tags (what the registry shows;
    versions registered before these names have them as ``best_val_f1`` / ``energy_total_kwh``, read
    through ``sedwatt.names``); ``max_val_f1`` / ``energy_total_kwh_from_history`` are this analysis's
    numbers for the same run.
    """
    from mlflow.exceptions import MlflowException

    by_run = runs.set_index("run_id")
    versions: list[Any] = []
    try:
        for chunk in chunks(list(by_run.index), 100):
            quoted = ", ".join(f"'{run_id}'" for run_id in chunk)
            page_token = None
            while True:
                page = client.search_model_versions(f"run_id IN ({quoted})", page_token=page_token)
                versions.extend(page)
                page_token = page.token
                if not page_token:
                    break
    except MlflowException as exc:  # a registry-less store: nothing to list
        logger.warning("model registry not searchable: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return pd.DataFrame(columns=MODEL_VERSION_COLUMNS)
    rows = []
    for version in versions:
        tags = names.with_current_names(dict(version.tags or {}), "version tag")
        run = by_run.loc[version.run_id] if version.run_id in by_run.index else None

        rows.append(
            {
                "name": version.name,
                "version": int(version.version),
                "aliases": ", ".join(version.aliases or []),
                "run_id": version.run_id,
                "hardware": hardware_label(tags)
                if any(k.startswith("hw.") for k in tags)
                else (run["hardware"] if run is not None else ""),
                "hw.gpu_model": tags.get("hw.gpu_model", ""),
                "hw.cpu_model": tags.get("hw.cpu_model", ""),
                "run_max_val_f1": _tag_float(tags, names.VERSION_RUN_MAX_VAL_F1),
                "run_energy_total_kwh": _tag_float(tags, names.VERSION_RUN_ENERGY_TOTAL_KWH),
                "max_val_f1": run["max_val_f1"] if run is not None else np.nan,
                "energy_total_kwh_from_history": run["energy_total_kwh"] if run is not None else np.nan,
                "energy_total_norm_kwh": run.get("energy_total_norm_kwh", np.nan)
                if run is not None
                else np.nan,
            }
        )
    frame = pd.DataFrame(rows, columns=MODEL_VERSION_COLUMNS)
    return frame.sort_values(["name", "version"]).reset_index(drop=True)
