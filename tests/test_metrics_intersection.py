"""IntersectionScorer against psds_eval 0.5.3 (generated cases) and against hand-computed cases."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from psds_eval import PSDSEval

from sedwatt.errors import SedwattError
from sedwatt.metrics import IntersectionScorer, intersection_f1, normalise_events
from sedwatt.metrics.intersection import segmented_kahan_sum

CLASSES = ("a", "b", "c", "d")
COLUMNS = ["filename", "onset", "offset", "event_label"]
CRITERIA = [(0.7, 0.7), (0.5, 0.5), (0.1, 0.1), (0.0, 0.0), (1.0, 1.0), (0.3, 0.9)]


def random_events(rng: np.random.Generator, n_clips: int, grid: float | None, max_events: int = 6) -> pd.DataFrame:
    """Random events, overlapping ones included; on a grid, sums land exactly on thresholds often."""
    rows = []
    for i in range(n_clips):
        for _ in range(rng.integers(0, max_events)):
            onset = rng.integers(0, 40) * grid if grid else rng.random() * 10
            length = rng.integers(0, 20) * grid if grid else rng.random() * 4
            rows.append((f"c{i}.wav", onset, min(onset + length, 10.0), CLASSES[rng.integers(0, len(CLASSES))]))
    return pd.DataFrame(rows, columns=COLUMNS)


def durations_for(n_clips: int) -> pd.DataFrame:
    return pd.DataFrame({"filename": [f"c{i}.wav" for i in range(n_clips)], "duration": 10.0})


def psds_eval_per_class(det, gt, durations, dtc, gtc) -> dict[str, float]:
    """psds_eval's compute_macro_f_score per class, on the normalised tables (it raises on overlaps)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pe = PSDSEval(dtc, gtc, 0.3, ground_truth=normalise_events(gt), metadata=durations)
        return pe.compute_macro_f_score(normalise_events(det))[1]


def assert_matches_psds_eval(det, gt, durations, dtc, gtc):
    macro, ours = IntersectionScorer(gt, durations, CLASSES).f1(det, dtc=dtc, gtc=gtc)
    reference = psds_eval_per_class(det, gt, durations, dtc, gtc) if not normalise_events(gt).empty else {}
    for name, value in reference.items():
        expected = 0.0 if np.isnan(value) else value  # the documented difference: a missed class is 0
        assert ours[name] == pytest.approx(expected, abs=1e-9), (name, dtc, gtc)
    # Classes psds_eval does not know (no references) are ours only: 0 when they have false positives.
    for name in set(ours) - set(reference):
        assert ours[name] == 0.0
    assert macro == pytest.approx(np.mean(list(ours.values())) if ours else 0.0, abs=1e-12)
    return ours


@pytest.mark.parametrize("seed", range(24))
def test_matches_psds_eval_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n_clips = int(rng.integers(1, 8))
    grid = [None, 0.25, 0.1, 0.064][seed % 4]
    gt = random_events(rng, n_clips, grid)
    det = random_events(rng, n_clips + 1, grid, max_events=9)  # one clip absent from the durations
    for dtc, gtc in CRITERIA:
        assert_matches_psds_eval(det, gt, durations_for(n_clips), dtc, gtc)


def test_clips_without_events_count_for_false_positives():
    gt = pd.DataFrame([("c0.wav", 1.0, 3.0, "a")], columns=COLUMNS)
    det = pd.DataFrame([("c0.wav", 1.0, 3.0, "a"), ("c1.wav", 2.0, 4.0, "a"), ("c2.wav", 0.0, 1.0, "b")], columns=COLUMNS)
    ours = assert_matches_psds_eval(det, gt, durations_for(3), 0.7, 0.7)
    # a: 1 TP, 1 FP (in the event-less clip c1) → 2/3; b: FP only, no references → 0.
    assert ours == {"a": pytest.approx(2 / 3), "b": 0.0}


