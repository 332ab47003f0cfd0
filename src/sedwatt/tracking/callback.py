"""The tracking callback: records a training run in MLflow exactly as the run schema says.

It writes into the run that was active when training started (the train entry's ``start_run``,
which under ``mlflow run`` resumes ``MLFLOW_RUN_ID``, or an Optuna trial's nested run); the run id
is given at construction and every write names it, so nothing depends on MLflow's global state.
All writes go through a ``ResilientLogger``: if the server goes away, training continues and the
records wait in memory and in ``<out_dir>/mlflow-spool.jsonl`` (see resilient.py). Other writers of
the same run (``train_run``'s first tags, an Optuna trial's ``TrialLink``) use the same logger
through ``resilient.logger_for(spool)``; ``log`` is it once training started.

What it writes (README "What a training run records"):
- train start: params (flattened config + batch split, seed, dataset fingerprint, config name; keys
  already on the run are never re-logged, a different value goes to ``sedwatt.<key>``), tags
  (``hw.*`` from sedwatt.hardware, ``state.info["tags"]`` such as ``energy.*``; ``sedwatt.kind`` only
  if given ``kind=``: the train entry sets it, and a trial's own value must not be overwritten),
  config.yaml, and the data as an MLflow dataset input (``state.info["dataset"]``, which
  ``train_run`` fills: name = folder, digest = fingerprint, profile = clips per set; see datasets.py);
- each epoch end: one ``log_batch`` with every numeric metric at step = epoch;
- train end (also after a failure): tags again (late additions, ``sedwatt.stop_reason``), the
  curve summary from ``sedwatt.convergence.summarize_curve`` (``max_val_f1``, ``max_val_f1_epoch``, …)
  and ``best_obj_metric_epoch`` at step = last epoch, artifacts (``state.info["artifacts"]``,
  checkpoints, plots/f1_vs_energy.png), and — only when training did not fail — the best-obj_metric
  checkpoint's student as an MLflow model (pyfunc + PyTorch flavours, registry.py), registered under
  ``tracking.registered_model_name`` with a version tagged by hardware, what it is (``model``,
  ``checkpoint``, ``checkpoint_epoch``, ``checkpoint_<metric>``), the run's ``run_max_val_f1`` and
  ``run_energy_total_kwh``, config name and dataset fingerprint, and described (registry.py).

Run *status* is not set here: ``start_tracked_run`` (runs.py) ends the run FINISHED, FAILED or
KILLED (Ctrl-C), and spools that too when the server is away.

``state.info["artifacts"]`` maps a place in the run to a local file or folder (or a list of them):
``{"energy": "out/energy/epochs.csv"}`` uploads ``energy/epochs.csv``; a key ending in the file's
own name (``"energy/epochs.csv"``) means the same.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from sedwatt import names
from sedwatt.atomic import write_atomic
from sedwatt.training.callbacks import Callback, RunState

logger = logging.getLogger(__name__)

SPOOL_NAME = "mlflow-spool.jsonl"
# Params taken from state.info, where the Trainer puts them (training/loop.py ``run_info``).
INFO_PARAMS = ("batch_size", "batch_synth", "batch_weak", "batch_unlabelled", "seed", "dataset_fingerprint")


def spool_path_for(out_dir: Path) -> Path:
    return Path(out_dir) / SPOOL_NAME


def training_failed(stop_reason: str | None) -> bool:
    """The loop writes ``failed: …`` or ``interrupted``; early-stopping reasons are normal ends."""
    return bool(stop_reason) and stop_reason.startswith(("failed", "interrupted"))


def numeric_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def run_params(state: RunState) -> dict[str, str]:
    """The README's params: the flattened config, the run-level values the trainer put in ``state.info``
    (``INFO_PARAMS``: batch split, seed, dataset fingerprint) and the config's name."""
    params = dict(state.config.flat())
    params.update({key: str(state.info[key]) for key in INFO_PARAMS if state.info.get(key) is not None})
    params["config_name"] = state.config.name
    return params


