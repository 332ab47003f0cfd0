"""Dev-test evaluation of a logged model and hardware calibration of inference energy.

    outcome = evaluate("models:/sedwatt-crnn/3", "data/desed")    # → a run nested under the training run
    calibrate("data/desed", published_kwh=0.030)                  # → a run in experiment sedwatt-calibration

Both run the same measured dev-test pass (devtest.py); see calibration.py for the normalisation.
This package imports torch; the CLI imports it inside its commands only.
"""

from __future__ import annotations

from sedwatt.evaluation.calibration import (
    CALIBRATION_EXPERIMENT,
    DEFAULT_PUBLISHED_KWH,
    REF_METRIC,
    REF_PUBLISHED_PARAM,
    Calibration,
    CalibrationOutcome,
    calibrate,
    find_calibration,
    hardware_fingerprint,
    reference_model,
)
from sedwatt.evaluation.evaluate import NORMALISED_METRIC, EvaluationOutcome, evaluate
from sedwatt.evaluation.model_source import ModelSource, resolve_model_uri

__all__ = [
    "CALIBRATION_EXPERIMENT",
    "DEFAULT_PUBLISHED_KWH",
    "NORMALISED_METRIC",
    "REF_METRIC",
    "REF_PUBLISHED_PARAM",
    "Calibration",
    "CalibrationOutcome",
    "EvaluationOutcome",
    "ModelSource",
    "calibrate",
    "evaluate",
    "find_calibration",
    "hardware_fingerprint",
    "reference_model",
    "resolve_model_uri",
]
