"""PSDS scenario 1 and 2 (DCASE 2022) from a set of operating points, through psds_eval 0.5.3.

psds_eval is the field's reference implementation; it is used unpatched (it runs on the pinned
pandas 2.2 / numpy 2.2). sed_scores_eval's threshold-independent PSDS is not offered: it is not
installed. Parameters are DCASE's (baseline.md §4): S1 DTC 0.7, GTC 0.7, α_ct 0, α_st 1; S2 DTC 0.1,
GTC 0.1, CTTC 0.3, α_ct 0.5, α_st 1; e_max 100 false positives per hour; operating points at the
50 thresholds ``np.arange(1/100, 1, 1/50)``.

Per-class figures: the area under each class's TPR-vs-eFPR staircase up to e_max, divided by e_max
(the curves psds_eval plots per class; α_st plays no part for a single class). Classes without
reference events are unknown to psds_eval and absent.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from sedwatt.errors import SedwattError
from sedwatt.metrics.events import normalise_events
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
        psd_roc = pe._effective_tp_ratio(tpr_vs_efpr, params.alpha_st)
        value = pe._auc(psd_roc.xp, psd_roc.yp, params.max_efpr, params.alpha_st > 0) / params.max_efpr
        class_names = sorted(set(pe.class_names) - {_world_label()})
        per_class = {
            name: float(pe._auc(tpr_vs_efpr.xp, tpr_vs_efpr.yp[i], params.max_efpr) / params.max_efpr)
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


def _world_label() -> str:
    from psds_eval.psds import WORLD

    return WORLD
