"""Evaluate a logged model on the dev-test and record it as a run nested under its training run.

Order: resolve the model URI and its training run, read the config, scan the dev-test, load the
model (all user errors surface here, before any work), look up this machine's calibration, run
the measured dev-test pass, and only then open the evaluation run and record everything in one go.
The run goes to the training run's experiment with ``mlflow.parentRunId`` = the training run (the
UI shows it nested), ``sedwatt.kind=evaluate`` and ``sedwatt.evaluates`` = the training run id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sedwatt.config import SedwattConfig
from sedwatt.evaluation.calibration import Calibration
from sedwatt.evaluation.devtest import METRIC_KEYS, OPERATING_POINTS_DIR, PER_CLASS_FILE, DevtestResult
from sedwatt.evaluation.model_source import ModelSource

NORMALISED_METRIC = "inference_energy_normalised_kwh"


@dataclass
class EvaluationOutcome:
    run_id: str
    source: ModelSource
    result: DevtestResult
    metrics: dict[str, float]
    n_clips: int
    calibration: Calibration | None = None
    calibration_dataset_match: bool | None = None
    notes: list[str] = field(default_factory=list)


def evaluation_metrics(result: DevtestResult, calibration: Calibration | None) -> dict[str, float]:
    """The run's metrics: the five scores, the inference energy split, and the normalised energy.

    The normalised energy only where the calibration charged its energy by the rule this pass did
    (``energy.attribution``): a factor measured under one rule does not normalise an energy charged by another.
    """
    from sedwatt.evaluation.runs import finite

    metrics: dict[str, float | None] = {key: result.metrics[key] for key in METRIC_KEYS}
    metrics.update(result.energy.metrics(prefix="inference_"))
    energy = result.energy.energy_kwh
    rule = result.energy.tags.get("energy.attribution")
    if calibration is not None and calibration.attribution == rule and result.energy.measured and energy is not None:
        metrics[NORMALISED_METRIC] = calibration.normalise(energy)
        metrics["inference_energy_norm_factor"] = calibration.factor
    return finite(metrics)


def calibration_check(
    calibration: Calibration | None, hw_tags: dict[str, str], dataset_fingerprint: str,
    attribution: str | None = None, charged_otherwise: Sequence[Calibration] = (),
) -> tuple[bool | None, list[str]]:  # fmt: skip
    """(whether the calibration measured this same dev-test, notes to print); (None, …) without one.

    ``calibration`` is this hardware's calibration charged by ``attribution`` (how this evaluation charges
    energy, ``match_calibration``); ``charged_otherwise``: the hardware's calibrations charged by another rule,
    which cannot normalise this evaluation and are named so the user knows to calibrate again."""
    if calibration is None:
        machine = f"{hw_tags.get('hw.gpu_model')} / {hw_tags.get('hw.cpu_model')}"
        if charged_otherwise:
            others = ", ".join(f"run {c.run_id} as {c.attribution or 'untagged'!r}" for c in charged_otherwise)
            return None, [
                f"warning: no calibration for this hardware ({machine}) charged its energy as {attribution!r} "
                f"(energy.attribution), as this evaluation does; calibration {others} cannot normalise it: "
                "run `sedwatt calibrate` again"
            ]
        return None, [f"no calibration for this hardware ({machine}): run `sedwatt calibrate` to get the normalised "
                      "inference energy"]  # fmt: skip
    if calibration.dataset_fingerprint == dataset_fingerprint:
        return True, []
    return False, [
        f"warning: calibration run {calibration.run_id} measured another dev-test "
        f"(dataset fingerprint {calibration.dataset_fingerprint} vs {dataset_fingerprint} here); "
        "the normalised energy compares different work"
    ]


def evaluation_tags(
    result: DevtestResult, hw: dict[str, str], source: ModelSource, data_root: Path,
    calibration: Calibration | None, dataset_match: bool | None,
) -> dict[str, str]:  # fmt: skip
    """The evaluation run's tags: energy provenance, hardware, the model, its training run as parent."""
    tags = {
        **result.energy.tags,
        **hw,
        **source.tags(),
        "sedwatt.kind": "evaluate",
        "sedwatt.evaluates": source.training_run_id,
        "mlflow.parentRunId": source.training_run_id,
        "sedwatt.data": str(data_root),
    }
    if calibration is not None:
        tags["sedwatt.calibration_run_id"] = calibration.run_id
        tags["sedwatt.calibration_dataset_match"] = str(dataset_match).lower()
    return tags


