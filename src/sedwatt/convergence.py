"""The per-run convergence definitions of the run schema, in one place.

The tracking callback (end-of-run metrics), the Optuna objectives and the analysis all turn a run's
per-epoch curve into the paper's numbers; they must agree to the last digit, so they all call
``summarize_curve`` here. Pure functions over per-epoch arrays (index i = epoch i + 1), no I/O.

Definitions (README "What a training run records"; F1 as a fraction):
- ``max_val_f1`` = max over epochs of ``val_f1`` (the teacher's 0.7/0.7 F1); ``max_val_f1_epoch`` = the first
  epoch reaching it (1-based) — not the obj_metric checkpoint's epoch (``best_obj_metric_epoch``, names.py);
- E@F1=40 % = ``energy_cum_kwh`` at the first epoch with ``val_f1`` ≥ 0.40;
- E@95 % = at the first epoch with ``val_f1`` ≥ 0.95 × max F1; E@max = at ``max_val_f1_epoch``;
- extra cost = E@max / E@95 % − 1; savings = 1 − E@max / E_total and 1 − E@95 % / E_total;
- Wh/epoch = 1000 × E_total / epochs; Wh/min = 1000 × E_total / minutes, with time = ``cum_time_s``
  at the last epoch and E_total = ``energy_cum_kwh`` at the last epoch.

A target that is never reached, or a ratio whose denominator is zero or unknown, is ``None``: a
value is never invented. NaN entries (an epoch whose metric was not logged) never reach a target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

F1_TARGET = 0.40
FRACTION_OF_MAX = 0.95

# 0.95 × max is compared with a tiny relative tolerance so that an epoch whose F1 is exactly 95 % of
# the max (in decimal terms) is not missed by binary rounding of the product.
_REL_TOL = 1e-12


@dataclass(frozen=True)
class CurveSummary:
    """One run's convergence numbers; field names are the analysis's runs.csv columns and (but ``epochs``)
    the run's end-of-run MLflow metrics."""

    epochs: int
    max_val_f1: float | None
    max_val_f1_epoch: int | None
    train_time_s: float | None
    energy_total_kwh: float | None
    wh_per_epoch: float | None
    wh_per_minute: float | None
    energy_at_f1_40_kwh: float | None
    energy_at_95pct_max_kwh: float | None
    energy_at_max_kwh: float | None
    extra_cost_95_to_max: float | None
    savings_stop_at_max: float | None
    savings_stop_at_95pct: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


SUMMARY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CurveSummary))


def _as_array(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """A float array; ``None`` becomes NaN (numpy does that for dtype=float)."""
    return np.asarray(values, dtype=float).reshape(-1)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def first_epoch_reaching(val_f1: np.ndarray, target: float) -> int | None:
    """0-based index of the first epoch with F1 ≥ target (NaN never reaches), or None."""
    with np.errstate(invalid="ignore"):
        hits = np.flatnonzero(val_f1 >= target - abs(target) * _REL_TOL)
    return int(hits[0]) if hits.size else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return _finite(numerator / denominator)


def summarize_curve(
    val_f1: Sequence[float | None] | np.ndarray,
    energy_cum_kwh: Sequence[float | None] | np.ndarray,
    cum_time_s: Sequence[float | None] | np.ndarray,
) -> CurveSummary:
    """The schema's per-run numbers from one run's per-epoch arrays (all the same length ≥ 1)."""
    f1 = _as_array(val_f1)
    energy = _as_array(energy_cum_kwh)
    time = _as_array(cum_time_s)
    epochs = int(f1.size)
    if epochs == 0:
        raise ValueError("summarize_curve: a run without any epoch has no curve")
    if energy.size != epochs or time.size != epochs:
        raise ValueError(
            f"summarize_curve: {epochs} F1 values but {energy.size} energy and {time.size} time values"
        )

    def energy_at(index: int | None) -> float | None:
        return None if index is None else _finite(energy[index])

    max_f1 = _finite(np.nanmax(f1)) if not np.all(np.isnan(f1)) else None
    max_index = first_epoch_reaching(f1, max_f1) if max_f1 is not None else None
    index_95 = first_epoch_reaching(f1, FRACTION_OF_MAX * max_f1) if max_f1 is not None else None
    index_40 = first_epoch_reaching(f1, F1_TARGET)

    total = _finite(energy[-1])
    time_s = _finite(time[-1])
    e_max, e_95 = energy_at(max_index), energy_at(index_95)
    wh_total = None if total is None else 1000.0 * total
    minutes = None if time_s is None else time_s / 60.0
    saved_max, saved_95 = _ratio(e_max, total), _ratio(e_95, total)
    extra = _ratio(e_max, e_95)
    return CurveSummary(
        epochs=epochs,
        max_val_f1=max_f1,
        max_val_f1_epoch=None if max_index is None else max_index + 1,
        train_time_s=time_s,
        energy_total_kwh=total,
        wh_per_epoch=None if wh_total is None else wh_total / epochs,
        wh_per_minute=_ratio(wh_total, minutes),
        energy_at_f1_40_kwh=energy_at(index_40),
        energy_at_95pct_max_kwh=e_95,
        energy_at_max_kwh=e_max,
        extra_cost_95_to_max=None if extra is None else extra - 1.0,
        savings_stop_at_max=None if saved_max is None else 1.0 - saved_max,
        savings_stop_at_95pct=None if saved_95 is None else 1.0 - saved_95,
    )
