"""One tracked training run: data check → MLflow run → trainer with energy, stopping and tracking callbacks.

This is the single entry that ``sedwatt train``, the MLproject ``main`` entry point and every Optuna
trial go through, so a trial's run holds exactly what a normal training run holds. The data are
validated, and the trainer is built from the config and given one forward pass, before any MLflow
run is created: bad input or a config that cannot train never leaves a half-made run behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sedwatt.config import SedwattConfig, load_config
from sedwatt.errors import SedwattError, first_line
from sedwatt.training.callbacks import Callback, RunState


@dataclass
class TrainOutcome:
    run_id: str
    state: RunState
    summary: dict[str, float] = field(default_factory=dict)

    @property
    def max_val_f1(self) -> float:
        """The run's max of ``val_f1`` (teacher, 0.7/0.7); 0 before any epoch."""
        return max((h["val_f1"] for h in self.state.history), default=0.0)


def _resume_checkpoint(run_id: str, out_dir: Path) -> Path:
    """The last checkpoint of a run: local when this machine ran it, else downloaded from its artifacts."""
    import mlflow

    local = out_dir / "checkpoints" / "last.pt"
    if local.is_file():
        return local
    import tempfile

    local.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=local.parent) as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoints/last.pt", dst_path=tmp)
        except Exception as exc:
            raise SedwattError(f"--resume {run_id}: no checkpoint to resume from ({exc.__class__.__name__})") from None
        Path(path).replace(local)  # where this machine's own checkpoints go, so a second resume finds it
    return local


def resume_config(run_id: str, overrides: tuple[str, ...] | list[str] = ()) -> SedwattConfig:
    """The config a run was started with (its config.yaml artifact), plus new overrides."""
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="config.yaml")
    except Exception as exc:
        raise SedwattError(f"--resume {run_id}: run or its config.yaml not found ({exc.__class__.__name__})") from None
    return load_config(path, overrides)


def default_run_name(config: SedwattConfig) -> str:
    """What a run is, at a glance in the MLflow run list: ``cpu_demo · batch 16 · seed 42``."""
    return f"{config.name} · batch {config.train.batch_size} · seed {config.train.seed}"


def build_checked_trainer(config: SedwattConfig, data: Any) -> Any:
    """The run's ``Trainer``, built and given one forward pass; any failure is one line naming the config.

    Field bounds in the config catch almost everything; this catches the combinations only torch can
    judge (sizes the layers refuse), so a bad config never gets as far as an MLflow run.
    """
    from sedwatt.training.loop import Trainer

    try:
        trainer = Trainer(config, data)
        trainer.check()
    except SedwattError:
        raise
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as exc:
        raise SedwattError(f"config {config.name}: cannot build a model that runs ({first_line(exc)})") from None
    return trainer


def start_run_kwargs(
    config: SedwattConfig, experiment_id: str, run_name: str | None, parent_run_id: str | None,
    resume_run_id: str | None, log_system_metrics: bool | None,
) -> dict[str, Any]:  # fmt: skip
    """``mlflow.start_run``'s arguments: the run to resume, or a new one (named, nested under a parent or the
    active run), with system metrics as the config says unless told."""
    import mlflow

    if log_system_metrics is None:
        log_system_metrics = config.tracking.system_metrics
    kwargs: dict[str, Any] = {"log_system_metrics": log_system_metrics}
    if resume_run_id:
        kwargs["run_id"] = resume_run_id
        return kwargs
    kwargs.update(experiment_id=experiment_id, run_name=run_name or default_run_name(config))
    if parent_run_id:
        kwargs["parent_run_id"] = parent_run_id
    elif mlflow.active_run() is not None:
        kwargs["nested"] = True
    return kwargs


def run_callbacks(
    config: SedwattConfig, out_dir: Path, extra: list[Callback], tracker: Callback
) -> list[Callback]:
    """The run's callbacks, producers before consumers: threads and memory, energy, early stopping, the caller's, tracking."""
    from sedwatt.energy import EnergyCallback
    from sedwatt.memory import ReuseFreedMemory
    from sedwatt.threads import ThreadShare
    from sedwatt.training.early_stopping import stopping_callbacks

    callbacks: list[Callback] = [ThreadShare(config.train.num_threads), ReuseFreedMemory(config.train.reuse_freed_memory)]
    if config.energy.enabled:
        callbacks.append(EnergyCallback(config.energy, out_dir, config.train.epochs))
    return [*callbacks, *stopping_callbacks(config.train), *extra, tracker]


def train_run(
    config: SedwattConfig,
    data_dir: Path | str,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    resume_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
    extra_callbacks: list[Callback] | None = None,
    log_system_metrics: bool | None = None,
) -> TrainOutcome:
    """One tracked training run (see the module docstring): its run id, final state and end-of-run metrics."""
    from sedwatt.data.datasets import build_training_data
    from sedwatt.data.scan import load_clips
    from sedwatt.tracking import (
        MLflowCallback,
        configure_tracking,
        ensure_experiment,
        spool_path_for,
        start_tracked_run,
    )
    from sedwatt.tracking.datasets import dataset_summary

    configure_tracking()
    scan = load_clips(data_dir, config)
    data = build_training_data(scan, config)
    trainer = build_checked_trainer(config, data)  # before any run exists: a config that cannot train leaves none
    trainer.state.info["dataset"] = dataset_summary(data_dir, data)  # the run's MLflow dataset input
    experiment_id = ensure_experiment(config.tracking.experiment)

    start_kwargs = start_run_kwargs(config, experiment_id, run_name, parent_run_id, resume_run_id, log_system_metrics)
    out_root = Path(config.train.out_dir).resolve()
    with start_tracked_run(spool_path=lambda run_id: spool_path_for(out_root / run_id), **start_kwargs) as run:
        run_id = run.info.run_id
        out_dir = out_root / run_id
        tags = {"sedwatt.kind": "train", "sedwatt.out_dir": str(out_dir), "sedwatt.data": str(Path(data_dir).resolve())}
        # Through the run's resilient logger (its tracker's too): a server outage here must not fail the run.
        from sedwatt.tracking.resilient import batch_op, logger_for

        logger_for(spool_path_for(out_dir)).submit(batch_op(run_id, tags={**tags, **(extra_tags or {})}))
        tracker = MLflowCallback(run_id, spool_path=spool_path_for(out_dir))
        trainer.attach(out_dir, run_callbacks(config, out_dir, extra_callbacks or [], tracker))
        resume_from = _resume_checkpoint(run_id, out_dir) if resume_run_id else None
        state = trainer.fit(resume_from=resume_from)
        return TrainOutcome(run_id=run_id, state=state, summary=dict(getattr(tracker, "summary", {}) or {}))
