"""Intersection-based F1 (DTC/GTC, Bilen et al. 2020) per class and macro-averaged.

:class:`IntersectionScorer` parses the ground truth once and scores detection tables repeatedly,
as the trainer does every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sedwatt.metrics.reference import psds_eval_f1


class IntersectionScorer:
    """Ground truth and clip durations prepared once; ``f1`` scores one detection table."""

    def __init__(self, ground_truth: pd.DataFrame, durations: pd.DataFrame, classes: Sequence[str]) -> None:
        self.ground_truth = ground_truth
        self.durations = durations
        self.classes = tuple(classes)

    def f1(self, predictions: pd.DataFrame, dtc: float = 0.7, gtc: float = 0.7) -> tuple[float, dict[str, float]]:
        return psds_eval_f1(predictions, self.ground_truth, self.durations, self.classes, dtc=dtc, gtc=gtc)


def intersection_f1(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    *,
    dtc: float = 0.7,
    gtc: float = 0.7,
    classes: Sequence[str] | None = None,
) -> tuple[float, dict[str, float]]:
    """Macro and per-class intersection F1 of one detection table."""
    if classes is None:
        from sedwatt.config import DESED_CLASSES

        classes = DESED_CLASSES
    return IntersectionScorer(ground_truth, durations, classes).f1(predictions, dtc=dtc, gtc=gtc)