def test_exact_thresholds_count_hand_computed():
    # Reference [0, 10]; a detection [0, 7] covers exactly 7/10 = 0.7 of it: GTC 0.7 passes (>=).
    gt = pd.DataFrame([("c0.wav", 0.0, 10.0, "a")], columns=COLUMNS)
    det = pd.DataFrame([("c0.wav", 0.0, 7.0, "a")], columns=COLUMNS)
    assert IntersectionScorer(gt, durations_for(1), CLASSES).f1(det, 0.7, 0.7) == (1.0, {"a": 1.0})
    assert IntersectionScorer(gt, durations_for(1), CLASSES).f1(det, 0.7, 0.71) == (0.0, {"a": 0.0})
    # A detection [2, 12] (clip 20 s long) lies 8/10 = 0.8 on the reference [0, 10]: DTC 0.8 passes.
    gt2 = pd.DataFrame([("c0.wav", 0.0, 10.0, "a")], columns=COLUMNS)
    det2 = pd.DataFrame([("c0.wav", 2.0, 12.0, "a")], columns=COLUMNS)
    durations = pd.DataFrame({"filename": ["c0.wav"], "duration": [20.0]})
    assert IntersectionScorer(gt2, durations, CLASSES).f1(det2, 0.8, 0.8)[0] == 1.0
    # DTC 0.81 fails: the detection is a false positive, the reference a miss → F1 0.
    counts = IntersectionScorer(gt2, durations, CLASSES).counts(det2, 0.81, 0.8)
    assert (counts.true_positives[0], counts.false_positives[0], counts.false_negatives[0]) == (0, 1, 1)
    for dtc, gtc in [(0.8, 0.8), (0.81, 0.8), (0.7, 0.7)]:
        assert_matches_psds_eval(det2, gt2, durations, dtc, gtc)


def test_fragmented_detections_sum_their_coverage_hand_computed():
    # Reference [0, 10]; three DTC-passing fragments cover 3 + 2 + 2 = 7 s → 0.7.
    gt = pd.DataFrame([("c0.wav", 0.0, 10.0, "a")], columns=COLUMNS)
    det = pd.DataFrame([("c0.wav", 0.0, 3.0, "a"), ("c0.wav", 4.0, 6.0, "a"), ("c0.wav", 8.0, 10.0, "a")], columns=COLUMNS)
    counts = IntersectionScorer(gt, durations_for(1), CLASSES).counts(det, 0.7, 0.7)
    assert (counts.true_positives[0], counts.false_positives[0]) == (1, 0)
    # One detection spanning two references: precision 0.4 + 0.4 = 0.8 passes DTC 0.7; each reference is
    # covered 4/5 = 0.8.
    gt2 = pd.DataFrame([("c0.wav", 0.0, 5.0, "b"), ("c0.wav", 6.0, 11.0, "b")], columns=COLUMNS)
    det2 = pd.DataFrame([("c0.wav", 1.0, 10.0, "b")], columns=COLUMNS)
    durations = pd.DataFrame({"filename": ["c0.wav"], "duration": [12.0]})
    counts = IntersectionScorer(gt2, durations, CLASSES).counts(det2, 0.7, 0.7)
    assert (counts.true_positives[1], counts.false_positives[1], counts.references[1]) == (2, 0, 2)
    assert_matches_psds_eval(det, gt, durations_for(1), 0.7, 0.7)
    assert_matches_psds_eval(det2, gt2, durations, 0.7, 0.7)


def test_dtc_passing_detection_is_never_a_false_positive():
    # Detection [0, 3] lies fully on the reference [0, 10] (DTC 1.0) but covers only 0.3 of it: no TP, no FP.
    gt = pd.DataFrame([("c0.wav", 0.0, 10.0, "a")], columns=COLUMNS)
    det = pd.DataFrame([("c0.wav", 0.0, 3.0, "a")], columns=COLUMNS)
    counts = IntersectionScorer(gt, durations_for(1), CLASSES).counts(det, 0.7, 0.7)
    assert (counts.true_positives[0], counts.false_positives[0], counts.false_negatives[0]) == (0, 0, 1)


