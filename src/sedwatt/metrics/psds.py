"""PSDS scenario 1 and 2 (DCASE 2022) from a set of operating points, through psds_eval 0.5.3.

psds_eval is the field's reference implementation; it is used unpatched (it runs on the pinned
pandas 2.2 / numpy 2.2), and its private helpers are reached only through psds_eval_adapter.py, which
requires the exact psds_eval version they were checked against. Parameters are DCASE's: S1 DTC 0.7, GTC 0.7, α_ct 0, α_st 1; S2 DTC 0.1,
GTC 0.1, CTTC 0.3, α_ct 0.5, α_st 1; e_max 100 false positives per hour; operating points at the
50 thresholds ``np.arange(1/100, 1, 1/50)``.

Per-class figures: the area under each class's TPR-vs-eFPR staircase up to e_max, divided by e_max
(the curves psds_eval plots per class; α_st plays no part for a single class). Classes without
reference events are unknown to psds_eval and absent.

From frame scores (:func:`psds_from_scores`) a second backend is offered, sed_scores_eval 0.0.4
(optional; ``pip install sed_scores_eval``), about 8–10× faster on 2 CPU cores for the same value.
It evaluates every distinct score as a threshold (``score >= u``); fed median-filtered scores
quantised down to the 50-threshold grid (each score replaced by the largest grid threshold strictly
below it, -inf below the first), its operating points are exactly psds_eval's ``score > t`` ones
(median filtering commutes with thresholding), and the two values agree to float rounding (~1e-16)
on generated cases (tests/test_metrics_psds.py). Two documented differences: it rounds event times
to 6 decimals before the DTC/GTC comparisons (psds_eval does not), and it rejects touching
same-class reference events (onset == previous offset), which psds_eval accepts: those raise here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from sedwatt.errors import SedwattError
from sedwatt.metrics import psds_eval_adapter
from sedwatt.metrics.events import normalise_durations, normalise_events
from sedwatt.metrics.reference import psds_eval_object

PSDS_THRESHOLDS: np.ndarray = np.arange(1 / 100, 1, 1 / 50)


@dataclass(frozen=True)
class Scenario:
    dtc: float
    gtc: float
    cttc: float
    alpha_ct: float
    alpha_st: float
    max_efpr: float = 100.0


SCENARIOS: dict[int, Scenario] = {
    1: Scenario(dtc=0.7, gtc=0.7, cttc=0.3, alpha_ct=0.0, alpha_st=1.0),
    2: Scenario(dtc=0.1, gtc=0.1, cttc=0.3, alpha_ct=0.5, alpha_st=1.0),
}


@dataclass(frozen=True)
class PSDSResult:
    value: float
    per_class: dict[str, float]
    efpr: np.ndarray  # PSD-ROC x: effective false positives per hour
    etpr: np.ndarray  # PSD-ROC y: effective true positive ratio


def psds_result(
    operating_points: Mapping[float, pd.DataFrame],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    scenario: int | Scenario = 1,
    *,
    progress: bool = False,
) -> PSDSResult:
    """PSDS with its PSD-ROC and per-class areas (see the module docstring)."""
    params = SCENARIOS[scenario] if isinstance(scenario, int) else scenario
    psds_eval_adapter.check_version()  # before the costly pass, not after it
    if not operating_points:
        raise SedwattError("PSDS needs at least one operating point (detection table)")
    if normalise_events(ground_truth).empty:
        raise SedwattError("PSDS needs ground truth with at least one event")
    pe = psds_eval_object(ground_truth, durations, dtc=params.dtc, gtc=params.gtc, cttc=params.cttc)
    items = sorted(operating_points.items())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas FutureWarnings and "similar operating point" notices
        for threshold, detections in tqdm(items, desc="PSDS operating points", disable=not progress):
            pe.add_operating_point(normalise_events(detections), info={"threshold": float(threshold)})
        # PSDSEval.psds() step by step, so that the per-class curves come from the same (costly) ROC pass
        _, _, tpr_vs_efpr = pe.psd_roc_curves(params.alpha_ct)
        psd_roc = psds_eval_adapter.effective_tp_ratio(tpr_vs_efpr, params.alpha_st)
        value = psds_eval_adapter.auc(psd_roc.xp, psd_roc.yp, params.max_efpr, params.alpha_st > 0) / params.max_efpr
        class_names = sorted(set(pe.class_names) - {psds_eval_adapter.world_label()})
        per_class = {
            name: psds_eval_adapter.auc(tpr_vs_efpr.xp, tpr_vs_efpr.yp[i], params.max_efpr) / params.max_efpr
            for i, name in enumerate(class_names)
        }
    return PSDSResult(
        value=float(value),
        per_class=per_class,
        efpr=np.asarray(psd_roc.xp, dtype=float),
        etpr=np.asarray(psd_roc.yp, dtype=float),
    )


def psds(
    operating_points: Mapping[float, pd.DataFrame],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    scenario: int | Scenario = 1,
    *,
    progress: bool = False,
) -> tuple[float, dict[str, float]]:
    """(PSDS, per-class area) of detection tables keyed by threshold, for DCASE scenario 1 or 2."""
    result = psds_result(operating_points, ground_truth, durations, scenario, progress=progress)
    return result.value, result.per_class


Backend = Literal["psds_eval", "sed_scores_eval"]


def psds_from_scores(
    scores: np.ndarray,
    filenames: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    scenario: int | Scenario = 1,
    *,
    median_filter: int = 7,
    frame_seconds: float,
    clip_seconds: float,
    classes: Sequence[str],
    thresholds: Sequence[float] = PSDS_THRESHOLDS,
    backend: Backend = "psds_eval",
    progress: bool = False,
) -> PSDSResult:
    """PSDS of frame scores [N clips, C classes, T frames] decoded at ``thresholds`` (the 50 DCASE ones).

    ``backend="psds_eval"`` decodes every operating point (:func:`decode_thresholds`) and calls
    :func:`psds_result`; ``backend="sed_scores_eval"`` gives the same value much faster (module
    docstring). The PSD-ROC arrays may hold different (equivalent) points for the two backends.
    """
    from sedwatt.metrics.decode import decode_thresholds

    if backend == "psds_eval":
        operating_points = decode_thresholds(
            scores,
            filenames,
            thresholds,
            median_filter=median_filter,
            frame_seconds=frame_seconds,
            clip_seconds=clip_seconds,
            classes=classes,
        )
        return psds_result(operating_points, ground_truth, durations, scenario, progress=progress)
    if backend != "sed_scores_eval":
        raise ValueError(f"unknown PSDS backend {backend!r} (psds_eval or sed_scores_eval)")
    return _psds_sed_scores_eval(
        scores,
        filenames,
        ground_truth,
        durations,
        SCENARIOS[scenario] if isinstance(scenario, int) else scenario,
        median_filter=median_filter,
        frame_seconds=frame_seconds,
        clip_seconds=clip_seconds,
        classes=classes,
        thresholds=thresholds,
    )


def _psds_sed_scores_eval(
    scores: np.ndarray,
    filenames: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    params: Scenario,
    *,
    median_filter: int,
    frame_seconds: float,
    clip_seconds: float,
    classes: Sequence[str],
    thresholds: Sequence[float],
) -> PSDSResult:
    try:
        from sed_scores_eval import intersection_based
    except ImportError as exc:
        raise SedwattError("PSDS backend sed_scores_eval is not installed (pip install sed_scores_eval)") from exc

    scores, truth, clip_durations = _checked_inputs(scores, filenames, ground_truth, durations, classes)
    # psds_eval knows the classes with reference events, and only those; so does this backend.
    names = sorted(set(truth["event_label"]))
    quantised = _quantised(scores, names, classes, median_filter, thresholds)
    score_frames, references = _score_frames(
        quantised, names, filenames, truth, clip_durations, frame_seconds, clip_seconds
    )
    value, per_class, (etpr, efpr), _ = intersection_based.psds(
        score_frames,
        references,
        clip_durations,
        dtc_threshold=params.dtc,
        gtc_threshold=params.gtc,
        cttc_threshold=params.cttc if params.alpha_ct else None,
        alpha_ct=params.alpha_ct,
        alpha_st=params.alpha_st,
        max_efpr=params.max_efpr,
    )
    return PSDSResult(
        value=float(value),
        per_class={name: float(per_class[name]) for name in names},
        efpr=np.asarray(efpr, dtype=float),
        etpr=np.asarray(etpr, dtype=float),
    )


def _checked_inputs(
    scores: np.ndarray, filenames: Sequence[str], ground_truth: pd.DataFrame, durations: pd.DataFrame,
    classes: Sequence[str],
) -> tuple[np.ndarray, pd.DataFrame, dict[str, float]]:  # fmt: skip
    """(scores, merged references, clip → duration), or a ``SedwattError`` saying what sed_scores_eval cannot take."""
    from sedwatt.metrics.decode import _check

    scores = _check(np.asarray(scores), filenames, classes)
    truth = normalise_events(ground_truth)  # overlapping same-class events merged, as for psds_eval
    if truth.empty:
        raise SedwattError("PSDS needs ground truth with at least one event")
    clips = normalise_durations(durations)
    clip_durations = dict(zip(clips["filename"], clips["duration"], strict=True))
    unknown = sorted(set(map(str, filenames)) - clip_durations.keys())
    if unknown:
        raise SedwattError(f"{len(unknown)} scored clip(s) without a duration, e.g. {unknown[0]}")
    same_group = truth["filename"].eq(truth["filename"].shift()) & truth["event_label"].eq(truth["event_label"].shift())
    touching = same_group & truth["onset"].le(truth["offset"].shift())
    if touching.any():
        row = truth[touching].iloc[0]
        raise SedwattError(
            f"sed_scores_eval rejects touching same-class reference events ({row.filename}, {row.event_label} "
            f"at {row.onset} s); use the psds_eval backend"
        )
    return scores, truth, clip_durations


def _quantised(
    scores: np.ndarray, names: Sequence[str], classes: Sequence[str], median_filter: int, thresholds: Sequence[float]
) -> np.ndarray:
    """Median-filtered scores of the ``names`` classes, each rounded down to the largest threshold strictly
    below it (-inf under the lowest): sed_scores_eval then sees exactly the operating points psds_eval sees."""
    import scipy.ndimage

    if median_filter > 1 and scores.size:
        scores = scipy.ndimage.median_filter(scores, size=(1, 1, median_filter), mode="reflect")
    grid = np.sort(np.asarray(thresholds, dtype=np.float64))
    quantised = np.full((scores.shape[0], len(names), scores.shape[-1]), -np.inf)
    for k, name in enumerate(names):
        if name in classes:
            column = scores[:, list(classes).index(name)].astype(np.float64)
            below = np.searchsorted(grid, column, side="left") - 1  # largest threshold strictly below
            quantised[:, k] = np.where(below >= 0, grid[np.maximum(below, 0)], -np.inf)
    return quantised


def _score_frames(
    quantised: np.ndarray, names: Sequence[str], filenames: Sequence[str], truth: pd.DataFrame,
    clip_durations: dict[str, float], frame_seconds: float, clip_seconds: float,
) -> tuple[dict[str, Any], dict[str, list[tuple[float, float, str]]]]:  # fmt: skip
    """sed_scores_eval's inputs: a score frame per clip and the reference events per clip."""
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    times = np.minimum(np.arange(quantised.shape[-1] + 1) * frame_seconds, clip_seconds)
    score_frames = {
        str(name): create_score_dataframe(quantised[i].T, times, names) for i, name in enumerate(filenames)
    }
    # Clips with a duration but no scores: nothing detected, their references missed (as with psds_eval).
    for name, seconds in clip_durations.items():
        if name not in score_frames:
            score_frames[name] = create_score_dataframe(np.full((1, len(names)), -np.inf), [0.0, seconds], names)
    references: dict[str, list[tuple[float, float, str]]] = {name: [] for name in score_frames}
    for row in truth.itertuples(index=False):
        if row.filename not in references:
            raise SedwattError(f"reference events for {row.filename}, which has no duration")
        references[row.filename].append((row.onset, row.offset, row.event_label))
    return score_frames, references