def summary_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    """End-of-run metrics from the per-epoch curve: ``summarize_curve``'s fields (but ``epochs``), same names.

    Without energy (energy.enabled=false) only what the curve itself says; a target never reached,
    or a value that cannot be computed, is left out.
    """
    f1 = [epoch.get(names.VAL_F1) for epoch in history]
    if not history or any(not isinstance(v, int | float) for v in f1):
        return {}
    from sedwatt.convergence import summarize_curve

    energy = [epoch.get(names.ENERGY_CUM_KWH) for epoch in history]
    summary = summarize_curve(f1, energy, [epoch.get(names.CUM_TIME_S) for epoch in history])
    return {
        key: float(value)
        for key, value in summary.as_dict().items()
        if key != "epochs" and isinstance(value, int | float) and math.isfinite(value)
    }


def version_tags_for(state: RunState, summary: dict[str, float]) -> dict[str, str]:
    """What the registered version is (the student of the best-obj_metric checkpoint, with that epoch's
    student figures) and, named as the run's, the run's max val_f1 (teacher) and training energy."""
    tags = {names.VERSION_MODEL: "student", names.VERSION_CHECKPOINT: "best obj_metric"}
    tags["config_name"] = state.config.name
    epoch = state.best_obj_metric_epoch
    if epoch is not None and 1 <= epoch <= len(state.history):
        tags[names.VERSION_CHECKPOINT_EPOCH] = str(epoch)
        at_epoch = state.history[epoch - 1]
        for key in names.VERSION_CHECKPOINT_METRICS:
            if isinstance(at_epoch.get(key), int | float):
                tags[names.VERSION_CHECKPOINT_PREFIX + key] = repr(float(at_epoch[key]))
    for key, tag in ((names.MAX_VAL_F1, names.VERSION_RUN_MAX_VAL_F1),
                     (names.ENERGY_TOTAL_KWH, names.VERSION_RUN_ENERGY_TOTAL_KWH)):  # fmt: skip
        if key in summary:
            tags[tag] = repr(summary[key])
    if state.info.get("dataset_fingerprint"):
        tags["dataset_fingerprint"] = str(state.info["dataset_fingerprint"])
    return tags


def artifact_entries(artifacts: dict[str, Any]) -> list[tuple[Path, str | None]]:
    """``state.info["artifacts"]`` → (local path, artifact folder) pairs."""
    entries: list[tuple[Path, str | None]] = []
    for key, value in artifacts.items():
        paths = value if isinstance(value, list | tuple) else [value]
        for raw in paths:
            local = Path(raw)
            place = str(key).strip("/")
            if place and Path(place).name == local.name and not local.is_dir():
                place = str(Path(place).parent) if Path(place).parent != Path(".") else ""
            entries.append((local, place or None))
    return entries


