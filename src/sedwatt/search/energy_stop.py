"""An energy-aware stop for trials, since Optuna cannot prune multi-objective studies.

After each epoch a trial asks: is there a Pareto-optimal finished trial whose F1 is at least what this
trial can still plausibly reach, and has this trial already spent more than β × that trial's energy?
If so it can only end up dominated, and it stops (β as Zeus's early-stop knob; off by default).
"Plausibly reach" is optimistic on purpose: the best F1 so far plus the largest one-epoch rise of the
running best over the last ``window`` epochs for every remaining epoch, capped at 1.
"""

from __future__ import annotations

from typing import Any

from sedwatt.training.callbacks import Callback, RunState


def plausible_f1(history: list[dict[str, float]], total_epochs: int, window: int) -> float:
    best: list[float] = []
    for h in history:
        best.append(max(best[-1], h["val_f1"]) if best else h["val_f1"])
    recent = best[-(window + 1) :]
    slope = max((b - a for a, b in zip(recent, recent[1:], strict=False)), default=0.0)
    remaining = max(total_epochs - len(history), 0)
    return min(1.0, best[-1] + max(slope, 0.0) * remaining)


class ParetoEnergyStop(Callback):
    def __init__(self, study: Any, trial: Any, beta: float, window: int = 5) -> None:
        self.study = study
        self.trial = trial
        self.beta = beta
        self.window = window

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        spent = metrics.get("energy_cum_kwh")
        if spent is None:
            return
        reach = plausible_f1(state.history, state.config.train.epochs, self.window)
        for best in self.study.best_trials:
            f1, energy = best.values
            if f1 >= reach and spent > self.beta * energy:
                reason = (
                    f"pareto-energy: spent {spent * 1000:.3f} Wh > {self.beta:g} x {energy * 1000:.3f} Wh of trial "
                    f"{best.number} (F1 {f1:.3f}) while this trial can plausibly reach F1 {reach:.3f}"
                )
                self.trial.set_user_attr("stop_reason", reason)
                state.request_stop(reason)
                return
