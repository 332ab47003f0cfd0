"""The DCASE 2022 dev-test pass: inference, 50-threshold decoding and metrics, inside one energy measurement.

``sedwatt evaluate`` (a trained student) and ``sedwatt calibrate`` (the reference model) both go
through :func:`run_devtest`, so a model's inference energy and the reference energy it is
normalised by measure exactly the same work. As in the recipe's dev-test tracker (docs/recipe.md §4,
§5), the measured block covers the forward pass on every clip (audio read and log-mel included:
no feature cache, so a first and a second run do the same work), decoding at the 50 PSDS
thresholds ``np.arange(1/100, 1, 1/50)`` and at 0.5 (median filter 7), PSDS1, PSDS2, intersection
F1 (DTC/GTC 0.7 and 0.5), collar F1, and writing the operating-point TSVs. The recipe also ran the
teacher; a logged model is the student alone, so only the student runs here. One-time costs
(imports, the first batch through the model) are paid before the measurement starts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sedwatt.config import SedwattConfig
from sedwatt.energy import EnergyMeasurement, measure_energy
from sedwatt.errors import SedwattError
from sedwatt.evaluation.runs import json_safe

METRIC_KEYS = ("psds1", "psds2", "intersection_f1_macro", "intersection_f1_macro_05", "collar_f1_macro")
OPERATING_POINTS_DIR = "operating_points"
PER_CLASS_FILE = "per_class.json"


def operating_point_name(threshold: float) -> str:
    """``predictions_th_0.010.tsv``: DCASE's file name, readable by ``sedwatt score``."""
    return f"predictions_th_{threshold:.3f}.tsv"


@dataclass
class DevtestSet:
    """The dev-test clips as a dataset, with their ground truth, durations and TSV fingerprint."""

    dataset: torch.utils.data.Dataset
    filenames: list[str]
    ground_truth: pd.DataFrame
    durations: pd.DataFrame
    fingerprint: str
    root: Path

    @property
    def n_clips(self) -> int:
        return len(self.filenames)


def load_devtest(root: Path | str, config: SedwattConfig) -> DevtestSet:
    """Scan only the dev-test set of a DESED-layout folder; any problem is one ``SedwattError``."""
    from sedwatt.data.datasets import ClipDataset
    from sedwatt.data.scan import DEVTEST, load_clips

    scan = load_clips(root, config, sets=(DEVTEST,))
    clip_set = scan.sets[DEVTEST.name]
    if not clip_set.clips:
        raise SedwattError(f"{root}: the dev-test set ({DEVTEST.labels}) lists no clips")
    truth = clip_set.ground_truth()
    if truth.empty:
        raise SedwattError(f"{Path(root) / str(DEVTEST.labels)}: no events; PSDS needs at least one reference event")
    # cache=None: every pass reads the audio and computes the log-mel, as the recipe's test loop did.
    dataset = ClipDataset(clip_set.clips, config, random_crop=False, cache=None)
    return DevtestSet(
        dataset=dataset,
        filenames=[c.name for c in clip_set.clips],
        ground_truth=truth,
        durations=clip_set.durations_frame(),
        fingerprint=scan.fingerprint,
        root=Path(root).resolve(),
    )