class MLflowCallback(Callback):
    """Records one training run in MLflow run ``run_id`` (see the module docstring for what and when)."""

    def __init__(
        self,
        run_id: str,
        *,
        tracking_uri: str | None = None,
        kind: str | None = None,
        spool_path: Path | None = None,
        client: Any = None,
        retry_attempts: int = 2,
        retry_wait_s: float = 1.0,
        retry_interval_s: float = 15.0,
    ) -> None:
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.kind = kind
        self.spool_path = spool_path
        self.client = client
        self.retry_attempts = retry_attempts
        self.retry_wait_s = retry_wait_s
        self.retry_interval_s = retry_interval_s
        self.log: Any = None  # the ResilientLogger, made at train start
        self.hw_tags: dict[str, str] = {}
        self.summary: dict[str, float] = {}  # end-of-run metrics, filled at train end
        self.model_logged = False  # True once the model reached the server (False: spooled or skipped)

    # -- helpers --------------------------------------------------------------------------------
    def _tags(self, state: RunState) -> dict[str, str]:
        tags = dict(self.hw_tags)
        tags.update({str(k): str(v) for k, v in (state.info.get("tags") or {}).items()})
        if self.kind:
            tags["sedwatt.kind"] = self.kind
        if state.stop_reason:
            tags["sedwatt.stop_reason"] = state.stop_reason[:5000]
        return tags

    def _artifact(self, local: Path, place: str | None) -> None:
        from sedwatt.tracking.resilient import artifact_op

        if not local.exists():
            logger.warning("artifact %s does not exist: not logged", local)
            return
        self.log.submit(artifact_op(self.run_id, local, place))

    # -- hooks ----------------------------------------------------------------------------------
    def on_train_start(self, state: RunState) -> None:
        from sedwatt.tracking.resilient import batch_op, logger_for, params_op

        # Shared with the run's other writers (its first tags, an Optuna trial's link): one spool, one queue.
        self.log = logger_for(
            Path(self.spool_path) if self.spool_path else spool_path_for(state.out_dir),
            tracking_uri=self.tracking_uri,
            attempts=self.retry_attempts,
            wait_s=self.retry_wait_s,
            retry_interval_s=self.retry_interval_s,
            client=self.client,
        )
        from sedwatt.hardware import hardware_tags

        self.hw_tags = hardware_tags(state.config.train.device)  # the device it trains on: a CPU run says so
        self.log.submit(params_op(self.run_id, run_params(state)))
        self.log.submit(batch_op(self.run_id, tags=self._tags(state)))
        config_file = write_atomic(Path(state.out_dir) / "tracking" / "config.yaml", state.config.to_yaml())
        self._artifact(config_file, None)
        self._log_dataset(state)

    def _log_dataset(self, state: RunState) -> None:
        """The data as the run's dataset input; nothing when the run was not given where its data are."""
        from sedwatt.tracking.datasets import CONTEXT, dataset_record
        from sedwatt.tracking.resilient import log_input_op

        summary = state.info.get("dataset")
        if not summary or not summary.get("root") or not summary.get("fingerprint"):
            return
        self.log.submit(log_input_op(self.run_id, dataset_record(summary), CONTEXT))

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        from sedwatt.tracking.resilient import batch_op

        if self.log is None:
            return
        values = numeric_metrics(metrics)
        if values:
            self.log.submit(batch_op(self.run_id, values, step=state.epoch))

    def on_train_end(self, state: RunState) -> None:
        from sedwatt.tracking.resilient import batch_op

        if self.log is None:  # train start never ran
            return
        try:
            last_epoch = len(state.history)
            summary = summary_metrics(state.history)
            if state.best_obj_metric_epoch is not None:
                summary[names.BEST_OBJ_METRIC_EPOCH] = float(state.best_obj_metric_epoch)
            self.summary = summary
            self.log.submit(batch_op(self.run_id, summary, step=last_epoch, tags=self._tags(state)))
            for local, place in artifact_entries(state.info.get("artifacts") or {}):
                self._artifact(local, place)
            if state.config.tracking.log_checkpoints:
                for checkpoint in (state.best_checkpoint, state.last_checkpoint):
                    if checkpoint.is_file():
                        self._artifact(checkpoint, "checkpoints")
            self._log_plot(state)
            if state.config.tracking.log_model and state.student is not None and not training_failed(state.stop_reason):
                self._log_model(state, summary)
        finally:
            self.log.close()

    def _log_plot(self, state: RunState) -> None:
        from sedwatt.tracking.plots import plot_f1_vs_energy

        png = plot_f1_vs_energy(
            state.history,
            Path(state.out_dir) / "plots" / "f1_vs_energy.png",
            checkpoint_epoch=state.best_obj_metric_epoch,
            title=f"{state.config.name}: F1 vs energy",
        )
        if png is not None:
            self._artifact(png, "plots")

    def _log_model(self, state: RunState, summary: dict[str, float]) -> None:
        from sedwatt.tracking import registry
        from sedwatt.tracking.uri import using_tracking_uri

        model = registry.best_student(state.student, state.best_checkpoint)
        name = state.config.tracking.registered_model_name
        version_tags = {**self.hw_tags, **version_tags_for(state, summary)}
        requirements = registry.pip_requirements()
        step = int(state.best_obj_metric_epoch or 0)
        op = {
            "op": "log_model",
            "run_id": self.run_id,
            "registered_model_name": name,
            "version_tags": version_tags,
            "pip_requirements": requirements,
            "step": step,
        }

        def live() -> None:
            with using_tracking_uri(self.log.tracking_uri):
                registry.log_and_register(model, self.run_id, name, version_tags, requirements, step, state.config)

        def defer(pending: dict[str, Any]) -> dict[str, Any]:
            folder = registry.save_pending_model(
                model, Path(state.out_dir) / "tracking" / "pending_model", requirements, state.config
            )
            return {**pending, "model_dir": str(folder.resolve())}

        self.model_logged = self.log.submit(op, action=live, on_defer=defer)
