"""collar_f1 against sed_eval driven clip by clip, and hand-computed collar decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sed_eval

from sedwatt.metrics import collar_f1

COLUMNS = ["filename", "onset", "offset", "event_label"]
CLASSES = ("a", "b", "c")


def events(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def durations(n: int) -> pd.DataFrame:
    return pd.DataFrame({"filename": [f"c{i}.wav" for i in range(n)], "duration": 10.0})


def test_collar_hand_computed():
    gt = events([("c0.wav", 1.0, 3.0, "a")])
    # Onset 0.15 s late (≤ 200 ms), offset 0.3 s late (≤ max(0.2, 20 % of 2 s) = 0.4 s): a hit.
    assert collar_f1(events([("c0.wav", 1.15, 3.3, "a")]), gt, durations(1)) == (pytest.approx(1.0), {"a": pytest.approx(1.0)})
    # Onset 0.25 s late: one false positive and one miss.
    assert collar_f1(events([("c0.wav", 1.25, 3.0, "a")]), gt, durations(1))[0] == 0.0
    # A detection in a clip without events counts as a false positive: P = 1/2, R = 1 → F = 2/3.
    det = events([("c0.wav", 1.0, 3.0, "a"), ("c1.wav", 1.0, 3.0, "a")])
    assert collar_f1(det, gt, durations(2))[0] == pytest.approx(2 / 3)


def test_class_without_references_is_left_out_like_sed_eval():
    gt = events([("c0.wav", 1.0, 3.0, "a")])
    det = events([("c0.wav", 1.0, 3.0, "a"), ("c0.wav", 5.0, 6.0, "b")])
    assert collar_f1(det, gt, durations(1)) == (pytest.approx(1.0), {"a": pytest.approx(1.0)})
    assert collar_f1(events([]), gt, durations(1)) == (0.0, {"a": 0.0})


@pytest.mark.parametrize("seed", range(5))
def test_matches_sed_eval_clip_by_clip(seed):
    rng = np.random.default_rng(seed)
    n_clips = 8

    def random_events(n_max):
        rows = []
        for i in range(n_clips):
            for _ in range(rng.integers(0, n_max)):
                onset = round(float(rng.uniform(0, 8)), 2)
                rows.append((f"c{i}.wav", onset, round(onset + float(rng.uniform(0.1, 2)), 2), CLASSES[rng.integers(3)]))
        return events(rows)

    gt = random_events(4)
    # Detections: jittered references (some within the collar, some not) plus random ones.
    jitter = gt.copy()
    jitter["onset"] = (jitter["onset"] + rng.uniform(-0.3, 0.3, len(gt))).clip(lower=0)
    jitter["offset"] = jitter["offset"] + rng.uniform(-0.5, 0.5, len(gt))
    jitter = jitter[jitter["offset"] > jitter["onset"] + 0.05]
    det = pd.concat([jitter, random_events(3)], ignore_index=True)
    from sedwatt.metrics import normalise_events

    det, gt = normalise_events(det), normalise_events(gt)
    labels = sorted(set(gt["event_label"]) | set(det["event_label"]))
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=labels, t_collar=0.2, percentage_of_length=0.2, empty_system_output_handling="zero_score"
    )
    for i in range(n_clips):
        name = f"c{i}.wav"
        metric.evaluate(
            reference_event_list=gt[gt.filename == name].to_dict("records"),
            estimated_event_list=det[det.filename == name].to_dict("records"),
        )
    expected = metric.results_class_wise_average_metrics()["f_measure"]["f_measure"]
    macro, per_class = collar_f1(det, gt, durations(n_clips))
    assert macro == pytest.approx(expected, abs=1e-12)
    class_wise = metric.results_class_wise_metrics()
    for label, value in per_class.items():
        assert value == pytest.approx(class_wise[label]["f_measure"]["f_measure"], abs=1e-12)
