"""`sedwatt score`: outputs, input formats, operating-point folders and one-line input errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sedwatt.cli import main
from sedwatt.config import DESED_CLASSES
from sedwatt.metrics import IntersectionScorer, collar_f1, psds

SINGLE_KEYS = {"intersection_f1_macro", "intersection_f1_macro_05", "collar_f1_macro", "per_class"}


@pytest.fixture()
def case(tmp_path):
    """Ground truth (with an event-less clip listed by an empty row), durations, and detections."""
    rng = np.random.default_rng(0)
    names = [f"clip{i}.wav" for i in range(12)]
    truth_rows, det_rows = [], []
    for i, name in enumerate(names):
        if i % 4 == 0:
            truth_rows.append((name, "", "", ""))
            det_rows.append((name, 2.0, 3.0, DESED_CLASSES[i % 10]))  # a false positive in an empty clip
            continue
        for _ in range(2):
            onset = round(float(rng.uniform(0, 7)), 3)
            label = DESED_CLASSES[int(rng.integers(10))]
            truth_rows.append((name, onset, round(onset + float(rng.uniform(0.5, 3)), 3), label))
            shift = float(rng.uniform(-0.4, 0.4))
            det_rows.append((name, max(0.0, round(onset + shift, 3)), round(onset + 2.0, 3), label))
    truth = pd.DataFrame(truth_rows, columns=["filename", "onset", "offset", "event_label"])
    truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    pd.DataFrame({"filename": names, "duration": 10.0}).to_csv(tmp_path / "dur.tsv", sep="\t", index=False)
    detections = pd.DataFrame(det_rows, columns=["filename", "onset", "offset", "event_label"])
    detections.to_csv(tmp_path / "pred.tsv", sep="\t", index=False)
    return tmp_path, truth, detections


def score_json(capsys, *args) -> dict:
    assert main(["score", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_single_file_gives_the_three_f1_figures(case, capsys):
    folder, truth, detections = case
    out = score_json(capsys, "--predictions", str(folder / "pred.tsv"), "--ground-truth", str(folder / "gt.tsv"),
                     "--durations", str(folder / "dur.tsv"))
    assert set(out) == SINGLE_KEYS
    events = truth[truth["event_label"] != ""].astype({"onset": float, "offset": float})
    durations = pd.read_csv(folder / "dur.tsv", sep="\t")
    scorer = IntersectionScorer(events, durations, DESED_CLASSES)
    assert out["intersection_f1_macro"] == pytest.approx(scorer.f1(detections, 0.7, 0.7)[0], abs=1e-12)
    assert out["intersection_f1_macro_05"] == pytest.approx(scorer.f1(detections, 0.5, 0.5)[0], abs=1e-12)
    assert out["collar_f1_macro"] == pytest.approx(collar_f1(detections, events, durations)[0], abs=1e-12)
    assert set(out["per_class"]) == SINGLE_KEYS - {"per_class"}
    assert out["per_class"]["intersection_f1_macro"] == pytest.approx(scorer.f1(detections, 0.7, 0.7)[1])
    assert all(0.0 <= out[k] <= 1.0 for k in SINGLE_KEYS - {"per_class"})
    # The event-less clips' detections are false positives: without them the scores are higher.
    in_events = detections[detections["filename"].isin(events["filename"])]
    assert scorer.f1(in_events, 0.5, 0.5)[0] > out["intersection_f1_macro_05"]


def test_comma_separated_dcase_output_with_index_column(case, capsys):
    folder, _, detections = case
    # The DCASE baseline's column order, written with its pandas index.
    detections[["event_label", "onset", "offset", "filename"]].to_csv(folder / "pred.csv")
    common = ["--ground-truth", str(folder / "gt.tsv"), "--durations", str(folder / "dur.tsv")]
    from_csv = score_json(capsys, "--predictions", str(folder / "pred.csv"), *common)
    from_tsv = score_json(capsys, "--predictions", str(folder / "pred.tsv"), *common)
    assert from_csv == from_tsv


def test_operating_point_folder_gives_psds_and_f1_nearest_half(case, capsys):
    folder, truth, detections = case
    ops = folder / "ops"
    ops.mkdir()
    tables = {}
    for t, keep in ((0.1, 1.0), (0.49, 0.8), (0.51, 0.6), (0.9, 0.3)):
        table = detections.iloc[: max(1, int(len(detections) * keep))]
        table[["event_label", "onset", "offset", "filename"]].to_csv(ops / f"predictions_th_{t:.2f}.tsv", sep="\t")
        tables[t] = table
    common = ["--ground-truth", str(folder / "gt.tsv"), "--durations", str(folder / "dur.tsv")]
    out = score_json(capsys, "--predictions", str(ops), *common)
    assert set(out) == SINGLE_KEYS | {"psds1", "psds2"}
    events = truth[truth["event_label"] != ""].astype({"onset": float, "offset": float})
    durations = pd.read_csv(folder / "dur.tsv", sep="\t")
    assert out["psds1"] == pytest.approx(psds(tables, events, durations, scenario=1)[0], abs=1e-12)
    assert out["psds2"] == pytest.approx(psds(tables, events, durations, scenario=2)[0], abs=1e-12)
    # 0.49 and 0.51 are equally near 0.5: the tie goes to 0.51.
    (folder / "th051.tsv").write_text((ops / "predictions_th_0.51.tsv").read_text())
    single = score_json(capsys, "--predictions", str(folder / "th051.tsv"), *common)
    for key in SINGLE_KEYS - {"per_class"}:
        assert out[key] == single[key]


def test_readable_table(case, capsys):
    folder, _, _ = case
    assert main(["score", "--predictions", str(folder / "pred.tsv"), "--ground-truth", str(folder / "gt.tsv"),
                 "--durations", str(folder / "dur.tsv")]) == 0
    text = capsys.readouterr().out
    assert "macro" in text and "Speech" in text and "intersection_f1_macro_05" in text


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("clip1.wav\t1.0\t2.0\tZebra", "unknown label 'Zebra'"),
        ("other.wav\t1.0\t2.0\tDog", "other.wav: clip not listed in the durations file"),
        ("clip1.wav\t-1.0\t2.0\tDog", "onset -1.0 is negative"),
        ("clip1.wav\t3.0\t2.0\tDog", "onset 3.0 is after offset 2.0"),
        ("clip1.wav\tabc\t2.0\tDog", "is not a number"),
    ],
)
def test_bad_prediction_rows_are_one_line_errors(case, capsys, row, message):
    folder, _, _ = case
    bad = folder / "bad.tsv"
    bad.write_text("filename\tonset\toffset\tevent_label\nclip1.wav\t1.0\t2.0\tDog\n" + row + "\n")
    rc = main(["score", "--predictions", str(bad), "--ground-truth", str(folder / "gt.tsv"), "--durations", str(folder / "dur.tsv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and f"{bad}:3:" in err and message in err


def test_missing_column_and_missing_folder_files(case, capsys):
    folder, _, _ = case
    bad = folder / "bad.tsv"
    bad.write_text("filename\tonset\tevent_label\nclip1.wav\t1.0\tDog\n")
    common = ["--ground-truth", str(folder / "gt.tsv"), "--durations", str(folder / "dur.tsv")]
    assert main(["score", "--predictions", str(bad), *common]) == 2
    assert "missing column(s) offset" in capsys.readouterr().err
    empty = folder / "empty"
    empty.mkdir()
    assert main(["score", "--predictions", str(empty), *common]) == 2
    assert "predictions_th_" in capsys.readouterr().err


def test_ground_truth_clip_absent_from_durations_is_an_error(case, capsys):
    folder, _, _ = case
    gt = folder / "gt2.tsv"
    gt.write_text((folder / "gt.tsv").read_text() + "stray.wav\t1.0\t2.0\tDog\n")
    rc = main(["score", "--predictions", str(folder / "pred.tsv"), "--ground-truth", str(gt), "--durations", str(folder / "dur.tsv")])
    assert rc == 2 and "stray.wav: clip not listed in the durations file" in capsys.readouterr().err
