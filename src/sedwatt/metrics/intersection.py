"""Intersection-based F1 (DTC/GTC, Bilen et al. 2020): psds_eval's counting rules, vectorised.

The trainer scores 2,500 validation clips every epoch; psds_eval does it with several pandas merges
and group-bys per call. :class:`IntersectionScorer` parses the ground truth once and then counts with
numpy only, reproducing psds_eval 0.5.3's rules (``_detection_and_ground_truth_criteria``,
``_cross_trigger_criterion``, ``compute_macro_f_score``) exactly:

- a detection and a reference of the same class in the same clip *intersect* when
  ``max(onsets) < min(offsets)``;
- a detection passes the DTC when it intersects at least one reference of its class and the sum of
  its intersections with them, as fractions of its length, is ``>= dtc``;
- a reference is a true positive when the DTC-passing detections of its class cover ``>= gtc`` of it
  (summed fractions);
- a detection that fails the DTC and overlaps its clip (``[0, duration]`` from the durations table)
  is a false positive, whatever it overlaps (cross-triggers are false positives too, so CTTC plays
  no part in F1); a DTC-passing detection is never a false positive, even when its reference
  misses the GTC;
- fractions are summed with Kahan compensation in onset order, as pandas' group-by sum does, so a
  sum that lands exactly on a threshold is decided identically.

Inputs are normalised as in :mod:`sedwatt.metrics.events` (overlapping same-class events merged,
zero-length ones dropped). Detections in clips that are neither in the durations nor in the ground
truth can be neither true nor false positives and are ignored, as psds_eval ignores them.

One deliberate difference from ``compute_macro_f_score``: a class with references but no true
positive scores 0 (psds_eval returns NaN and leaves it out of its ``nanmean``, which inflates the
macro F1); a class with false positives but no references scores 0; a class with neither
references nor detections is left out of the macro average and of the per-class dict. With nothing
to score at all the macro F1 is 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sedwatt.errors import SedwattError
from sedwatt.metrics.events import (
    EVENT_COLUMNS,
    has_label,
    merge_sorted_runs,
    normalise_durations,
    normalise_events,
)


@dataclass(frozen=True)
class IntersectionCounts:
    """Per-class counts behind an intersection F1 (arrays in ``classes`` order)."""

    classes: tuple[str, ...]
    true_positives: np.ndarray
    false_positives: np.ndarray
    references: np.ndarray

    @property
    def false_negatives(self) -> np.ndarray:
        return self.references - self.true_positives

    def f1(self) -> tuple[float, dict[str, float]]:
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        scored = (self.references > 0) | (fp > 0)
        per_class = {
            name: float(2.0 * tp[i] / (2.0 * tp[i] + fn[i] + fp[i]))
            for i, name in enumerate(self.classes)
            if scored[i]
        }
        macro = float(np.mean(list(per_class.values()))) if per_class else 0.0
        return macro, per_class


def segmented_kahan_sum(values: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    """Per-segment sums with Kahan compensation, adding each segment's values in array order.

    ``segment`` must be non-decreasing (each segment contiguous). This is the summation pandas'
    group-by ``sum`` performs, so both decide ``sum >= threshold`` identically.
    """
    totals = np.zeros(n_segments)
    compensation = np.zeros(n_segments)
    if values.size == 0:
        return totals
    starts = np.ones(values.size, dtype=bool)
    starts[1:] = segment[1:] != segment[:-1]
    first_of_segment = np.maximum.accumulate(np.where(starts, np.arange(values.size), 0))
    rank = np.arange(values.size) - first_of_segment
    order = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[order], np.arange(rank.max() + 2))
    for r in range(rank.max() + 1):
        pick = order[bounds[r] : bounds[r + 1]]  # the r-th value of every long-enough segment
        seg = segment[pick]
        y = values[pick] - compensation[seg]
        t = totals[seg] + y
        compensation[seg] = (t - totals[seg]) - y
        totals[seg] = t
    return totals


class IntersectionScorer:
    """Ground truth and clip durations parsed once; :meth:`f1` scores one detection table.

    ``ground_truth`` has no rows for clips without events (rows with an empty label are ignored);
    those clips are listed in ``durations`` only, and still count for false positives.
    """

    def __init__(self, ground_truth: pd.DataFrame, durations: pd.DataFrame, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)
        self._class_index = pd.Index(self.classes)
        truth = normalise_events(ground_truth)
        metadata = normalise_durations(durations)
        unknown = sorted(set(truth["event_label"]) - set(self.classes))
        if unknown:
            raise SedwattError(f"ground truth: unknown label {unknown[0]!r} (expected one of {', '.join(self.classes)})")
        clip_names = pd.unique(pd.concat([metadata["filename"], truth["filename"]], ignore_index=True))
        self._clip_index = pd.Index(clip_names)
        clip_seconds = np.full(len(clip_names), np.nan)
        clip_seconds[self._clip_index.get_indexer(metadata["filename"])] = metadata["duration"].to_numpy()
        self._clip_seconds = clip_seconds
        n_classes = len(self.classes)
        gt_clip = self._clip_index.get_indexer(truth["filename"])
        gt_class = self._class_index.get_indexer(truth["event_label"])
        gt_key = gt_clip.astype(np.int64) * n_classes + gt_class
        order = np.lexsort((truth["onset"].to_numpy(), gt_key))
        self._gt_key = gt_key[order]
        self._gt_class = gt_class[order]
        self._gt_onset = truth["onset"].to_numpy()[order]
        self._gt_offset = truth["offset"].to_numpy()[order]
        self._gt_length = self._gt_offset - self._gt_onset
        self._references = np.bincount(gt_class, minlength=n_classes)

    def _detections(self, predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(clip index, class index, onset, offset) of the normalised detections, sorted by clip, class, onset."""
        missing = [c for c in EVENT_COLUMNS if c not in predictions.columns]
        if missing:
            raise SedwattError(f"predictions: missing column(s) {', '.join(missing)}")
        onsets = predictions["onset"].to_numpy(dtype=float)
        offsets = predictions["offset"].to_numpy(dtype=float)
        inverted = np.flatnonzero(onsets > offsets)
        if inverted.size:
            row = predictions.iloc[inverted[0]]
            raise SedwattError(
                f"predictions row {inverted[0]}: {row['filename']}: onset {row['onset']} is after offset {row['offset']}"
            )
        # Codes first, so the merge of overlapping same-class events runs on numbers, not strings.
        clip = self._clip_index.get_indexer(predictions["filename"].astype(str))
        cls = self._class_index.get_indexer(predictions["event_label"])
        missing_class = np.flatnonzero(cls < 0)
        unknown = missing_class[has_label(predictions["event_label"].iloc[missing_class])]
        if unknown.size:
            label = predictions["event_label"].iloc[unknown[0]]
            raise SedwattError(f"predictions: unknown label {label!r} (expected one of {', '.join(self.classes)})")
        # Unlabelled rows, zero-length events, and clips nobody knows (neither TP nor FP) are dropped.
        keep = (cls >= 0) & (clip >= 0) & (offsets > onsets)
        clip, cls, onsets, offsets = clip[keep], cls[keep], onsets[keep], offsets[keep]
        order = np.lexsort((offsets, onsets, cls, clip))
        clip, cls, onsets, offsets = clip[order], cls[order], onsets[order], offsets[order]
        new_group = np.ones(clip.size, dtype=bool)
        new_group[1:] = (clip[1:] != clip[:-1]) | (cls[1:] != cls[:-1])
        first, merged_offsets = merge_sorted_runs(new_group, onsets, offsets)
        return clip[first], cls[first], onsets[first], merged_offsets

    def counts(self, predictions: pd.DataFrame, dtc: float = 0.7, gtc: float = 0.7) -> IntersectionCounts:
        """True positives, false positives and references per class."""
        n_classes = len(self.classes)
        det_clip, det_class, det_on, det_off = self._detections(predictions)
        det_key = det_clip.astype(np.int64) * n_classes + det_class
        det_length = det_off - det_on
        n_det = det_key.size

        # Every (detection, reference) pair of the same clip and class, by detection then reference onset.
        lo = np.searchsorted(self._gt_key, det_key, side="left")
        hi = np.searchsorted(self._gt_key, det_key, side="right")
        per_det = hi - lo
        pair_det = np.repeat(np.arange(n_det), per_det)
        pair_gt = np.arange(pair_det.size) - np.repeat(np.cumsum(per_det) - per_det, per_det) + np.repeat(lo, per_det)
        inter = np.minimum(det_off[pair_det], self._gt_offset[pair_gt]) - np.maximum(
            det_on[pair_det], self._gt_onset[pair_gt]
        )
        hit = inter > 0
        pair_det, pair_gt, inter = pair_det[hit], pair_gt[hit], inter[hit]

        # DTC: each detection's summed precision over the references it intersects.
        precision = segmented_kahan_sum(inter / det_length[pair_det], pair_det, n_det)
        intersects = np.bincount(pair_det, minlength=n_det) > 0
        dtc_pass = intersects & (precision >= dtc)

        # GTC: each reference's summed coverage by DTC-passing detections, in detection onset order.
        keep = dtc_pass[pair_det]
        cover_gt, cover_det, cover_inter = pair_gt[keep], pair_det[keep], inter[keep]
        order = np.argsort(cover_gt, kind="stable")
        cover_gt, cover_det, cover_inter = cover_gt[order], cover_det[order], cover_inter[order]
        n_gt = self._gt_key.size
        coverage = segmented_kahan_sum(cover_inter / self._gt_length[cover_gt], cover_gt, n_gt)
        covered = np.bincount(cover_gt, minlength=n_gt) > 0
        tp_gt = covered & (coverage >= gtc)
        true_positives = np.bincount(self._gt_class[tp_gt], minlength=n_classes)

        # FP: detections failing the DTC that overlap their clip's [0, duration].
        seconds = self._clip_seconds[det_clip]
        in_clip = (seconds > 0) & (det_on < seconds) & (det_off > 0)
        false_positives = np.bincount(det_class[~dtc_pass & in_clip], minlength=n_classes)
        return IntersectionCounts(self.classes, true_positives, false_positives, self._references.copy())

    def f1(self, predictions: pd.DataFrame, dtc: float = 0.7, gtc: float = 0.7) -> tuple[float, dict[str, float]]:
        """(macro F1, per-class F1) of one detection table at the given DTC/GTC."""
        return self.counts(predictions, dtc=dtc, gtc=gtc).f1()


def intersection_f1(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    dtc: float = 0.7,
    gtc: float = 0.7,
    *,
    classes: Sequence[str] | None = None,
) -> tuple[float, dict[str, float]]:
    """Macro and per-class intersection F1 of one detection table (classes default to DESED's)."""
    if classes is None:
        from sedwatt.config import DESED_CLASSES

        classes = DESED_CLASSES
    return IntersectionScorer(ground_truth, durations, classes).f1(predictions, dtc=dtc, gtc=gtc)
