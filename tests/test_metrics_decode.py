"""decode / decode_thresholds against the recipe's clip-by-clip decoding (scipy + dcase_util)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage

from sedwatt.metrics import decode, decode_thresholds, median_filter_binary

CLASSES = ("a", "b", "c")


def recipe_decode(scores: np.ndarray, names: list[str], threshold: float, frame_seconds: float, clip_seconds: float, size: int = 7):
    """docs/recipe.md §4: per clip, [T, C] > th, median_filter((k, 1)), find_contiguous_regions per class."""
    from dcase_util.data import DecisionEncoder

    encoder = DecisionEncoder()
    rows = []
    for clip_scores, name in zip(scores, names, strict=True):
        mask = scipy.ndimage.median_filter(np.greater(clip_scores.T, threshold), (size, 1))
        for k, label in enumerate(CLASSES):
            for start, stop in encoder.find_contiguous_regions(mask[:, k]):
                rows.append((name, min(start * frame_seconds, clip_seconds), min(stop * frame_seconds, clip_seconds), label))
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def canonical(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["filename", "event_label", "onset"]).reset_index(drop=True)[
        ["filename", "onset", "offset", "event_label"]
    ]


@pytest.mark.parametrize("n_frames", [1, 2, 3, 7, 20, 156])
def test_median_filter_matches_scipy(n_frames):
    rng = np.random.default_rng(n_frames)
    mask = rng.random((50, n_frames)) < rng.random((50, 1))
    for size in range(1, 2 * n_frames + 2):
        expected = np.stack([scipy.ndimage.median_filter(row, size=size, mode="reflect") for row in mask])
        if size // 2 > n_frames:
            continue  # scipy's reflection of windows longer than twice the signal is its own business
        assert np.array_equal(median_filter_binary(mask, size), expected), size


@pytest.mark.parametrize("seed", range(4))
def test_decode_matches_recipe(seed):
    rng = np.random.default_rng(seed)
    n_clips, n_frames = 12, 40
    # Smooth random scores give runs of every length, including runs the median filter removes.
    raw = rng.random((n_clips, len(CLASSES), n_frames))
    scores = scipy.ndimage.uniform_filter1d(raw, 5, axis=-1)
    names = [f"clip{i}.wav" for i in range(n_clips)]
    for threshold in (0.3, 0.5, 0.62):
        for size in (1, 3, 7):
            ours = decode(scores, names, threshold=threshold, median_filter=size, frame_seconds=0.25, clip_seconds=10.0, classes=CLASSES)
            expected = recipe_decode(scores, names, threshold, 0.25, 10.0, size)
            assert len(ours) == len(expected)
            pd.testing.assert_frame_equal(canonical(ours), canonical(expected), check_dtype=False)


def test_threshold_is_strict_and_events_are_clipped_to_the_clip():
    scores = np.zeros((1, 3, 6))
    scores[0, 0, :] = 0.5  # not > 0.5: nothing
    scores[0, 1, 2:] = 0.9  # runs to the last frame: offset 6 × 0.4 = 2.4 s, clipped to 2.2 s
    events = decode(scores, ["x.wav"], median_filter=1, frame_seconds=0.4, clip_seconds=2.2, classes=CLASSES)
    assert events.to_dict("records") == [{"filename": "x.wav", "onset": 0.8, "offset": 2.2, "event_label": "b"}]


def test_median_filter_removes_short_blips_and_fills_short_gaps():
    scores = np.zeros((1, 3, 30))
    scores[0, 0, 5:8] = 1.0  # 3 frames: removed by a 7-frame median
    scores[0, 2, 10:25] = 1.0
    scores[0, 2, 16:19] = 0.0  # a 3-frame gap: filled
    events = decode(scores, ["x.wav"], median_filter=7, frame_seconds=1.0, clip_seconds=30.0, classes=CLASSES)
    assert events[["onset", "offset", "event_label"]].values.tolist() == [[10.0, 25.0, "c"]]


@pytest.mark.parametrize("size", [1, 4, 7])
def test_decode_thresholds_equals_decode_at_each_threshold(size):
    rng = np.random.default_rng(size)
    scores = scipy.ndimage.uniform_filter1d(rng.random((5, 3, 30)), 3, axis=-1).astype(np.float32)
    names = [f"c{i}.wav" for i in range(5)]
    thresholds = np.arange(1 / 100, 1, 1 / 50)
    tables = decode_thresholds(
        scores, names, thresholds, median_filter=size, frame_seconds=0.064, clip_seconds=10.0, classes=CLASSES
    )
    assert list(tables) == [float(t) for t in thresholds]
    for t in thresholds:
        single = decode(scores, names, threshold=t, median_filter=size, frame_seconds=0.064, clip_seconds=10.0, classes=CLASSES)
        pd.testing.assert_frame_equal(tables[float(t)], single)


def test_empty_input_and_shape_errors():
    empty = decode(np.zeros((2, 3, 10)), ["a.wav", "b.wav"], frame_seconds=0.1, clip_seconds=1.0, classes=CLASSES)
    assert list(empty.columns) == ["filename", "onset", "offset", "event_label"] and empty.empty
    assert decode(np.zeros((0,)), [], frame_seconds=0.1, clip_seconds=1.0, classes=CLASSES).empty
    with pytest.raises(ValueError, match="filenames"):
        decode(np.zeros((2, 3, 10)), ["a.wav"], frame_seconds=0.1, clip_seconds=1.0, classes=CLASSES)
    with pytest.raises(ValueError, match="class names"):
        decode(np.zeros((1, 2, 10)), ["a.wav"], frame_seconds=0.1, clip_seconds=1.0, classes=CLASSES)
