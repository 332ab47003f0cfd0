"""weak_f1: torchmetrics 0.7.3 macro F1 semantics, hand-computed."""

from __future__ import annotations

import numpy as np
import pytest

from sedwatt.metrics import weak_f1


def test_hand_computed_macro_drops_empty_classes():
    probs = np.array(
        [
            [0.9, 0.5, 0.1, 0.0],
            [0.2, 0.49, 0.7, 0.0],
            [0.6, 0.8, 0.3, 0.1],
        ]
    )
    targets = np.array(
        [
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 1, 0],
        ]
    )
    macro, per_class = weak_f1(probs, targets, classes=["w", "x", "y", "z"])
    # w: tp 1 (0.9), fp 1 (0.6) → 2/3; x: 0.5 >= 0.5 is positive: tp 1, fn 1 (0.49), fp 1 (0.8) → 1/2;
    # y: tp 1, fn 1 → 2/3; z: tp+fp+fn = 0 → left out of the macro average.
    assert per_class == {"w": pytest.approx(2 / 3), "x": pytest.approx(0.5), "y": pytest.approx(2 / 3)}
    assert macro == pytest.approx((2 / 3 + 0.5 + 2 / 3) / 3)


def test_threshold_and_default_keys():
    probs = np.array([[0.3], [0.8]])
    targets = np.array([[1], [1]])
    assert weak_f1(probs, targets, threshold=0.3) == (1.0, {"0": 1.0})
    assert weak_f1(probs, targets, threshold=0.5)[0] == pytest.approx(2 / 3)


def test_nothing_to_score_is_zero_and_shapes_are_checked():
    assert weak_f1(np.zeros((3, 2)), np.zeros((3, 2))) == (0.0, {})
    with pytest.raises(ValueError):
        weak_f1(np.zeros((3, 2)), np.zeros((3, 3)))