@dataclass
class DevtestScores:
    """Macro figures (``METRIC_KEYS``) and per-class figures {metric: {class: value}}."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]


def score_strong_outputs(
    strong: np.ndarray,
    devset: DevtestSet,
    config: SedwattConfig,
    operating_points_dir: Path,
    *,
    progress: bool = False,
) -> DevtestScores:
    """Decode frame scores [N, C, T] at the 50 PSDS thresholds and at the F1 threshold; score; write TSVs."""
    from sedwatt.metrics import (
        PSDS_THRESHOLDS,
        IntersectionScorer,
        collar_f1,
        decode,
        decode_thresholds,
        psds,
        psds_from_scores,
    )

    classes = tuple(config.data.classes)
    timing = {"frame_seconds": config.frame_seconds, "clip_seconds": config.data.clip_seconds, "classes": classes}
    v = config.validation
    operating_points = decode_thresholds(
        strong, devset.filenames, PSDS_THRESHOLDS, median_filter=v.median_filter, **timing
    )
    at_threshold = decode(strong, devset.filenames, threshold=v.threshold, median_filter=v.median_filter, **timing)

    metrics: dict[str, float] = {}
    per_class: dict[str, dict[str, float]] = {}
    for scenario in (1, 2):
        if v.psds_backend == "psds_eval":
            value, classwise = psds(operating_points, devset.ground_truth, devset.durations, scenario, progress=progress)
        else:  # the same 50 thresholds and median filter, from the frame scores
            result = psds_from_scores(
                strong, devset.filenames, devset.ground_truth, devset.durations, scenario,
                median_filter=v.median_filter, backend=v.psds_backend, **timing,
            )  # fmt: skip
            value, classwise = result.value, result.per_class
        metrics[f"psds{scenario}"], per_class[f"psds{scenario}"] = float(value), classwise
    scorer = IntersectionScorer(devset.ground_truth, devset.durations, classes)
    for key, criterion in (("intersection_f1_macro", 0.7), ("intersection_f1_macro_05", 0.5)):
        value, classwise = scorer.f1(at_threshold, dtc=criterion, gtc=criterion)
        metrics[key], per_class[key] = float(value), classwise
    value, classwise = collar_f1(at_threshold, devset.ground_truth, devset.durations, classes=classes, progress=progress)
    metrics["collar_f1_macro"], per_class["collar_f1_macro"] = float(value), classwise

    operating_points_dir.mkdir(parents=True, exist_ok=True)
    for threshold, events in operating_points.items():
        events.to_csv(operating_points_dir / operating_point_name(threshold), sep="\t", index=False)
    return DevtestScores(metrics=metrics, per_class=per_class)


@dataclass
class DevtestResult:
    """What one measured dev-test pass produced; ``out_dir`` holds the TSVs, per-class JSON and energy CSVs."""

    scores: DevtestScores
    energy: EnergyMeasurement
    out_dir: Path
    files: list[Path] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        return self.scores.metrics


def warm_up(model: torch.nn.Module, devset: DevtestSet, config: SedwattConfig, device: torch.device) -> None:
    """One-time costs, left out of the measurement so that every measured pass does the same work.

    The scoring libraries are imported (the recipe imported them at start-up) and one batch goes
    through the model (CUDA context, kernel selection, lazy initialisation). Without this, the
    first pass in a process costs twice the next one on a CPU, and ``evaluate`` (one pass) and
    ``calibrate --repeats`` (mostly warm passes) would not measure alike.
    """
    import psds_eval  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import sed_eval  # noqa: F401

    from sedwatt.training.validation import predict

    first_batch = torch.utils.data.Subset(devset.dataset, range(min(config.train.val_batch_size, devset.n_clips)))
    predict([model], first_batch, config, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_devtest(
    model: torch.nn.Module,
    devset: DevtestSet,
    config: SedwattConfig,
    device: torch.device,
    out_dir: Path,
    *,
    energy_name: str = "devtest",
) -> DevtestResult:
    """Inference + decoding + metrics on the dev-test, its energy measured (see the module docstring)."""
    from sedwatt.training.validation import predict

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = bool(config.train.progress and sys.stderr.isatty())
    model = model.to(device).eval()
    warm_up(model, devset, config, device)
    with measure_energy(config.energy, out_dir / "energy", energy_name, device=str(device)) as energy:
        ((strong, _weak),) = predict([model], devset.dataset, config, device, progress=progress, desc="dev-test")
        scores = score_strong_outputs(strong, devset, config, out_dir / OPERATING_POINTS_DIR, progress=progress)
    per_class_file = out_dir / PER_CLASS_FILE
    per_class_file.write_text(json.dumps(json_safe(scores.per_class), indent=2, sort_keys=True))
    return DevtestResult(scores=scores, energy=energy, out_dir=out_dir, files=[per_class_file, *energy.files])