def evaluation_params(
    source: ModelSource, devset: Any, config: SedwattConfig, device: Any,
    config_path: Path | str | None, overrides: list[str] | tuple[str, ...], calibration: Calibration | None,
) -> dict[str, Any]:  # fmt: skip
    """The evaluation run's params: which model, data, decoding and device, and the calibration used."""
    params: dict[str, Any] = {
        "model_uri": source.uri,
        "model_load_uri": source.load_uri,
        "training_run_id": source.training_run_id,
        "dataset_fingerprint": devset.fingerprint,
        "n_clips": devset.n_clips,
        "thresholds": "np.arange(1/100, 1, 1/50)",
        "f1_threshold": config.validation.threshold,
        "median_filter": config.validation.median_filter,
        "device": str(device),
        "config_source": str(config_path) if config_path else f"runs:/{source.training_run_id}/config.yaml",
    }
    if overrides:
        params["overrides"] = " ".join(overrides)
    if calibration is not None:
        params.update(
            {
                "calibration_run_id": calibration.run_id,
                "ref_published_kwh": repr(calibration.published_kwh),
                "ref_inference_energy_kwh": repr(calibration.measured_kwh),
            }
        )
    return params


def record_evaluation(
    source: ModelSource, config: SedwattConfig, run_name: str | None, tags: dict[str, str],
    params: dict[str, Any], metrics: dict[str, float], work: Path, result: DevtestResult,
) -> Any:  # fmt: skip
    """Open the evaluation run and write its tags, params, metrics and files; returns the run.

    Writes survive a server outage: they wait in a spool for ``sedwatt sync``.
    """
    from sedwatt.evaluation.runs import open_run

    default_name = f"evaluate {source.registered_name}/{source.version}" if source.version else "evaluate"
    with open_run(
        experiment_id=source.experiment_id,
        run_name=run_name or default_name,
        spool_root=config.train.out_dir,
        parent_run_id=source.training_run_id,
    ) as recorder:
        recorder.set_tags(tags)
        recorder.log_params(params)
        recorder.log_metrics(metrics)
        recorder.log_text(config.to_yaml(), "config.yaml")
        recorder.log_artifact(work / PER_CLASS_FILE)
        recorder.log_artifact(work / OPERATING_POINTS_DIR, OPERATING_POINTS_DIR)
        for path in result.energy.files:
            recorder.log_artifact(path, "energy")
        return recorder.run


def experiment_note(run: Any, source: ModelSource) -> list[str]:
    """A note when ``mlflow run`` put the evaluation in another experiment than its training run's."""
    if run.info.experiment_id == source.experiment_id:
        return []
    return [
        f"note: this run is in experiment {run.info.experiment_id}, the training run in "
        f"{source.experiment_id}; the MLflow UI nests runs within one experiment "
        "(give `mlflow run` the training run's --experiment-name)"
    ]


def evaluate(
    model_uri: str,
    data: Path | str,
    *,
    config_path: Path | str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    out: Path | str | None = None,
    run_name: str | None = None,
) -> EvaluationOutcome:
    """See the module docstring; returns what was logged."""
    from sedwatt import threads
    from sedwatt.energy.attribution import attribution_name
    from sedwatt.evaluation.calibration import charged_otherwise, load_calibrations, match_calibration
    from sedwatt.evaluation.devtest import load_devtest, run_devtest
    from sedwatt.evaluation.model_source import load_model, resolve_model_uri, training_config
    from sedwatt.evaluation.runs import check_out_dir, output_folder
    from sedwatt.hardware import hardware_tags, resolve_device
    from sedwatt.tracking import configure_tracking

    configure_tracking()
    source = resolve_model_uri(model_uri)
    config = training_config(source, config_path, overrides)
    # A sedwatt job for its lifetime: beside a training it takes its share of the CPUs, and the training
    # gives up threads while it runs (sedwatt.threads).
    with threads.job("evaluate", config.train.num_threads):
        out_dir = check_out_dir(out)
        devset = load_devtest(data, config)
        device = resolve_device(config.train.device)
        model = load_model(source, device)
        hw = hardware_tags(device)

        # This hardware's newest calibration charged by the rule this evaluation charges by (others are named).
        attribution = attribution_name(config.energy.tracking_mode)
        calibrations = load_calibrations()
        calibration = match_calibration(calibrations, hw, attribution)
        others = charged_otherwise(calibrations, hw, attribution)
        dataset_match, notes = calibration_check(calibration, hw, devset.fingerprint, attribution, others)
        if not config.energy.enabled:
            notes.append("energy.enabled=false: no inference energy measured")

        with output_folder(out_dir, "evaluate") as work:
            result = run_devtest(model, devset, config, device, work, energy_name="devtest")
            metrics = evaluation_metrics(result, calibration)
            tags = evaluation_tags(result, hw, source, devset.root, calibration, dataset_match)
            params = evaluation_params(source, devset, config, device, config_path, overrides, calibration)
            run = record_evaluation(source, config, run_name, tags, params, metrics, work, result)
            notes += experiment_note(run, source)
        if out_dir is not None:
            result.out_dir = out_dir
    return EvaluationOutcome(
        run_id=run.info.run_id,
        source=source,
        result=result,
        metrics=metrics,
        n_clips=devset.n_clips,
        calibration=calibration,
        calibration_dataset_match=dataset_match,
        notes=notes,
    )