def test_overlapping_references_are_merged_like_for_psds_eval():
    gt = pd.DataFrame(
        [("c0.wav", 0.0, 4.0, "a"), ("c0.wav", 3.0, 6.0, "a"), ("c0.wav", 3.0, 6.0, "a"), ("c0.wav", 6.0, 7.0, "a")],
        columns=COLUMNS,
    )
    merged = normalise_events(gt)
    # Overlaps and duplicates merge; an event that only touches (6.0 == 6.0) stays separate, as in psds_eval.
    assert merged[["onset", "offset"]].values.tolist() == [[0.0, 6.0], [6.0, 7.0]]
    det = pd.DataFrame([("c0.wav", 0.5, 5.5, "a"), ("c0.wav", 5.0, 6.5, "a")], columns=COLUMNS)
    assert_matches_psds_eval(det, gt, durations_for(1), 0.5, 0.5)
    with pytest.raises(Exception, match="intersecting"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        PSDSEval(0.5, 0.5, 0.3, ground_truth=gt, metadata=durations_for(1))


def test_missed_class_counts_zero_not_nan():
    gt = pd.DataFrame([("c0.wav", 0.0, 2.0, "a"), ("c0.wav", 0.0, 2.0, "b")], columns=COLUMNS)
    det = pd.DataFrame([("c0.wav", 0.0, 2.0, "a")], columns=COLUMNS)
    macro, per_class = IntersectionScorer(gt, durations_for(1), CLASSES).f1(det, 0.7, 0.7)
    assert per_class == {"a": 1.0, "b": 0.0} and macro == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psds_macro, _ = PSDSEval(0.7, 0.7, 0.3, ground_truth=gt, metadata=durations_for(1)).compute_macro_f_score(det)
    assert psds_macro == 1.0  # psds_eval's nanmean drops the missed class


def test_nothing_to_score_and_empty_inputs():
    empty = pd.DataFrame(columns=COLUMNS)
    scorer = IntersectionScorer(empty, durations_for(2), CLASSES)
    assert scorer.f1(empty) == (0.0, {})
    det = pd.DataFrame([("c1.wav", 1.0, 2.0, "c")], columns=COLUMNS)
    assert scorer.f1(det) == (0.0, {"c": 0.0})
    gt = pd.DataFrame([("c0.wav", 1.0, 2.0, "a")], columns=COLUMNS)
    assert IntersectionScorer(gt, durations_for(1), CLASSES).f1(empty) == (0.0, {"a": 0.0})


def test_detections_outside_known_clips_or_outside_the_clip_are_not_false_positives():
    gt = pd.DataFrame([("c0.wav", 1.0, 2.0, "a")], columns=COLUMNS)
    det = pd.DataFrame(
        [("c0.wav", 1.0, 2.0, "a"), ("zz.wav", 1.0, 2.0, "a"), ("c0.wav", 10.0, 11.0, "a"), ("c0.wav", 3.0, 3.0, "a")],
        columns=COLUMNS,
    )
    counts = IntersectionScorer(gt, durations_for(1), CLASSES).counts(det)
    assert (counts.true_positives[0], counts.false_positives[0]) == (1, 0)
    assert_matches_psds_eval(det, gt, durations_for(1), 0.7, 0.7)


def test_bad_predictions_raise_one_line_errors():
    gt = pd.DataFrame([("c0.wav", 1.0, 2.0, "a")], columns=COLUMNS)
    scorer = IntersectionScorer(gt, durations_for(1), CLASSES)
    with pytest.raises(SedwattError, match="unknown label 'zebra'"):
        scorer.f1(pd.DataFrame([("c0.wav", 1.0, 2.0, "zebra")], columns=COLUMNS))
    with pytest.raises(SedwattError, match="after offset"):
        scorer.f1(pd.DataFrame([("c0.wav", 3.0, 2.0, "a")], columns=COLUMNS))
    with pytest.raises(SedwattError, match="missing column"):
        scorer.f1(pd.DataFrame({"filename": ["c0.wav"], "onset": [1.0]}))
    with pytest.raises(SedwattError, match="unknown label"):
        IntersectionScorer(pd.DataFrame([("c0.wav", 1.0, 2.0, "zebra")], columns=COLUMNS), durations_for(1), CLASSES)


def test_intersection_f1_builds_a_scorer():
    rng = np.random.default_rng(3)
    gt, det = random_events(rng, 4, 0.1), random_events(rng, 4, 0.1)
    expected = IntersectionScorer(gt, durations_for(4), CLASSES).f1(det, 0.5, 0.5)
    assert intersection_f1(det, gt, durations_for(4), dtc=0.5, gtc=0.5, classes=CLASSES) == expected


def test_kahan_sum_matches_pandas_groupby_sum():
    rng = np.random.default_rng(0)
    segment = np.sort(rng.integers(0, 300, 2000))
    values = rng.random(2000) / 3
    expected = pd.Series(values).groupby(segment).sum()
    ours = segmented_kahan_sum(values, segment, 300)
    assert np.array_equal(ours[expected.index.to_numpy()], expected.to_numpy())  # bit for bit


def test_psds_eval_backed_reference_agrees():
    from sedwatt.metrics.reference import psds_eval_f1

    rng = np.random.default_rng(11)
    gt, det = random_events(rng, 6, 0.1), random_events(rng, 6, 0.1, max_events=9)
    for dtc, gtc in CRITERIA:
        ours = IntersectionScorer(gt, durations_for(6), CLASSES).f1(det, dtc, gtc)
        reference = psds_eval_f1(det, gt, durations_for(6), CLASSES, dtc=dtc, gtc=gtc)
        assert ours[0] == pytest.approx(reference[0], abs=1e-9)
        assert ours[1] == pytest.approx(reference[1], abs=1e-9)
