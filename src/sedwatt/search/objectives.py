"""The objective pair of a trial, computed from its per-epoch history with the shared definitions.

F1: ``best`` per-epoch val_f1 (default) or the ``final`` one. Energy: ``total`` training energy
(default), energy ``to_best`` (cumulative energy at the first epoch reaching the best F1), or
``to_95`` (at the first epoch reaching 95 % of the best F1) — the paper's Table 2 columns.
"""

from __future__ import annotations

from typing import Literal

F1Objective = Literal["best", "final"]
EnergyObjective = Literal["total", "to_best", "to_95"]
METRIC_NAMES = ("val_f1", "energy_kwh")


def objective_values(
    history: list[dict[str, float]], f1: F1Objective = "best", energy: EnergyObjective = "total"
) -> tuple[float, float]:
    from sedwatt.convergence import summarize_curve

    if not history:
        raise ValueError("a trial without any finished epoch has no objective values")
    summary = summarize_curve(
        [h["val_f1"] for h in history],
        [h.get("energy_cum_kwh", 0.0) for h in history],
        [h["cum_time_s"] for h in history],
    )
    f1_value = summary.max_f1 if f1 == "best" else history[-1]["val_f1"]
    energy_value = {
        "total": summary.energy_total_kwh,
        "to_best": summary.energy_at_max_kwh,
        "to_95": summary.energy_at_95pct_max_kwh,
    }[energy]
    return float(f1_value), float(energy_value if energy_value is not None else summary.energy_total_kwh)
