"""An energy-aware stop for trials, since Optuna cannot prune multi-objective studies.

After each epoch a trial asks: is there a Pareto-optimal finished trial whose F1 is at least what
this trial can still plausibly reach, and has this trial already spent more than β × that trial's
energy? If so, with β ≥ 1, it can only end up dominated, and it stops (β as Zeus's early-stop knob;
off by default). Stopping never changes the values of a trial that would not have improved: the
objectives are computed from the epochs it did run.

"Plausibly reach" is optimistic on purpose: the best F1 so far plus, for every remaining epoch, the
largest one-epoch rise of the running best over the last ``window`` epochs, capped at 1. The curve
starts from F1 = 0 before epoch 1 (an untrained model detects nothing), so after one epoch the rise
is that epoch's whole F1 and a trial is judged on evidence, never on a flat single point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sedwatt.training.callbacks import Callback, RunState

STOP_REASON_ATTR = "stop_reason"


def plausible_f1(history: Sequence[dict[str, float]], total_epochs: int, window: int) -> float:
    """The highest F1 this run can plausibly end with, from its per-epoch ``val_f1`` so far."""
    if window < 1:
        raise ValueError(f"window must be at least 1 epoch, got {window}")
    running_best = [0.0]
    for epoch in history:
        running_best.append(max(running_best[-1], float(epoch["val_f1"])))
    recent = running_best[-(window + 1) :]
    rise = max(b - a for a, b in zip(recent, recent[1:], strict=False)) if len(recent) > 1 else 0.0
    remaining = max(total_epochs - len(history), 0)
    return min(1.0, running_best[-1] + rise * remaining)


def dominating_trial(front: Sequence[Any], spent_kwh: float, reach_f1: float, beta: float) -> Any | None:
    """The first Pareto trial with F1 ≥ ``reach_f1`` whose energy × β this run has already exceeded."""
    for trial in front:
        if trial.values is None:
            continue
        f1, energy = trial.values
        if f1 >= reach_f1 and spent_kwh > beta * energy:
            return trial
    return None


class ParetoEnergyStop(Callback):
    """Requests a stop (and records why on the Optuna trial) once the trial cannot leave the dominated region."""

    def __init__(self, study: Any, trial: Any, beta: float, window: int = 5) -> None:
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        self.study = study
        self.trial = trial
        self.beta = beta
        self.window = window

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        spent = metrics.get("energy_cum_kwh")
        if spent is None or not state.history or len(state.history) >= state.config.train.epochs:
            return  # nothing measured, or the last epoch: nothing left to save
        reach = plausible_f1(state.history, state.config.train.epochs, self.window)
        best = dominating_trial(self.study.best_trials, spent, reach, self.beta)
        if best is None:
            return
        f1, energy = best.values
        reason = (
            f"pareto-energy: spent {spent * 1000:.4g} Wh > {self.beta:g} x {energy * 1000:.4g} Wh of trial "
            f"{best.number} (F1 {f1:.3f}), and this trial can plausibly reach only F1 {reach:.3f}"
        )
        self.trial.set_user_attr(STOP_REASON_ATTR, reason)
        state.request_stop(reason)
