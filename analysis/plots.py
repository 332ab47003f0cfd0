"""The report's figures as PNG bytes (matplotlib's object API: no pyplot state, no display needed).

- F1 vs cumulative energy, one colour per group, with each run's 40 % / 95 %-of-max / max points;
- energy per epoch and per minute by group (mean ± std bars, the lower bar cut at 0; one dot per run);
- the Pareto front of F1 vs energy over runs (F1 up, energy down);
- training time vs energy;
- stopping rules replayed over the runs' histories: energy saved vs F1 lost, their Pareto front.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sedwatt.convergence import F1_TARGET, FRACTION_OF_MAX, first_epoch_reaching

from .tables import natural_key

MARKERS = {"F1 = 40 %": "o", "95 % of max F1": "^", "max F1": "*"}


def pareto_mask(f1: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """True for runs no other run beats: higher-or-equal F1 at lower-or-equal energy, one strictly."""
    f1 = np.asarray(f1, dtype=float)
    energy = np.asarray(energy, dtype=float)
    valid = np.isfinite(f1) & np.isfinite(energy)
    mask = np.zeros(f1.shape, dtype=bool)
    for i in np.flatnonzero(valid):
        better_or_equal = valid & (f1 >= f1[i]) & (energy <= energy[i])
        strictly = (f1 > f1[i]) | (energy < energy[i])
        mask[i] = not np.any(better_or_equal & strictly)
    return mask


def energy_unit(max_kwh: float) -> tuple[float, str]:
    """(scale, unit) for an axis of energies: Wh when everything is under 0.1 kWh."""
    return (1000.0, "Wh") if np.isfinite(max_kwh) and max_kwh < 0.1 else (1.0, "kWh")


def group_labels(runs: pd.DataFrame, group_keys: Sequence[str]) -> pd.Series:
    return runs[list(group_keys)].astype(str).agg(" / ".join, axis=1)


def _ordered_groups(labels: pd.Series) -> list[str]:
    return sorted(labels.unique(), key=natural_key)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    return [cmap(i if n <= 20 else i / max(1, n - 1)) for i in range(n)]


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _figure(width: float = 7.0, height: float = 4.5, ncols: int = 1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    axes = figure.subplots(1, ncols)
    return figure, axes


def plot_f1_vs_energy(
    runs: pd.DataFrame,
    run_curves: dict[str, dict[str, np.ndarray]],
    group_keys: Sequence[str],
    title: str = "",
) -> bytes:
    labels = group_labels(runs, group_keys)
    groups = _ordered_groups(labels)
    colours = dict(zip(groups, _colours(len(groups)), strict=True))
    scale, unit = energy_unit(float(np.nanmax(runs["energy_total_kwh"].to_numpy(dtype=float), initial=0.0)))
    figure, axes = _figure()
    alpha = 0.8 if len(runs) <= 30 else 0.35
    for run_id, label in zip(runs["run_id"], labels, strict=True):
        curve = run_curves[run_id]
        axes.plot(
            curve["energy_cum_kwh"] * scale, curve["val_f1"] * 100, color=colours[label], lw=0.9, alpha=alpha
        )
    points: dict[str, tuple[list[float], list[float], list]] = {name: ([], [], []) for name in MARKERS}
    for run_id, label, max_f1 in zip(runs["run_id"], labels, runs["max_val_f1"], strict=True):
        curve = run_curves[run_id]
        targets = {"F1 = 40 %": F1_TARGET, "95 % of max F1": FRACTION_OF_MAX * max_f1, "max F1": max_f1}
        for name, target in targets.items():
            index = first_epoch_reaching(curve["val_f1"], target) if np.isfinite(target) else None
            if index is None or not np.isfinite(curve["energy_cum_kwh"][index]):
                continue
            xs, ys, cs = points[name]
            xs.append(curve["energy_cum_kwh"][index] * scale)
            ys.append(curve["val_f1"][index] * 100)
            cs.append(colours[label])
    for name, marker in MARKERS.items():
        xs, ys, cs = points[name]
        size = 60 if marker == "*" else 24
        axes.scatter(xs, ys, marker=marker, s=size, c=cs or None, edgecolor="black", lw=0.4, zorder=3)
        axes.scatter([], [], marker=marker, s=size, color="white", edgecolor="black", label=name)
    for label in groups:
        axes.plot([], [], color=colours[label], label=f"{' / '.join(group_keys)} = {label}")
    axes.axhline(40, color="grey", lw=0.6, ls=":")
    axes.set_xlabel(f"cumulative energy ({unit})")
    axes.set_ylabel("validation F1 (%)")
    axes.set_title(title or "F1 vs cumulative energy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right", ncol=2 if len(groups) > 6 else 1)
    return _png(figure)


def clipped_error(values: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Mean and ``yerr`` ([[lower], [upper]]) of a non-negative quantity: mean ± std, the lower bar cut at 0.

    Energy, time and F1 are never negative, so a bar reaching below zero would show values no run can
    have; the lower error is the smaller of std and the mean itself. None for a single value (no spread).
    """
    mean = float(values.mean())
    if values.size < 2:
        return mean, None
    std = float(values.std(ddof=1))
    return mean, np.array([[min(std, max(mean, 0.0))], [std]])


