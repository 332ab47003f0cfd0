"""Frame probabilities → DCASE event tables: the one decoder for training, evaluation and scoring.

The recipe's ``batched_decode_preds`` (docs/recipe.md §4) thresholds each clip's [T, C] scores with
``> threshold``, median-filters the binary mask along time with ``scipy.ndimage.median_filter``
(size (k, 1), mode 'reflect'), finds contiguous regions per class and turns frames into seconds
(frame × hop × pooling / sr, clipped to the clip length). It does this clip by clip in Python.
Here the same steps run on the whole [N, C, T] array at once: the median of a binary window is a
vote count (a windowed sum of the half-sample-symmetric padded mask), and region edges are the
non-zero differences of the padded mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sedwatt.metrics.events import empty_events


def median_filter_binary(mask: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.median_filter(mask, size)`` along the last axis, for a boolean mask.

    scipy's window for size k at position i spans i - k//2 … i + (k - 1 - k//2) with the
    input reflected about its edges (d c b a | a b c d | d c b a, numpy's 'symmetric'); the
    median is the element of rank k//2, which for 0/1 values is 1 when at least k - k//2 ones
    fall in the window.
    """
    if size <= 1 or mask.shape[-1] == 0:
        return mask.astype(bool, copy=True)
    left, right = size // 2, size - 1 - size // 2
    n_frames = mask.shape[-1]
    # Reflected source frame of every padded position (period 2T, mirrored in the second half).
    positions = np.arange(-left, n_frames + right) % (2 * n_frames)
    source = np.where(positions < n_frames, positions, 2 * n_frames - 1 - positions)
    padded = np.take(mask.astype(np.int32), source, axis=-1)
    csum = np.cumsum(padded, axis=-1, dtype=np.int32)
    csum = np.concatenate([np.zeros(csum.shape[:-1] + (1,), dtype=np.int32), csum], axis=-1)
    votes = csum[..., size : size + n_frames] - csum[..., :n_frames]
    return votes >= size - size // 2


def mask_regions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous True runs of a [R, T] mask: (row, first frame, one past the last frame), by row then frame."""
    n_rows, n_frames = mask.shape
    edges = np.zeros((n_rows, n_frames + 2), dtype=np.int8)
    edges[:, 1:-1] = mask
    change = np.diff(edges, axis=1)  # +1 at a start, -1 one past an end
    start_rows, start_frames = np.nonzero(change == 1)
    _, stop_frames = np.nonzero(change == -1)  # row-major order pairs each start with its stop
    return start_rows, start_frames, stop_frames


def _check(scores: np.ndarray, filenames: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """The scores as [N, C, T]; an empty array with no filenames is read as zero clips."""
    if scores.size == 0 and len(filenames) == 0 and scores.ndim != 3:
        return np.zeros((0, len(classes), 0), dtype=float)
    if scores.ndim != 3:
        raise ValueError(f"scores must be [clips, classes, frames], got shape {scores.shape}")
    if scores.shape[0] != len(filenames):
        raise ValueError(f"{scores.shape[0]} clips of scores but {len(filenames)} filenames")
    if scores.shape[1] != len(classes):
        raise ValueError(f"{scores.shape[1]} score classes but {len(classes)} class names")
    return scores


def binarise(scores: np.ndarray, threshold: float, median_filter: int) -> np.ndarray:
    """The recipe's ``scores > threshold`` followed by the binary median filter along time."""
    return median_filter_binary(np.asarray(scores) > threshold, median_filter)


def events_from_mask(
    mask: np.ndarray,
    filenames: Sequence[str],
    *,
    frame_seconds: float,
    clip_seconds: float,
    classes: Sequence[str],
) -> pd.DataFrame:
    """A binary [N, C, T] mask → filename, onset, offset, event_label (seconds)."""
    n_clips, n_classes, n_frames = mask.shape
    rows, first, stop = mask_regions(mask.reshape(n_clips * n_classes, n_frames))
    if rows.size == 0:
        return empty_events()
    clip_index, class_index = np.divmod(rows, n_classes)
    onsets = np.clip(first * frame_seconds, 0.0, clip_seconds)
    offsets = np.clip(stop * frame_seconds, 0.0, clip_seconds)
    names = np.asarray(filenames, dtype=object)
    labels = np.asarray(classes, dtype=object)
    return pd.DataFrame(
        {
            "filename": names[clip_index],
            "onset": onsets,
            "offset": offsets,
            "event_label": labels[class_index],
        }
    )


def decode(
    scores: np.ndarray,
    filenames: Sequence[str],
    *,
    threshold: float = 0.5,
    median_filter: int = 7,
    frame_seconds: float,
    clip_seconds: float,
    classes: Sequence[str],
) -> pd.DataFrame:
    """Frame scores [N clips, C classes, T frames] → DCASE events (filename, onset, offset, event_label)."""
    scores = _check(np.asarray(scores), filenames, classes)
    mask = binarise(scores, threshold, median_filter)
    return events_from_mask(
        mask, filenames, frame_seconds=frame_seconds, clip_seconds=clip_seconds, classes=classes
    )


def decode_thresholds(
    scores: np.ndarray,
    filenames: Sequence[str],
    thresholds: Sequence[float],
    *,
    median_filter: int = 7,
    frame_seconds: float,
    clip_seconds: float,
    classes: Sequence[str],
) -> dict[float, pd.DataFrame]:
    """:func:`decode` at every threshold (the PSDS operating points), keyed by threshold.

    A median filter is a rank filter, and rank filters commute with any non-decreasing pointwise
    map, thresholding included: ``median(scores > t) == median(scores) > t``. So the scores are
    median-filtered once and then thresholded 50 times, which gives the same events as decoding
    at each threshold.
    """
    import scipy.ndimage

    scores = _check(np.asarray(scores), filenames, classes)
    if median_filter > 1 and scores.size:
        scores = scipy.ndimage.median_filter(scores, size=(1, 1, median_filter), mode="reflect")
    return {
        float(t): events_from_mask(
            scores > t,
            filenames,
            frame_seconds=frame_seconds,
            clip_seconds=clip_seconds,
            classes=classes,
        )
        for t in thresholds
    }
