"""The report's findings, computed from the runs — the paper's claims re-derived on the user's own data.

Each finding is a sentence plus the numbers behind it (findings.json), so nothing in the report is
written by hand. "Varies by X %" is the relative spread of the group means: (largest − smallest) /
smallest. Findings are computed within one cohort of comparable runs (cohorts.py) and never across
cohorts; a cohort with a single group has nothing to vary, so it gets no "varies by" finding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .plots import pareto_mask
from .tables import natural_key


@dataclass(frozen=True)
class Finding:
    key: str
    text: str
    values: dict[str, float | int | str | None] = field(default_factory=dict)
    cohort: str = ""  # the cohort's label when the runs form several cohorts; "" for all runs


def spread(means: Sequence[float]) -> float | None:
    """(max − min) / min of finite means; None with fewer than two groups or a zero minimum."""
    values = [v for v in means if v is not None and math.isfinite(v)]
    if len(values) < 2 or min(values) <= 0:
        return None
    return (max(values) - min(values)) / min(values)


def group_means(runs: pd.DataFrame, keys: Sequence[str], column: str) -> pd.Series:
    labels = runs[list(keys)].astype(str).agg(" / ".join, axis=1)
    means = pd.to_numeric(runs[column], errors="coerce").groupby(labels).mean().dropna()
    return means.loc[sorted(means.index, key=natural_key)]


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.0f} %"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _finite(series: pd.Series) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    return values[np.isfinite(values)]


def variation_findings(runs: pd.DataFrame, group_keys: Sequence[str]) -> list[Finding]:
    label = " / ".join(group_keys)
    groups = group_means(runs, group_keys, "max_val_f1").index
    if len(groups) < 2:
        return [
            Finding(
                "single_group",
                f"One {label} group ({', '.join(map(str, groups)) or 'none'}) in these runs: "
                f"nothing to compare across {label}.",
                {"groups": len(groups)},
            )
        ]
    out: list[Finding] = []
    per_minute = group_means(runs, group_keys, "wh_per_minute")
    time = group_means(runs, group_keys, "train_time_s")
    total = group_means(runs, group_keys, "energy_total_kwh")
    hardware = group_means(runs, ["hardware"], "wh_per_minute")
    by_group, by_hw = spread(per_minute.tolist()), spread(hardware.tolist())
    if by_group is None:
        text = f"Only one {label} group with energy: variation across {label} needs runs from several."
    else:
        text = (
            f"Energy per minute varies by {_pct(by_group)} across {label} "
            f"({per_minute.min():.3g}–{per_minute.max():.3g} Wh/min), while training time varies by "
            f"{_pct(spread(time.tolist()))} and total energy by {_pct(spread(total.tolist()))}"
        )
        if group_keys != ["hardware"]:
            text += (
                f"; across hardware energy per minute varies by {_pct(by_hw)}."
                if by_hw is not None
                else f"; all runs ran on one hardware ({hardware.index[0] if len(hardware) else 'unknown'}), "
                "so variation across machines cannot be measured here."
            )
        else:
            text += "."
    out.append(
        Finding(
            "energy_per_minute_variation",
            text,
            {
                "across_groups": by_group,
                "across_hardware": by_hw,
                "time_across_groups": spread(time.tolist()),
                "energy_across_groups": spread(total.tolist()),
            },
        )
    )
    return out


def convergence_findings(runs: pd.DataFrame, group_keys: Sequence[str]) -> list[Finding]:
    """What the last 5 % of F1 cost, and what early stopping would have saved."""
    out: list[Finding] = []
    extra = _finite(runs["extra_cost_95_to_max"])
    if len(extra):
        per_group = group_means(runs, group_keys, "extra_cost_95_to_max")
        out.append(
            Finding(
                "last_5_percent_cost",
                f"The last 5 % (relative) of F1 cost {_pct(extra.mean())} more energy on average "
                f"(E@max / E@95 % − 1 over {_runs(len(extra))}"
                + (
                    f"; group means {_pct(per_group.min())}–{_pct(per_group.max())})."
                    if len(per_group) > 1
                    else ")."
                ),
                {
                    "mean": float(extra.mean()),
                    "group_min": float(per_group.min()),
                    "group_max": float(per_group.max()),
                },
            )
        )
    at_max, at95 = _finite(runs["savings_stop_at_max"]), _finite(runs["savings_stop_at_95pct"])
    if len(at_max):
        out.append(
            Finding(
                "early_stopping_savings",
                f"Stopping at the first epoch reaching the max F1 would have saved {_pct(at_max.mean())} of the "
                f"energy on average (up to {_pct(at_max.max())}); stopping at 95 % of max F1, {_pct(at95.mean())} "
                f"(up to {_pct(at95.max())}).",
                {
                    "stop_at_max_mean": float(at_max.mean()),
                    "stop_at_max_max": float(at_max.max()),
                    "stop_at_95pct_mean": float(at95.mean()) if len(at95) else None,
                    "stop_at_95pct_max": float(at95.max()) if len(at95) else None,
                },
            )
        )
    return out


def outcome_findings(runs: pd.DataFrame, group_keys: Sequence[str]) -> list[Finding]:
    """Who reached F1 = 40 %, the best and cheapest group, the Pareto front (only among several runs)."""
    out: list[Finding] = []
    n = len(runs)
    never = int(runs["energy_at_f1_40_kwh"].isna().sum())
    out.append(
        Finding(
            "never_reached_40",
            f"{never} of {n} runs never reached F1 = 40 % (their E@F1=40 % is left out of the means, not invented)."
            if never
            else (f"All {n} runs reached F1 = 40 %." if n > 1 else "The run reached F1 = 40 %."),
            {"never": never, "runs": n},
        )
    )
    f1_means = group_means(runs, group_keys, "max_val_f1")
    energy_means = group_means(runs, group_keys, "energy_total_kwh")
    if len(f1_means) > 1 and len(energy_means) > 1:
        label = " / ".join(group_keys)
        out.append(
            Finding(
                "best_and_cheapest",
                f"Highest mean max F1: {label} = {f1_means.idxmax()} ({100 * f1_means.max():.1f} %); "
                f"lowest mean energy: {label} = {energy_means.idxmin()} ({energy_means.min():.3g} kWh).",
                {"best_f1_group": str(f1_means.idxmax()), "lowest_energy_group": str(energy_means.idxmin())},
            )
        )
    if n < 2:  # one run is trivially its own Pareto front
        return out
    front = pareto_mask(runs["max_val_f1"].to_numpy(dtype=float), runs["energy_total_kwh"].to_numpy(dtype=float))
    out.append(
        Finding(
            "pareto_front",
            f"{int(front.sum())} of {n} runs are on the Pareto front of F1 vs energy.",
            {"pareto_runs": int(front.sum())},
        )
    )
    return out


def normalisation_finding(runs: pd.DataFrame, n_calibrations: int) -> Finding:
    covered = int(runs["energy_norm_factor"].notna().sum()) if "energy_norm_factor" in runs else 0
    if n_calibrations == 0:
        text = (
            "No calibration runs (experiment sedwatt-calibration): energies are not normalised. "
            "Run `sedwatt calibrate` on each machine to compare across hardware."
        )
    else:
        text = (
            f"{n_calibrations} calibration(s) found (one per hardware and energy attribution); normalised energy "
            f"(E × E_ref_published / E_ref_measured_here) is available for {covered} of {len(runs)} runs."
        )
    return Finding("normalisation", text, {"calibrations": n_calibrations, "runs_normalised": covered})


def cohort_findings(runs: pd.DataFrame, group_keys: Sequence[str], cohort: str = "") -> list[Finding]:
    """The findings of one cohort's runs (``cohort``: its label, kept on each finding)."""
    keys = list(group_keys)
    found = [
        *variation_findings(runs, keys),
        *convergence_findings(runs, keys),
        *outcome_findings(runs, keys),
    ]
    return [replace(f, cohort=cohort) for f in found]
