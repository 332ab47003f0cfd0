"""Collar-based event F1 through sed_eval, as DCASE reports it.

``sed_eval.sound_event.EventBasedMetrics(t_collar=0.200, percentage_of_length=0.2,
empty_system_output_handling="zero_score")`` evaluated clip by clip; the macro figure is sed_eval's
class-wise average F-measure. As in DESED_task's ``event_based_evaluation_df`` the class list is
the labels present in either table, and sed_eval gives NaN to a class without reference events
(left out of its average and of our per-class dict). One difference: every clip in the durations
table is evaluated, so detections in clips without events count as false positives (DESED_task
only walks the clips named in the ground-truth file).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from tqdm import tqdm

from sedwatt.metrics.events import normalise_durations, normalise_events


def _records(table: pd.DataFrame) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for name, onset, offset, label in table.itertuples(index=False, name=None):
        out.setdefault(name, []).append({"filename": name, "onset": onset, "offset": offset, "event_label": label})
    return out


def collar_f1(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame | None = None,
    *,
    t_collar: float = 0.200,
    percentage_of_length: float = 0.2,
    classes: Sequence[str] | None = None,
    progress: bool = False,
) -> tuple[float, dict[str, float]]:
    """(class-wise average F-measure, per-class F-measure) of one detection table."""
    import sed_eval

    truth = normalise_events(ground_truth)
    detections = normalise_events(predictions)
    clips = list(dict.fromkeys(truth["filename"]))
    if durations is not None:
        clips = list(dict.fromkeys([*normalise_durations(durations)["filename"], *clips]))
    present = set(truth["event_label"]) | set(detections["event_label"])
    labels = sorted(present if classes is None else present & set(classes))
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=labels,
        t_collar=t_collar,
        percentage_of_length=percentage_of_length,
        empty_system_output_handling="zero_score",
    )
    references, estimates = _records(truth), _records(detections)
    for name in tqdm(clips, desc="collar F1", disable=not progress):
        metric.evaluate(reference_event_list=references.get(name, []), estimated_event_list=estimates.get(name, []))
    class_wise = metric.results_class_wise_metrics()
    per_class = {
        label: float(class_wise[label]["f_measure"]["f_measure"])
        for label in labels
        if not math.isnan(class_wise[label]["f_measure"]["f_measure"])
    }
    macro = metric.results_class_wise_average_metrics()["f_measure"]["f_measure"] if labels else 0.0
    return (0.0 if math.isnan(macro) else float(macro)), per_class