def plot_energy_rates(runs: pd.DataFrame, group_keys: Sequence[str], title: str = "") -> bytes:
    """Wh per epoch and Wh per minute by group: mean ± std bars and the runs as dots."""
    return _png(energy_rates_figure(runs, group_keys, title))


def energy_rates_figure(runs: pd.DataFrame, group_keys: Sequence[str], title: str = ""):
    labels = group_labels(runs, group_keys)
    groups = _ordered_groups(labels)
    figure, axes = _figure(10.0, 4.0, ncols=2)
    rng = np.random.default_rng(0)
    for ax, column, name in zip(
        axes, ("wh_per_epoch", "wh_per_minute"), ("energy per epoch", "energy per minute"), strict=True
    ):
        for i, label in enumerate(groups):
            values = runs.loc[labels == label, column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            mean, yerr = clipped_error(values)
            ax.bar(
                i,
                mean,
                yerr=yerr,
                color="#9ecae1",
                edgecolor="#3182bd",
                capsize=4,
            )
            ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=10, color="black", zorder=3)
        ax.set_xticks(
            range(len(groups)),
            groups,
            rotation=30 if max(map(len, groups), default=0) > 8 else 0,
            ha="right" if max(map(len, groups), default=0) > 8 else "center",
            fontsize=8,
        )
        ax.set_xlabel(" / ".join(group_keys))
        ax.set_ylabel(f"{name} (Wh)")
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(title or "Energy per epoch and per minute")
    return figure


def plot_pareto(runs: pd.DataFrame, group_keys: Sequence[str], title: str = "") -> bytes:
    labels = group_labels(runs, group_keys)
    groups = _ordered_groups(labels)
    colours = dict(zip(groups, _colours(len(groups)), strict=True))
    energy = runs["energy_total_kwh"].to_numpy(dtype=float)
    f1 = runs["max_val_f1"].to_numpy(dtype=float)
    scale, unit = energy_unit(float(np.nanmax(energy, initial=0.0)))
    front = pareto_mask(f1, energy)
    figure, axes = _figure()
    for label in groups:
        sel = (labels == label).to_numpy()
        axes.scatter(
            energy[sel] * scale,
            f1[sel] * 100,
            s=24,
            color=colours[label],
            label=f"{' / '.join(group_keys)} = {label}",
        )
    order = np.argsort(energy[front])
    axes.step(
        energy[front][order] * scale,
        f1[front][order] * 100,
        where="post",
        color="black",
        lw=1.0,
        label="Pareto front",
    )
    axes.scatter(energy[front] * scale, f1[front] * 100, s=70, facecolor="none", edgecolor="black", lw=1.0)
    axes.set_xlabel(f"training energy ({unit})")
    axes.set_ylabel("max validation F1 (%)")
    axes.set_title(title or "F1 vs energy over runs: the Pareto front")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    return _png(figure)


