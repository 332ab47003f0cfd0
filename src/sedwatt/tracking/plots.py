"""The per-run picture the paper is about: validation F1 against cumulative energy, one point per epoch.

Drawn with matplotlib's object API (no pyplot global state, no display needed), written to a
temporary file and renamed, so a crash never leaves a half-written PNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from sedwatt.atomic import atomic_path


def has_curve(history: Sequence[dict[str, float]], x_key: str = "energy_cum_kwh", y_key: str = "val_f1") -> bool:
    return bool(history) and all(
        isinstance(epoch.get(key), int | float) and math.isfinite(epoch[key]) for epoch in history for key in (x_key, y_key)
    )


def plot_f1_vs_energy(
    history: Sequence[dict[str, float]],
    path: Path,
    checkpoint_epoch: int | None = None,
    title: str | None = None,
) -> Path | None:
    """PNG of val_f1 (%) vs cumulative energy (Wh); None when the history lacks either curve.

    Marks the first epoch reaching the max val_f1 and, when it is another epoch, ``checkpoint_epoch``
    (the best obj_metric's: the registered student's weights).
    """
    if not has_curve(history):
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    energy_wh = [1000.0 * epoch["energy_cum_kwh"] for epoch in history]
    f1_pct = [100.0 * epoch["val_f1"] for epoch in history]
    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(energy_wh, f1_pct, marker="o", markersize=3, linewidth=1.2, label="validation F1 (teacher)")
    peak = max(range(len(f1_pct)), key=f1_pct.__getitem__)
    ax.scatter([energy_wh[peak]], [f1_pct[peak]], color="tab:red", zorder=3, label=f"max val_f1 (epoch {peak + 1})")
    if checkpoint_epoch is not None and 1 <= checkpoint_epoch <= len(history) and checkpoint_epoch - 1 != peak:
        i = checkpoint_epoch - 1
        label = f"best obj_metric checkpoint (epoch {checkpoint_epoch})"
        ax.scatter([energy_wh[i]], [f1_pct[i]], color="tab:green", marker="s", zorder=3, label=label)
    ax.set_xlabel("cumulative energy (Wh)")
    ax.set_ylabel("intersection F1 (%)")
    ax.set_title(title or "F1 vs energy, one point per epoch")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path
