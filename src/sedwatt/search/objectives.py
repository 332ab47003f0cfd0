"""The objective pair of a trial, computed from its per-epoch history with the shared definitions.

F1: ``best``, the max per-epoch val_f1 (default; named ``max_val_f1``), or the ``final`` one
(``final_val_f1``). Energy: ``total`` training energy (default; ``energy_total_kwh``), energy ``to_best``
(cumulative energy at the first epoch reaching the max F1; ``energy_at_max_kwh``), or ``to_95`` (at the
first epoch reaching 95 % of the max F1; ``energy_at_95pct_max_kwh``) — the paper's Table 2 columns, from
``sedwatt.convergence.summarize_curve`` so the search and the analysis agree to the last digit.
A value that cannot be computed (no energy measured, F1 never logged) is NaN, never a stand-in:
Optuna then records the trial as FAIL instead of ranking an invented number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

from sedwatt import names

F1Objective = Literal["best", "final"]
EnergyObjective = Literal["total", "to_best", "to_95"]
F1_OBJECTIVES: tuple[str, ...] = get_args(F1Objective)
ENERGY_OBJECTIVES: tuple[str, ...] = get_args(EnergyObjective)
# Optuna's names for the two values (dashboard, dataframes, pareto_front.csv): the end-of-run metric /
# runs.csv column each objective is (sedwatt.names), so a study and its runs use one vocabulary.
F1_NAMES = {"best": names.MAX_VAL_F1, "final": "final_val_f1"}
ENERGY_NAMES = {
    "total": names.ENERGY_TOTAL_KWH,
    "to_best": names.ENERGY_AT_MAX_KWH,
    "to_95": names.ENERGY_AT_95PCT_MAX_KWH,
}
OLD_METRIC_NAMES = ("val_f1", "energy_kwh")  # studies created before the names above (any objective)


def objective_names(f1: F1Objective = "best", energy: EnergyObjective = "total") -> tuple[str, str]:
    """The two objectives' names for these choices."""
    return F1_NAMES[f1], ENERGY_NAMES[energy]


def study_objective_names(study: Any) -> tuple[str, str]:
    """The names a study was created with (``OLD_METRIC_NAMES`` for one without, or from before them)."""
    stored = getattr(study, "metric_names", None)
    return (str(stored[0]), str(stored[1])) if stored and len(stored) == 2 else OLD_METRIC_NAMES


def objective_values(
    history: Sequence[dict[str, float]], f1: F1Objective = "best", energy: EnergyObjective = "total"
) -> tuple[float, float]:
    """(F1, energy in kWh) of one trial from its per-epoch metrics (``val_f1``, ``energy_cum_kwh``, ``cum_time_s``)."""
    from sedwatt.convergence import summarize_curve

    if f1 not in F1_OBJECTIVES:
        raise ValueError(f"F1 objective {f1!r}: expected one of {', '.join(F1_OBJECTIVES)}")
    if energy not in ENERGY_OBJECTIVES:
        raise ValueError(f"energy objective {energy!r}: expected one of {', '.join(ENERGY_OBJECTIVES)}")
    if not history:
        raise ValueError("a trial without any finished epoch has no objective values")
    summary = summarize_curve(
        [h.get("val_f1") for h in history],
        [h.get("energy_cum_kwh") for h in history],
        [h.get("cum_time_s") for h in history],
    )
    f1_value = summary.max_val_f1 if f1 == "best" else history[-1].get("val_f1")
    energy_value = {
        "total": summary.energy_total_kwh,
        "to_best": summary.energy_at_max_kwh,
        "to_95": summary.energy_at_95pct_max_kwh,
    }[energy]
    return _number(f1_value), _number(energy_value)


def _number(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else math.nan
