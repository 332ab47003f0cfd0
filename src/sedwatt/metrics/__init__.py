"""Sound-event-detection metrics: decoding, intersection F1, PSDS, collar F1, weak F1.

One decoder (:func:`decode`) turns frame scores into events for training, evaluation and scoring;
every event metric takes pandas DataFrames in the DCASE formats (events: filename onset offset
event_label; durations: filename duration) and returns (macro, per-class dict).
"""

from sedwatt.metrics.collar import collar_f1
from sedwatt.metrics.decode import decode, decode_thresholds, median_filter_binary
from sedwatt.metrics.events import normalise_events
from sedwatt.metrics.intersection import IntersectionCounts, IntersectionScorer, intersection_f1
from sedwatt.metrics.psds import (
    PSDS_THRESHOLDS,
    SCENARIOS,
    PSDSResult,
    Scenario,
    psds,
    psds_from_scores,
    psds_result,
)
from sedwatt.metrics.weak import weak_f1

__all__ = [
    "PSDS_THRESHOLDS",
    "SCENARIOS",
    "IntersectionCounts",
    "IntersectionScorer",
    "PSDSResult",
    "Scenario",
    "collar_f1",
    "decode",
    "decode_thresholds",
    "intersection_f1",
    "median_filter_binary",
    "normalise_events",
    "psds",
    "psds_from_scores",
    "psds_result",
    "weak_f1",
]
