"""psds_eval 0.5.3, the field's reference implementation, behind the same signatures as ours.

Used for PSDS (scenario 1 and 2) and as the yardstick our vectorised intersection F1 is tested and
benchmarked against. psds_eval is used unpatched (it runs on the pinned pandas 2.2 / numpy 2.2).

Two of its habits are corrected here, consistently with :mod:`sedwatt.metrics.intersection`:
- a class with reference events but no true positive gets NaN from ``compute_macro_f_score`` and is
  dropped from its ``nanmean``; we count it as 0 (as sed_scores_eval does);
- classes are ours (the ``classes`` argument), not only those found in the ground truth: a class with
  detections but no references scores 0, a class with neither is left out.
Both tables are normalised first (:func:`sedwatt.metrics.events.normalise_events`), because psds_eval
raises on overlapping same-class events.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sedwatt.metrics.events import normalise_durations, normalise_events


def psds_eval_object(
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    *,
    dtc: float,
    gtc: float,
    cttc: float = 0.3,
):
    """A ``PSDSEval`` on normalised ground truth (hours as the unit, the DCASE default)."""
    from psds_eval import PSDSEval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PSDSEval(
            dtc_threshold=dtc,
            gtc_threshold=gtc,
            cttc_threshold=cttc,
            ground_truth=normalise_events(ground_truth),
            metadata=normalise_durations(durations),
            duration_unit="hour",
        )


def psds_eval_f1(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    classes: Sequence[str],
    *,
    dtc: float,
    gtc: float,
    evaluator=None,
) -> tuple[float, dict[str, float]]:
    """Intersection macro F1 through psds_eval's ``compute_macro_f_score``, with our class rules."""
    truth = normalise_events(ground_truth)
    detections = normalise_events(predictions)
    pe = evaluator if evaluator is not None else psds_eval_object(ground_truth, durations, dtc=dtc, gtc=gtc)
    gt_classes = set(truth["event_label"])
    per_class: dict[str, float] = {}
    if gt_classes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, psds_per_class = pe.compute_macro_f_score(detections)
    else:
        psds_per_class = {}
    metadata = normalise_durations(durations)
    detected = _classes_with_false_positives(detections, metadata)
    for name in classes:
        if name in gt_classes:
            value = psds_per_class.get(name, np.nan)
            per_class[name] = 0.0 if np.isnan(value) else float(value)
        elif name in detected:
            per_class[name] = 0.0
    macro = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return macro, per_class


def _classes_with_false_positives(detections: pd.DataFrame, metadata: pd.DataFrame) -> set[str]:
    """Classes with a detection psds_eval would count (it must overlap its clip's [0, duration])."""
    if detections.empty:
        return set()
    joined = detections.merge(metadata, on="filename", how="inner")
    inside = (joined["onset"] < joined["duration"]) & (joined["offset"] > 0)
    return set(joined.loc[inside, "event_label"])
