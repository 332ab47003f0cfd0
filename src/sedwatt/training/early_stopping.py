"""Early-stopping policies as callbacks: patience, "progress slows down", and energy-aware.

The recipe's patience of 200 epochs on obj_metric never fires at 200 epochs; the paper instead
suggests stopping when progress between epochs slows down, which is what ``SlowdownStopping`` does on
the per-epoch ``val_f1``. ``EnergyAwareStopping`` asks how much F1 each kWh still buys. Each one
records why it stopped through ``state.request_stop`` (the tracking callback logs it as a tag).
All of them read the loop's history only, so they are stateless across a resume.
"""

from __future__ import annotations

from sedwatt.config import TrainConfig
from sedwatt.training.callbacks import Callback, RunState


class PatienceStopping(Callback):
    """Stop when obj_metric has not improved for ``patience`` epochs (recipe: 200, i.e. off)."""

    def __init__(self, patience: int, monitor: str = "obj_metric") -> None:
        self.patience = patience
        self.monitor = monitor

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        values = [h[self.monitor] for h in state.history if self.monitor in h]
        if not values:
            return
        best_at = max(range(len(values)), key=lambda i: (values[i], -i))
        waited = len(values) - 1 - best_at
        if waited >= self.patience:
            state.request_stop(
                f"patience: {self.monitor} has not improved for {waited} epochs (best {values[best_at]:.4f} at epoch {best_at + 1})"
            )


def _best_gain(values: list[float], window: int) -> tuple[float, float] | None:
    """(best before the window, best now), or None while there is less than a window of history."""
    if len(values) <= window:
        return None
    return max(values[:-window]), max(values)


class SlowdownStopping(Callback):
    """Stop when the best val_f1 improved by less than ``min_rel_gain`` (relative) over the last ``window`` epochs."""

    def __init__(self, min_rel_gain: float, window: int, monitor: str = "val_f1") -> None:
        self.min_rel_gain = min_rel_gain
        self.window = window
        self.monitor = monitor

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        gain = _best_gain([h[self.monitor] for h in state.history], self.window)
        if gain is None:
            return
        before, now = gain
        rel = (now - before) / before if before > 0 else float("inf") if now > 0 else 0.0
        if rel < self.min_rel_gain:
            state.request_stop(
                f"slowdown: best {self.monitor} rose {rel:.2%} over the last {self.window} epochs "
                f"({before:.4f} → {now:.4f}), below {self.min_rel_gain:.2%}"
            )


class EnergyAwareStopping(Callback):
    """Stop when the relative gain of the best val_f1 per kWh over the last ``window`` epochs falls below a threshold.

    Needs ``energy_kwh`` in the epoch metrics, i.e. the energy callback placed before this one.
    """

    def __init__(self, min_rel_gain_per_kwh: float, window: int, monitor: str = "val_f1") -> None:
        self.threshold = min_rel_gain_per_kwh
        self.window = window
        self.monitor = monitor

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        history = state.history
        gain = _best_gain([h[self.monitor] for h in history], self.window)
        if gain is None or "energy_kwh" not in metrics:
            return
        before, now = gain
        spent = sum(h.get("energy_kwh", 0.0) for h in history[-self.window :])
        if before <= 0 or spent <= 0:
            return
        rate = (now - before) / before / spent
        if rate < self.threshold:
            state.request_stop(
                f"energy: best {self.monitor} rose {(now - before) / before:.2%} for {spent * 1000:.2f} Wh over the last "
                f"{self.window} epochs ({rate:.3g} per kWh < {self.threshold:g})"
            )


def stopping_callbacks(train: TrainConfig) -> list[Callback]:
    """The policies a config asks for (defaults: the recipe's patience only)."""
    callbacks: list[Callback] = []
    if train.patience is not None:
        callbacks.append(PatienceStopping(train.patience))
    if train.slowdown_min_rel_gain is not None:
        callbacks.append(SlowdownStopping(train.slowdown_min_rel_gain, train.slowdown_window))
    if train.min_rel_gain_per_kwh is not None:
        callbacks.append(EnergyAwareStopping(train.min_rel_gain_per_kwh, train.slowdown_window))
    return callbacks
