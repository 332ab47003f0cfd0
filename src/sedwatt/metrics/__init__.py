"""Sound-event-detection metrics: decoding, intersection F1, PSDS, collar F1, weak F1.

One decoder (:func:`decode`) turns frame scores into events for training, evaluation and scoring;
every event metric takes pandas DataFrames in the DCASE formats (events: filename onset offset
event_label; durations: filename duration).
"""

from sedwatt.metrics.decode import decode, decode_thresholds
from sedwatt.metrics.events import normalise_events
from sedwatt.metrics.intersection import IntersectionScorer, intersection_f1
from sedwatt.metrics.weak import weak_f1

__all__ = [
    "IntersectionScorer",
    "decode",
    "decode_thresholds",
    "intersection_f1",
    "normalise_events",
    "weak_f1",
]
