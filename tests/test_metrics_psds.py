"""PSDS scenario 1/2: hand-computed PSD-ROC areas and agreement with psds_eval called directly."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from psds_eval import PSDSEval

from sedwatt.errors import SedwattError
from sedwatt.metrics import PSDS_THRESHOLDS, decode_thresholds, psds, psds_result

COLUMNS = ["filename", "onset", "offset", "event_label"]
CLASSES = ("a", "b", "c")


def events(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def durations(n: int, seconds: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({"filename": [f"c{i}.wav" for i in range(n)], "duration": seconds})


def test_thresholds_are_dcases():
    assert len(PSDS_THRESHOLDS) == 50
    assert PSDS_THRESHOLDS[0] == pytest.approx(0.01) and PSDS_THRESHOLDS[-1] == pytest.approx(0.99)
    assert np.allclose(np.diff(PSDS_THRESHOLDS), 0.02)


def test_half_detected_classes_score_half():
    # (psds_eval needs two classes with references: with one, its cross-trigger rates are all NaN.)
    gt = events([(f"c{i}.wav", 1.0, 3.0, k) for i in range(2) for k in "ab"])
    ops = {0.5: events([("c0.wav", 1.0, 3.0, "a"), ("c1.wav", 1.0, 3.0, "b")])}
    value, per_class = psds(ops, gt, durations(2), scenario=1)
    # TPR 0.5 for both classes at 0 FP/h, held to e_max = 100 → area 0.5 × 100 / 100.
    assert value == pytest.approx(0.5) and per_class == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}


def test_alpha_st_penalises_unstable_classes():
    gt = events([("c0.wav", 1.0, 3.0, "a"), ("c1.wav", 1.0, 3.0, "b")])
    ops = {0.5: events([("c0.wav", 1.0, 3.0, "a")])}
    value, per_class = psds(ops, gt, durations(2), scenario=1)
    # Mean TPR 0.5, standard deviation 0.5, α_st = 1 → effective TPR 0.
    assert value == pytest.approx(0.0)
    assert per_class == {"a": pytest.approx(1.0), "b": pytest.approx(0.0)}


def test_false_positive_rate_is_per_hour_up_to_100():
    # 360 clips × 10 s = 1 hour. Operating point 1: every reference found plus 50 false positives per
    # class (50 FP/h); operating point 2: half the references, no false positive.
    gt = events([(f"c{i}.wav", 1.0, 3.0, k) for i in range(2) for k in "ab"])
    fps = [(f"c{i}.wav", 1.0, 2.0, k) for i in range(10, 60) for k in "ab"]
    ops = {0.2: pd.concat([gt, events(fps)], ignore_index=True), 0.8: events([("c0.wav", 1.0, 3.0, "a"), ("c1.wav", 1.0, 3.0, "b")])}
    result = psds_result(ops, gt, durations(360), scenario=1)
    # TPR 0.5 on [0, 50) FP/h, 1.0 on [50, 100] → (0.5 × 50 + 1 × 50) / 100.
    assert result.value == pytest.approx(0.75)
    assert result.per_class == {"a": pytest.approx(0.75), "b": pytest.approx(0.75)}
    assert result.efpr[0] == 0.0 and 50.0 in result.efpr


def generated(seed: int, n_clips: int = 30):
    rng = np.random.default_rng(seed)
    names = [f"c{i}.wav" for i in range(n_clips)]
    target = np.zeros((n_clips, len(CLASSES), 100))
    rows = []
    for i, name in enumerate(names):
        for _ in range(rng.integers(0, 3)):
            start = int(rng.integers(0, 90))
            stop = int(min(start + rng.integers(3, 40), 100))
            k = int(rng.integers(len(CLASSES)))
            if target[i, k, start:stop].any():
                continue
            target[i, k, start:stop] = 1
            rows.append((name, start * 0.1, stop * 0.1, CLASSES[k]))
    scores = np.clip(0.6 * target + 0.5 * rng.random(target.shape), 0, 1)
    return scores, names, events(rows), durations(n_clips)


@pytest.mark.parametrize("scenario", [1, 2])
def test_matches_psds_eval_with_dcase_parameters(scenario):
    scores, names, gt, dur = generated(scenario)
    thresholds = PSDS_THRESHOLDS[::5]
    ops = decode_thresholds(scores, names, thresholds, frame_seconds=0.1, clip_seconds=10.0, classes=CLASSES)
    value, per_class = psds(ops, gt, dur, scenario=scenario)
    params = {1: dict(dtc=0.7, gtc=0.7, cttc=0.3, a_ct=0.0), 2: dict(dtc=0.1, gtc=0.1, cttc=0.3, a_ct=0.5)}[scenario]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pe = PSDSEval(params["dtc"], params["gtc"], params["cttc"], ground_truth=gt, metadata=dur)
        for t, table in ops.items():
            pe.add_operating_point(table, info={"threshold": t})
        expected = pe.psds(alpha_ct=params["a_ct"], alpha_st=1.0, max_efpr=100).value
    assert value == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= value <= 1.0 and set(per_class) == set(gt["event_label"])
    assert all(0.0 <= v <= 1.0 for v in per_class.values())


def test_needs_operating_points_and_references():
    gt = events([("c0.wav", 1.0, 3.0, "a")])
    with pytest.raises(SedwattError):
        psds({}, gt, durations(1))
    with pytest.raises(SedwattError):
        psds({0.5: gt}, events([]), durations(1))


def separated(seed: int, n_clips: int = 60):
    """Frame scores for classes a, b, c and d (d has no reference event), references with gaps between
    same-class events (sed_scores_eval rejects touching ones), one clip with a duration but no scores."""
    rng = np.random.default_rng(seed)
    classes = (*CLASSES, "d")
    names = [f"c{i}.wav" for i in range(n_clips)]
    target = np.zeros((n_clips, len(classes), 100))
    rows = []
    for i, name in enumerate(names):
        for _ in range(rng.integers(0, 4)):
            start = int(rng.integers(0, 90))
            stop = int(min(start + rng.integers(3, 40), 100))
            k = int(rng.integers(len(CLASSES)))
            if target[i, k, max(start - 1, 0) : stop + 1].any():
                continue
            target[i, k, start:stop] = 1
            rows.append((name, round(start * 0.1 + 0.013, 3), round(stop * 0.1 - 0.021, 3), classes[k]))
    rows.append((f"c{n_clips}.wav", 2.0, 4.0, "a"))  # in a clip that has no scores: always missed
    scores = 1 / (1 + np.exp(-(3 * target - 1.5 + 2.0 * rng.normal(size=target.shape))))
    return scores, names, classes, events(rows), durations(n_clips + 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scenario", [1, 2])
def test_sed_scores_eval_backend_matches_psds_eval(scenario, seed):
    pytest.importorskip("sed_scores_eval")
    from sedwatt.metrics import psds_from_scores

    scores, names, classes, gt, dur = separated(seed)
    timing = dict(median_filter=7, frame_seconds=0.1, clip_seconds=10.0, classes=classes)
    reference = psds_from_scores(scores, names, gt, dur, scenario, backend="psds_eval", **timing)
    fast = psds_from_scores(scores, names, gt, dur, scenario, backend="sed_scores_eval", **timing)
    assert 0.0 < reference.value < 1.0
    assert fast.value == pytest.approx(reference.value, abs=1e-9)
    assert set(fast.per_class) == set(reference.per_class) == {"a", "b", "c"}
    for name, area in reference.per_class.items():
        assert fast.per_class[name] == pytest.approx(area, abs=1e-9)


def test_sed_scores_eval_backend_rejects_touching_references():
    pytest.importorskip("sed_scores_eval")
    from sedwatt.metrics import psds_from_scores

    gt = events([("c0.wav", 1.0, 2.0, "a"), ("c0.wav", 2.0, 3.0, "a"), ("c1.wav", 1.0, 2.0, "b")])
    scores = np.zeros((2, len(CLASSES), 100))
    with pytest.raises(SedwattError, match="touching"):
        psds_from_scores(
            scores, ["c0.wav", "c1.wav"], gt, durations(2), frame_seconds=0.1, clip_seconds=10.0,
            classes=CLASSES, backend="sed_scores_eval",
        )
