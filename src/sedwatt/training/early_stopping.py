"""Early-stopping policies: one pure rule per policy, and the callbacks that apply them during training.

The recipe's patience of 200 epochs on obj_metric never fires at 200 epochs; the paper instead
suggests stopping when progress between epochs slows down, which is what ``slowdown_rule`` checks on
the per-epoch ``val_f1``. ``energy_rule`` asks how much F1 each kWh still buys.

Each rule is a pure function of the history so far (one dict per finished epoch, the loop's
``state.history``) that returns why training should stop, or None. The callbacks call it at every
epoch end and record the reason through ``state.request_stop`` (the tracking callback logs it as the
``sedwatt.stop_reason`` tag); ``sedwatt analyze --policies`` calls the same function on a recorded
history cut at each epoch, so a replayed rule stops at exactly the epoch the live callback would
have. Reading the history only also keeps the callbacks stateless across a resume.
"""

from __future__ import annotations

from collections.abc import Sequence

from sedwatt import names
from sedwatt.config import TrainConfig
from sedwatt.training.callbacks import Callback, RunState

History = Sequence[dict[str, float]]


def patience_rule(history: History, patience: int, monitor: str = "obj_metric") -> str | None:
    """Stop when ``monitor`` has not improved for ``patience`` epochs (epochs without it are skipped)."""
    values = [h[monitor] for h in history if monitor in h]
    if not values:
        return None
    best_at = max(range(len(values)), key=lambda i: (values[i], -i))
    waited = len(values) - 1 - best_at
    if waited < patience:
        return None
    best = f"best {values[best_at]:.4f} at epoch {best_at + 1}"
    return f"patience: {monitor} has not improved for {waited} epochs ({best})"


def _best_gain(values: list[float], window: int) -> tuple[float, float] | None:
    """(best before the window, best now), or None while there is less than a window of history."""
    if len(values) <= window:
        return None
    return max(values[:-window]), max(values)


def slowdown_rule(history: History, min_rel_gain: float, window: int, monitor: str = "val_f1") -> str | None:
    """Stop when the best ``monitor`` rose less than ``min_rel_gain`` (relative) over ``window`` epochs."""
    gain = _best_gain([h[monitor] for h in history], window)
    if gain is None:
        return None
    before, now = gain
    rel = (now - before) / before if before > 0 else float("inf") if now > 0 else 0.0
    if not rel < min_rel_gain:  # (a NaN F1 never stops a run)
        return None
    return (
        f"slowdown: best {monitor} rose {rel:.2%} over the last {window} epochs "
        f"({before:.4f} → {now:.4f}), below {min_rel_gain:.2%}"
    )


def energy_rule(
    history: History, min_rel_gain_per_kwh: float, window: int, monitor: str = "val_f1"
) -> str | None:
    """Stop when the best ``monitor``'s relative gain per kWh over ``window`` epochs is under the threshold.

    Reads each epoch's ``energy_kwh``; silent while the latest epoch has none (energy not measured).
    """
    if not history or names.ENERGY_KWH not in history[-1]:
        return None
    gain = _best_gain([h[monitor] for h in history], window)
    if gain is None:
        return None
    before, now = gain
    spent = sum(h.get(names.ENERGY_KWH, 0.0) for h in history[-window:])
    if before <= 0 or spent <= 0:
        return None
    rate = (now - before) / before / spent
    if not rate < min_rel_gain_per_kwh:
        return None
    return (
        f"energy: best {monitor} rose {(now - before) / before:.2%} for {spent * 1000:.2f} Wh over the last "
        f"{window} epochs ({rate:.3g} per kWh < {min_rel_gain_per_kwh:g})"
    )


class PatienceStopping(Callback):
    """``patience_rule`` at every epoch end (recipe: 200 epochs on obj_metric, i.e. off)."""

    def __init__(self, patience: int, monitor: str = "obj_metric") -> None:
        self.patience = patience
        self.monitor = monitor

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        reason = patience_rule(state.history, self.patience, self.monitor)
        if reason:
            state.request_stop(reason)


class SlowdownStopping(Callback):
    """``slowdown_rule`` at every epoch end."""

    def __init__(self, min_rel_gain: float, window: int, monitor: str = "val_f1") -> None:
        self.min_rel_gain = min_rel_gain
        self.window = window
        self.monitor = monitor

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        reason = slowdown_rule(state.history, self.min_rel_gain, self.window, self.monitor)
        if reason:
            state.request_stop(reason)


class EnergyAwareStopping(Callback):
    """``energy_rule`` at every epoch end.

    Needs ``energy_kwh`` in the epoch metrics, i.e. the energy callback placed before this one
    (the epoch's ``metrics`` are the history's last entry).
    """

    def __init__(self, min_rel_gain_per_kwh: float, window: int, monitor: str = "val_f1") -> None:
        self.threshold = min_rel_gain_per_kwh
        self.window = window
        self.monitor = monitor

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        reason = energy_rule(state.history, self.threshold, self.window, self.monitor)
        if reason:
            state.request_stop(reason)


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
