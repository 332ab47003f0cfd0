"""Time one per-epoch validation pass: ours (vectorised) against the recipe's way, on the same scores.

Generates frame scores for 2,500 clips (the synthetic-validation size; 10 classes × 156 frames of
0.064 s) around random reference events, then times
- ours: ``decode`` (binarise, median filter 7, regions, for all clips at once) + a prepared
  ``IntersectionScorer.f1`` at DTC/GTC 0.7 and 0.5;
- the recipe's: per clip ``scipy.ndimage.median_filter((7, 1))`` and dcase_util's
  ``find_contiguous_regions`` per class, a DataFrame, then ``PSDSEval(...)`` + ``compute_macro_f_score``
  at 0.7 and 0.5 (DESED_task builds a PSDSEval per call), NaN classes counted as 0;
and prints both times, the ratio, and whether the F1 values agree (to 1e-9). With ``--psds``, also
times PSDS1+PSDS2 from the same frame scores (``psds_from_scores``) through psds_eval and through
sed_scores_eval, and prints both values.

    python benchmarks/metrics.py [--clips 2500] [--repeats 3] [--psds]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import pandas as pd

from sedwatt.config import DESED_CLASSES
from sedwatt.metrics import IntersectionScorer, decode, psds_from_scores
from sedwatt.metrics.reference import psds_eval_object

FRAME_SECONDS = 256 * 4 / 16000
N_FRAMES = 156
CLIP_SECONDS = 10.0
CRITERIA = (0.7, 0.5)


def generate(n_clips: int, seed: int = 0) -> tuple[np.ndarray, list[str], pd.DataFrame, pd.DataFrame]:
    """Scores [N, C, T], filenames, ground truth (1–3 events per clip, a tenth of clips empty), durations."""
    rng = np.random.default_rng(seed)
    names = [f"clip_{i:05d}.wav" for i in range(n_clips)]
    truth = np.zeros((n_clips, len(DESED_CLASSES), N_FRAMES), dtype=np.float32)
    rows = []
    for i, name in enumerate(names):
        if rng.random() < 0.1:
            continue
        for _ in range(rng.integers(1, 4)):
            onset = round(float(rng.uniform(0, 9)), 3)
            offset = round(min(onset + float(rng.uniform(0.3, 5)), CLIP_SECONDS), 3)
            label = int(rng.integers(len(DESED_CLASSES)))
            rows.append((name, onset, offset, DESED_CLASSES[label]))
            truth[i, label, int(onset / FRAME_SECONDS) : int(math.ceil(offset / FRAME_SECONDS))] = 1.0
    # A model-like output: blurred truth plus smooth noise, so detections fragment and misalign.
    noise = rng.normal(0, 1, truth.shape).astype(np.float32)
    kernel = np.ones(5, dtype=np.float32) / 5
    noise = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), -1, noise)
    scores = 1 / (1 + np.exp(-(4 * truth - 2 + 2.5 * noise)))
    ground_truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame({"filename": names, "duration": CLIP_SECONDS})
    return scores.astype(np.float32), names, ground_truth, durations


def ours(scorer: IntersectionScorer, scores: np.ndarray, names: list[str]) -> list[float]:
    events = decode(
        scores,
        names,
        threshold=0.5,
        median_filter=7,
        frame_seconds=FRAME_SECONDS,
        clip_seconds=CLIP_SECONDS,
        classes=DESED_CLASSES,
    )
    return [scorer.f1(events, dtc=c, gtc=c)[0] for c in CRITERIA]


def recipe_decode(scores: np.ndarray, names: list[str]) -> pd.DataFrame:
    """The recipe's batched_decode_preds at one threshold, clip by clip (docs/recipe.md §4)."""
    import scipy.ndimage
    from dcase_util.data import DecisionEncoder

    encoder = DecisionEncoder()
    frames = []
    for clip_scores, name in zip(scores, names, strict=True):
        mask = scipy.ndimage.median_filter(clip_scores.T > 0.5, (7, 1))
        events = []
        for k, label in enumerate(DESED_CLASSES):
            for start, stop in encoder.find_contiguous_regions(mask[:, k]):
                onset = np.clip(start * 4 / (16000 / 256), 0, CLIP_SECONDS)
                offset = np.clip(stop * 4 / (16000 / 256), 0, CLIP_SECONDS)
                events.append([label, onset, offset])
        if events:
            table = pd.DataFrame(events, columns=["event_label", "onset", "offset"])
            table["filename"] = name
            frames.append(table)
    return pd.concat(frames, ignore_index=True)


def recipe(ground_truth: pd.DataFrame, durations: pd.DataFrame, scores: np.ndarray, names: list[str]) -> list[float]:
    events = recipe_decode(scores, names)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in CRITERIA:
            pe = psds_eval_object(ground_truth, durations, dtc=c, gtc=c, cttc=0.3)
            _, per_class = pe.compute_macro_f_score(events)
            values.append(float(np.mean([0.0 if np.isnan(v) else v for v in per_class.values()])))
    return values


def best_of(repeats: int, fn, *args) -> tuple[float, list[float]]:
    times, result = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--psds", action="store_true", help="also time PSDS through both backends")
    args = parser.parse_args()
    scores, names, ground_truth, durations = generate(args.clips)
    start = time.perf_counter()
    scorer = IntersectionScorer(ground_truth, durations, DESED_CLASSES)
    prepare = time.perf_counter() - start
    t_ours, f_ours = best_of(args.repeats, ours, scorer, scores, names)
    t_recipe, f_recipe = best_of(args.repeats, recipe, ground_truth, durations, scores, names)
    n_events = len(decode(scores, names, frame_seconds=FRAME_SECONDS, clip_seconds=CLIP_SECONDS, classes=DESED_CLASSES))
    same = all(abs(a - b) <= 1e-9 for a, b in zip(f_ours, f_recipe, strict=True))
    print(f"clips={args.clips} reference_events={len(ground_truth)} detections@0.5={n_events}")
    print(f"ours:   {t_ours * 1000:9.1f} ms  (scorer prepared once in {prepare * 1000:.1f} ms)  F1 0.7/0.5 = {f_ours}")
    print(f"recipe: {t_recipe * 1000:9.1f} ms  F1 0.7/0.5 = {f_recipe}")
    print(f"same_value={same}")
    print(f"speedup={t_recipe / t_ours:.1f}x")
    if args.psds:
        timing = {"frame_seconds": FRAME_SECONDS, "clip_seconds": CLIP_SECONDS, "classes": DESED_CLASSES}
        found = {}
        for backend in ("psds_eval", "sed_scores_eval"):
            start = time.perf_counter()
            found[backend] = [
                psds_from_scores(scores, names, ground_truth, durations, s, backend=backend, **timing).value
                for s in (1, 2)
            ]
            found[backend].append(time.perf_counter() - start)
        (a1, a2, ta), (b1, b2, tb) = found["psds_eval"], found["sed_scores_eval"]
        print(f"PSDS1/PSDS2 psds_eval:       {a1:.9f} {a2:.9f}  {ta:7.2f} s")
        print(f"PSDS1/PSDS2 sed_scores_eval: {b1:.9f} {b2:.9f}  {tb:7.2f} s")
        print(f"psds_max_difference={max(abs(a1 - b1), abs(a2 - b2)):.2e} psds_speedup={ta / tb:.1f}x")


if __name__ == "__main__":
    main()