def plot_time_vs_energy(runs: pd.DataFrame, group_keys: Sequence[str], title: str = "") -> bytes:
    labels = group_labels(runs, group_keys)
    groups = _ordered_groups(labels)
    colours = dict(zip(groups, _colours(len(groups)), strict=True))
    energy = runs["energy_total_kwh"].to_numpy(dtype=float)
    minutes = runs["train_time_s"].to_numpy(dtype=float) / 60.0
    scale, unit = energy_unit(float(np.nanmax(energy, initial=0.0)))
    figure, axes = _figure()
    for label in groups:
        sel = (labels == label).to_numpy()
        axes.scatter(
            minutes[sel],
            energy[sel] * scale,
            s=24,
            color=colours[label],
            label=f"{' / '.join(group_keys)} = {label}",
        )
    axes.set_xlabel("training time (min)")
    axes.set_ylabel(f"training energy ({unit})")
    axes.set_title(title or "Time vs energy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    return _png(figure)


POLICY_STYLES = {  # rule kind → (marker, colour, legend label)
    "patience": ("o", "#1f77b4", "patience"),
    "slowdown": ("s", "#2ca02c", "slowdown"),
    "energy": ("D", "#d62728", "energy per kWh"),
    "oracle": ("*", "#ff7f0e", "oracle 95 % of max (hindsight)"),
    "never": ("X", "#7f7f7f", "never stop"),
}


def _coincident(xs: np.ndarray, ys: np.ndarray, texts: pd.Series) -> dict[tuple[float, float], list[str]]:
    """Labels of points at the same place, together (rules that stop alike share one point)."""
    places: dict[tuple[float, float], list[str]] = {}
    for x, y, text in zip(xs, ys, texts, strict=True):
        if np.isfinite(x) and np.isfinite(y):
            places.setdefault((round(float(x), 9), round(float(y), 9)), []).append(str(text))
    return places


def plot_policies(means: pd.DataFrame, title: str = "") -> bytes:
    """Energy saved vs F1 lost, one point per stopping rule (means over runs); the Pareto front ringed,
    joined and labelled. ``means``: rule, kind, energy_saved_frac, val_f1_lost_points, on_pareto_front."""
    saved = means["energy_saved_frac"].to_numpy(dtype=float) * 100
    lost = means["val_f1_lost_points"].to_numpy(dtype=float)
    front = means["on_pareto_front"].to_numpy(dtype=bool) & np.isfinite(saved) & np.isfinite(lost)
    figure, axes = _figure()
    for kind, (marker, colour, label) in POLICY_STYLES.items():
        sel = (means["kind"] == kind).to_numpy()
        if sel.any():
            size = 110 if marker == "*" else 40
            axes.scatter(saved[sel], lost[sel], marker=marker, s=size, color=colour, label=label, zorder=3)
    order = np.argsort(saved[front])
    axes.step(
        saved[front][order], lost[front][order], where="pre", color="black", lw=1.0, label="Pareto front"
    )
    axes.scatter(saved[front], lost[front], s=140, facecolor="none", edgecolor="black", lw=1.0, zorder=4)
    labelled = front | (means["kind"] == "oracle").to_numpy()
    for (x, y), texts in _coincident(saved[labelled], lost[labelled], means["rule"][labelled]).items():
        shown = texts[:3] + ([f"+{len(texts) - 3} more"] if len(texts) > 3 else [])
        axes.annotate("\n".join(shown), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=7)
    axes.set_xlabel("energy saved (%)")
    axes.set_ylabel("F1 lost (points)")
    axes.set_title(title or "Stopping rules replayed: energy saved vs F1 lost")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    return _png(figure)
