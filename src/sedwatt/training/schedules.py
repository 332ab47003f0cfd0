"""The recipe's step-wise schedules (docs/recipe.md §3), as pure functions of the step number k (1-based).

f(k) = exp(exponent · (1 − min(k, R)/R)²) ramps the learning rate and the consistency weight up over
R = rampup_epochs × steps_per_epoch steps; the teacher's EMA decay is α(k) = min(1 − 1/(k+1), α_max).
Quirk kept by default: nothing sets the lr before the first step, so step 1 runs at the full lr.
"""

from __future__ import annotations

import math


def rampup(step: int, rampup_steps: float, exponent: float = -5.0) -> float:
    if rampup_steps <= 0:
        return 1.0
    progress = min(step, rampup_steps) / rampup_steps
    return math.exp(exponent * (1.0 - progress) ** 2)


def learning_rate(step: int, max_lr: float, rampup_steps: float, exponent: float, first_step_full_lr: bool) -> float:
    if step == 1 and first_step_full_lr:
        return max_lr
    return max_lr * rampup(step, rampup_steps, exponent)


def consistency_weight(step: int, max_weight: float, rampup_steps: float, exponent: float) -> float:
    return max_weight * rampup(step, rampup_steps, exponent)


def ema_decay(step: int, max_decay: float) -> float:
    return min(1.0 - 1.0 / (step + 1), max_decay)
