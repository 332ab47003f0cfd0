"""Hardware calibration: the reference model's dev-test inference energy on this machine.

DCASE 2022–2024 asked participants to report, next to their own energy, the baseline's dev-test
inference energy measured on the same hardware, so that figures from different machines can be
compared: E_normalised = E × E_ref_published / E_ref_here, with E_ref_published = 0.030 kWh (the
2022 baseline's dev-test inference on an A100). ``calibrate`` measures E_ref_here:
the DCASE 2022 baseline architecture (the recipe's defaults = configs/dcase2022.yaml, 1,112,420
parameters) runs the exact dev-test pass ``evaluate`` runs. Without network access the published
checkpoint cannot be fetched, so the weights are fixed seeded ones unless the user gives the
upstream checkpoint (``--checkpoint``); seeded weights do the same forward work, but their
detections — hence decoding and PSDS time — differ from a trained model's.

The result is a run in experiment ``sedwatt-calibration`` (tag ``sedwatt.kind=calibration``, the
``hw.*`` tags, metric ``ref_inference_energy_kwh``, param ``ref_published_kwh``); ``evaluate``
and the analysis use the most recent one whose (``hw.gpu_model``, ``hw.cpu_model``) matches and whose
energy was charged by the same rule (tag ``energy.attribution``): a factor measured under one rule
does not normalise an energy charged by another (``load_calibrations``).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sedwatt.config import SedwattConfig, load_config
from sedwatt.errors import SedwattError, first_line

CALIBRATION_EXPERIMENT = "sedwatt-calibration"
REF_METRIC = "ref_inference_energy_kwh"
REF_PUBLISHED_PARAM = "ref_published_kwh"
DEFAULT_PUBLISHED_KWH = 0.030  # DCASE 2022 baseline, dev-test inference, A100
REFERENCE_PARAMETERS = 1_112_420
REFERENCE_NAME = "dcase2022-crnn"
DEFAULT_SEED = 2022
# What may change without changing the reference: where the data are, how energy is measured, which device.
ALLOWED_OVERRIDE_KEYS = ("train.device", "train.val_batch_size", "train.progress")
ALLOWED_OVERRIDE_SECTIONS = ("data.", "energy.")


def hardware_fingerprint(tags: dict[str, str]) -> tuple[str, str]:
    """(GPU model, CPU model): what a calibration and a run must share (the module docstring)."""
    return ((tags.get("hw.gpu_model") or "none").strip(), (tags.get("hw.cpu_model") or "unknown").strip())


@dataclass(frozen=True)
class Calibration:
    """One calibration run as ``evaluate`` uses it."""

    run_id: str
    fingerprint: tuple[str, str]
    measured_kwh: float
    published_kwh: float
    dataset_fingerprint: str | None = None
    attribution: str | None = None  # its energy.attribution: how its energy was charged (energy/attribution.py)

    @property
    def factor(self) -> float:
        return self.published_kwh / self.measured_kwh

    def normalise(self, energy_kwh: float) -> float:
        """E × E_ref_published / E_ref_here."""
        return energy_kwh * self.published_kwh / self.measured_kwh


CalibrationKey = tuple[tuple[str, str], str | None]  # (hardware fingerprint, energy.attribution or None)


def load_calibrations(client: Any = None) -> dict[CalibrationKey, Calibration]:
    """The most recent usable calibration per (hardware fingerprint, ``energy.attribution``); {} when none.

    Keyed by the attribution too, so a newer calibration charged by another rule (say a ``machine`` one
    beside ``process-cpu-use`` ones) does not hide the older one that matches. A calibration without the
    tag (logged before sedwatt recorded it, when energy was charged by CodeCarbon's own mode, a rule
    neither of today's process rules is) has the key None: it matches only runs without the tag.
    """
    import mlflow
    from mlflow.entities import ViewType

    client = client or mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(CALIBRATION_EXPERIMENT)
    if experiment is None:
        return {}
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.sedwatt.kind = 'calibration'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=5000,
        order_by=["attributes.start_time DESC"],
    )
    found: dict[CalibrationKey, Calibration] = {}
    for run in runs:
        measured = run.data.metrics.get(REF_METRIC)
        try:
            published = float(run.data.params.get(REF_PUBLISHED_PARAM, DEFAULT_PUBLISHED_KWH))
        except ValueError:
            continue
        if measured is None or not math.isfinite(measured) or measured <= 0 or not published > 0:
            continue
        fingerprint = hardware_fingerprint(run.data.tags)
        attribution = run.data.tags.get("energy.attribution")
        found.setdefault(
            (fingerprint, attribution),
            Calibration(
                run_id=run.info.run_id,
                fingerprint=fingerprint,
                measured_kwh=float(measured),
                published_kwh=published,
                dataset_fingerprint=run.data.params.get("dataset_fingerprint"),
                attribution=attribution,
            ),
        )
    return found


def match_calibration(
    calibrations: dict[CalibrationKey, Calibration], hw_tags: dict[str, str], attribution: str | None
) -> Calibration | None:
    """The calibration of this hardware charged by ``attribution`` (None: one without the tag), or None."""
    return calibrations.get((hardware_fingerprint(hw_tags), attribution))


def charged_otherwise(
    calibrations: dict[CalibrationKey, Calibration], hw_tags: dict[str, str], attribution: str | None
) -> list[Calibration]:
    """This hardware's calibrations charged by another rule than ``attribution``: why none matched."""
    fingerprint = hardware_fingerprint(hw_tags)
    return [c for (fp, rule), c in calibrations.items() if fp == fingerprint and rule != attribution]


def find_calibration(
    hw_tags: dict[str, str], client: Any = None, attribution: str | None = None
) -> Calibration | None:
    """The most recent usable calibration with this hardware fingerprint and ``energy.attribution``, or None.

    ``attribution`` None finds only a calibration without the tag (``load_calibrations``)."""
    return match_calibration(load_calibrations(client), hw_tags, attribution)


def reference_config(overrides: list[str] | tuple[str, ...] = ()) -> SedwattConfig:
    """The recipe's config; only data, energy and device settings may be overridden."""
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key not in ALLOWED_OVERRIDE_KEYS and not key.startswith(ALLOWED_OVERRIDE_SECTIONS):
            raise SedwattError(
                f"--set {text!r}: the reference model's settings are fixed; only data.*, energy.*, "
                f"{', '.join(ALLOWED_OVERRIDE_KEYS)} may be set"
            )
    return load_config(None, overrides)


def reference_model(config: SedwattConfig, seed: int = DEFAULT_SEED, checkpoint: Path | str | None = None) -> Any:
    """The DCASE 2022 CRNN with seeded weights, or the upstream checkpoint's student weights."""
    import torch

    from sedwatt.model import build_crnn, count_parameters, load_upstream_state_dict

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_crnn(config)
    if count_parameters(model) != REFERENCE_PARAMETERS:
        raise RuntimeError(f"reference CRNN has {count_parameters(model)} parameters, expected {REFERENCE_PARAMETERS}")
    if checkpoint is not None:
        try:
            state = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise SedwattError(
                f"--checkpoint {checkpoint}: not a PyTorch checkpoint of tensors ({first_line(exc)})"
            ) from None
        load_upstream_state_dict(model, state)
    return model.eval()


def weights_label(seed: int, checkpoint: Path | str | None) -> str:
    if checkpoint is None:
        return f"seeded:{seed}"
    digest = hashlib.sha1(Path(checkpoint).read_bytes()).hexdigest()[:16]
    return f"checkpoint:{Path(checkpoint).name}:{digest}"


@dataclass
class CalibrationOutcome:
    run_id: str
    calibration: Calibration
    energies_kwh: list[float]
    n_clips: int
    hw_tags: dict[str, str] = field(default_factory=dict)

    @property
    def std_kwh(self) -> float | None:
        return statistics.stdev(self.energies_kwh) if len(self.energies_kwh) > 1 else None


def _check_inputs(published_kwh: float, repeats: int, checkpoint: Path | str | None, config: SedwattConfig) -> None:
    if not (math.isfinite(published_kwh) and published_kwh > 0):
        raise SedwattError(f"--published-kwh {published_kwh}: must be a positive number of kWh")
    if repeats < 1:
        raise SedwattError(f"--repeats {repeats}: must be at least 1")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise SedwattError(f"--checkpoint {checkpoint}: file not found")
    if not config.energy.enabled:
        raise SedwattError("energy.enabled=false: a calibration is an energy measurement; enable it")


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def calibration_metrics(results: list[Any]) -> dict[str, float]:
    """A calibration run's metrics from its measured passes: means (and the energy's sample std)."""
    from sedwatt.evaluation.runs import finite

    energies = [float(r.energy.energy_kwh) for r in results if r.energy.measured]
    if len(energies) != len(results) or not statistics.fmean(energies) > 0:
        raise SedwattError("calibration measured no energy: the energy tracker recorded nothing")
    metrics: dict[str, float | None] = {
        REF_METRIC: statistics.fmean(energies),
        "ref_cpu_energy_kwh": _mean([r.energy.cpu_energy_kwh for r in results]),
        "ref_gpu_energy_kwh": _mean([r.energy.gpu_energy_kwh for r in results]),
        "ref_ram_energy_kwh": _mean([r.energy.ram_energy_kwh for r in results]),
        "ref_duration_s": _mean([r.energy.duration_s for r in results]),
        **{f"ref_{k}": v for k, v in results[-1].metrics.items()},
    }
    if len(energies) > 1:
        metrics[f"{REF_METRIC}_std"] = statistics.stdev(energies)
    return finite(metrics)


def calibrate(
    data: Path | str,
    *,
    published_kwh: float = DEFAULT_PUBLISHED_KWH,
    repeats: int = 1,
    seed: int = DEFAULT_SEED,
    checkpoint: Path | str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    out: Path | str | None = None,
    run_name: str | None = None,
    report: Any = print,
) -> CalibrationOutcome:
    """Measure the reference model's dev-test pass ``repeats`` times and record a calibration run."""
    from sedwatt import threads
    from sedwatt.evaluation.devtest import load_devtest, run_devtest
    from sedwatt.evaluation.runs import check_out_dir, output_folder
    from sedwatt.hardware import hardware_tags, resolve_device
    from sedwatt.tracking import configure_tracking

    configure_tracking()
    config = reference_config(overrides)
    _check_inputs(published_kwh, repeats, checkpoint, config)
    with threads.job("calibrate", config.train.num_threads):  # its share of the CPUs beside other sedwatt jobs
        out_dir = check_out_dir(out)
        devset = load_devtest(data, config)
        device = resolve_device(config.train.device)
        model = reference_model(config, seed, checkpoint).to(device)
        hw = hardware_tags(device)

        with output_folder(out_dir, "calibration") as work:
            results = []
            for i in range(1, repeats + 1):
                result = run_devtest(model, devset, config, device, work / f"repeat_{i}", energy_name="calibration")
                results.append(result)
                report(f"calibration pass {i}/{repeats}: {result.energy.energy_kwh:.6g} kWh in {result.energy.duration_s:.1f} s")
            params = {
                REF_PUBLISHED_PARAM: repr(float(published_kwh)),
                "dataset_fingerprint": devset.fingerprint,
                "n_clips": devset.n_clips,
                "repeats": repeats,
                "reference_model": REFERENCE_NAME,
                "reference_params": REFERENCE_PARAMETERS,
                "reference_weights": weights_label(seed, checkpoint),
                "device": str(device),
                "config_name": config.name,
            }
            tags = {**results[0].energy.tags, **hw, "sedwatt.kind": "calibration", "sedwatt.data": str(devset.root)}
            run_id = record_calibration(config, results, tags, params, run_name)
    energies = [float(r.energy.energy_kwh) for r in results]
    calibration = Calibration(
        run_id=run_id,
        fingerprint=hardware_fingerprint(hw),
        measured_kwh=statistics.fmean(energies),
        published_kwh=float(published_kwh),
        dataset_fingerprint=devset.fingerprint,
        attribution=tags.get("energy.attribution"),
    )
    return CalibrationOutcome(run_id=run_id, calibration=calibration, energies_kwh=energies, n_clips=devset.n_clips, hw_tags=hw)


def record_calibration(
    config: SedwattConfig, results: list[Any], tags: dict[str, str], params: dict[str, Any], run_name: str | None
) -> str:
    """The calibration run in ``CALIBRATION_EXPERIMENT``: metrics of the passes, each pass's energy and files.

    Writes survive a server outage: they wait in a spool for ``sedwatt sync``. Returns the run id.
    """
    from sedwatt.evaluation.runs import open_run
    from sedwatt.tracking import ensure_experiment

    metrics = calibration_metrics(results)
    experiment_id = ensure_experiment(CALIBRATION_EXPERIMENT)
    machine = tags["hw.gpu_model"] if tags["hw.gpu_model"] != "none" else tags["hw.cpu_model"]
    with open_run(
        experiment_id=experiment_id, run_name=run_name or f"calibration {machine}", spool_root=config.train.out_dir,
        resume_project_run=False,
    ) as record:  # fmt: skip
        record.set_tags(tags)
        record.log_params(params)
        record.log_metrics(metrics)
        for step, result in enumerate(results, start=1):
            record.log_metrics({f"{REF_METRIC}_repeat": float(result.energy.energy_kwh)}, step=step)
        record.log_text(config.to_yaml(), "config.yaml")
        for i, result in enumerate(results, start=1):
            for path in result.energy.files:
                record.log_artifact(path, f"energy/repeat_{i}")
        return record.run_id
