"""Clip-level (weak) macro F1 exactly as the recipe's torchmetrics 0.7.3 ``F1Score(average="macro")``.

torchmetrics binarises probabilities with ``>= threshold`` and, for the macro average, drops every
class with tp + fp + fn = 0 (docs/recipe.md §4). When every class is dropped (no positives anywhere,
none predicted) there is nothing to average and the macro is reported as 0.0 rather than NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def weak_f1(
    probs: np.ndarray,
    targets: np.ndarray,
    threshold: float = 0.5,
    classes: Sequence[str] | None = None,
) -> tuple[float, dict[str, float]]:
    """(macro F1, per-class F1) of clip probabilities [N, C] against 0/1 targets [N, C].

    Per-class keys are ``classes`` when given, else the column index as a string; classes with
    tp + fp + fn = 0 are absent from the dict and from the macro average.
    """
    probs = np.asarray(probs, dtype=float)
    targets = np.asarray(targets)
    if probs.shape != targets.shape or probs.ndim != 2:
        raise ValueError(f"probs {probs.shape} and targets {targets.shape} must both be [clips, classes]")
    names = list(classes) if classes is not None else [str(i) for i in range(probs.shape[1])]
    if len(names) != probs.shape[1]:
        raise ValueError(f"{probs.shape[1]} classes of probabilities but {len(names)} class names")
    predicted = probs >= threshold
    actual = targets >= 0.5
    tp = np.sum(predicted & actual, axis=0)
    fp = np.sum(predicted & ~actual, axis=0)
    fn = np.sum(~predicted & actual, axis=0)
    counted = (tp + fp + fn) > 0
    per_class = {
        name: float(2 * tp[i] / (2 * tp[i] + fp[i] + fn[i])) for i, name in enumerate(names) if counted[i]
    }
    macro = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return macro, per_class
