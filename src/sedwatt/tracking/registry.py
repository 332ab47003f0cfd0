"""The trained model in MLflow: logged loadable and runnable, registered, version tagged and described.

A sedwatt CRNN is logged as one MLflow model with two flavours (``sedwatt.serving.pyfunc``): the
``python_function`` one runs audio file paths to events (``mlflow.pyfunc.load_model``, ``mlflow
models predict/serve``), the ``pytorch`` one is the pickled module (``mlflow.pytorch.load_model``,
``sedwatt evaluate``). The PyTorch flavour is pickled, not torch.export'ed: torch.export needs an
input example and then freezes the clip length. Any other module (the tests' stand-ins) is logged
with the PyTorch flavour alone. When the server is down at train end, the model is saved to a local
folder and logged from there by ``sedwatt sync``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sedwatt.config import SedwattConfig

logger = logging.getLogger(__name__)

MODEL_NAME = "model"  # the LoggedModel name (models live under <experiment>/models/m-<id>/)


def pip_requirements() -> list[str]:
    """Pinned without local version labels (``torch==2.11.0+cpu`` is not installable from PyPI)."""
    import mlflow
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]


def best_student(student: Any, best_checkpoint: Path | None) -> Any:
    """A CPU, eval-mode copy of ``student`` holding the best checkpoint's weights (if there is one)."""
    student = getattr(student, "_orig_mod", student)  # torch.compile wrapper → the module itself
    model = copy.deepcopy(student).cpu()
    if best_checkpoint is not None and Path(best_checkpoint).is_file():
        from sedwatt.training.checkpoint import load_checkpoint

        model.load_state_dict(load_checkpoint(Path(best_checkpoint))["student"])
    return model.eval()


def log_model(
    model: Any, run_id: str, requirements: list[str] | None = None, step: int = 0, config: SedwattConfig | None = None
) -> str:
    """Log ``model`` for ``run_id`` (no active run needed); returns the model URI (``models:/m-…``).

    With the ``config`` it was built from, a CRNN gets the pyfunc flavour too (see the module docstring).
    """
    import os

    import mlflow
    import mlflow.pytorch

    active = mlflow.active_run()
    if active is None:
        # No active run (``sedwatt sync``): MLflow would file the LoggedModel under the Default
        # experiment (id 0), where a team server lets nobody write; file it under the run's own.
        previous = os.environ.get("MLFLOW_EXPERIMENT_ID")
        os.environ["MLFLOW_EXPERIMENT_ID"] = mlflow.MlflowClient().get_run(run_id).info.experiment_id
        try:
            return _log_model(model, run_id, requirements, step, config)
        finally:
            if previous is None:
                os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
            else:
                os.environ["MLFLOW_EXPERIMENT_ID"] = previous
    return _log_model(model, run_id, requirements, step, config)


def _log_model(model: Any, run_id: str, requirements: list[str] | None, step: int, config: SedwattConfig | None) -> str:
    import mlflow.pytorch

    from sedwatt.serving import pyfunc

    if config is not None and pyfunc.is_servable(model):
        return pyfunc.log_model(
            model, config, name=MODEL_NAME, run_id=run_id, step=step, pip_requirements=requirements or pip_requirements()
        ).model_uri
    info = mlflow.pytorch.log_model(
        model,
        name=MODEL_NAME,
        serialization_format="pickle",
        pip_requirements=requirements or pip_requirements(),
        step=step,  # links the run's metrics at this epoch to the LoggedModel
        run_id=run_id,  # forwarded to mlflow.models.Model.log
    )
    return info.model_uri


def version_description(run_id: str) -> str:
    """The version's description: what a teammate needs to pick it, from the run's logged record.

    First line: the run's max val_f1 (teacher) and what its training energy is (``describe_energy``);
    then which weights the version holds, the config, the data (folder and fingerprint) and the
    hardware it was trained on. Read from the run's metrics (old names too, names.py), params and
    tags, so a version registered later by ``sedwatt sync`` says the same.
    """
    import mlflow

    from sedwatt import names
    from sedwatt.energy.provenance import describe_energy

    data = mlflow.MlflowClient().get_run(run_id).data
    metrics, params, tags = names.with_current_names(data.metrics), data.params, data.tags
    best = metrics.get(names.MAX_VAL_F1)
    f1 = f"run max val_f1 {best:.3f} (teacher); " if best is not None else ""
    measured = "energy_total_kwh" in metrics or "energy_cum_kwh" in metrics
    lines = [f"{f1}training energy {describe_energy(metrics, tags) if measured else 'not measured'}"]
    epoch = metrics.get(names.BEST_OBJ_METRIC_EPOCH)
    if epoch is not None:
        lines.append(f"model: the student of epoch {int(epoch)}, the best obj_metric checkpoint")
    if "config_name" in params:
        folder = Path(tags["sedwatt.data"]).name if tags.get("sedwatt.data") else None
        fingerprint = params.get("dataset_fingerprint")
        where = f"data {folder}" if folder else "data"
        lines.append(f"config {params['config_name']}; {where} (fingerprint {fingerprint or 'unknown'})")
    hardware = [tags[key] for key in ("hw.cpu_model", "hw.gpu_model") if tags.get(key) and tags[key] != "none"]
    if hardware:
        lines.append(f"trained on {' + '.join(hardware)}")
    return "\n".join(lines)


def register_model_version(model_uri: str, name: str, run_id: str, version_tags: dict[str, str]) -> str:
    """A new version of registered model ``name`` from ``model_uri``, tagged and described; returns the version.

    The description is best effort: a registration never fails because of it.
    """
    import mlflow

    try:
        description = version_description(run_id)
    except Exception as exc:  # noqa: BLE001 - the version matters more than its description
        logger.warning("model version description unavailable (%s: %s)", exc.__class__.__name__, exc)
        description = None
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in version_tags.items()})
    if description:
        try:
            mlflow.MlflowClient().update_model_version(name, version.version, description=description)
        except Exception as exc:  # noqa: BLE001
            logger.warning("model version %s/%s: description not set (%s)", name, version.version, exc)
    return str(version.version)


def save_pending_model(
    model: Any, folder: Path, requirements: list[str] | None = None, config: SedwattConfig | None = None
) -> Path:
    """Save the model locally (the server is away) so that ``sedwatt sync`` can log it later."""
    import shutil

    import mlflow.pytorch

    from sedwatt.serving import pyfunc

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if config is not None and pyfunc.is_servable(model):
        pyfunc.save_model(folder, pytorch_model=model, config=config, pip_requirements=requirements or pip_requirements())
        return folder
    mlflow.pytorch.save_model(
        model, str(folder), serialization_format="pickle", pip_requirements=requirements or pip_requirements()
    )
    return folder


def log_and_register(
    model: Any,
    run_id: str,
    registered_model_name: str | None,
    version_tags: dict[str, str],
    requirements: list[str] | None = None,
    step: int = 0,
    config: SedwattConfig | None = None,
) -> str:
    """Log, then register (if named); if only the registration fails, raise ``PartialOp`` with what is left."""
    from sedwatt.tracking.resilient import PartialOp

    model_uri = log_model(model, run_id, requirements, step, config)
    if registered_model_name:
        try:
            register_model_version(model_uri, registered_model_name, run_id, version_tags)
        except Exception as exc:  # the model is logged; only the registration is left to do
            remaining = {
                "op": "register_model",
                "run_id": run_id,
                "model_uri": model_uri,
                "registered_model_name": registered_model_name,
                "version_tags": dict(version_tags),
            }
            raise PartialOp(remaining, exc) from exc
    return model_uri


def log_pending_model(op: dict[str, Any]) -> None:
    """Replay a spooled ``log_model``: load the saved folder, log it, then register it (if named).

    A folder saved with the pyfunc flavour carries its config: its CRNN is rebuilt from the state dict
    (nothing unpickled) and logged with both flavours again; an older PyTorch-only folder is logged as it was.
    """
    from sedwatt.serving.pyfunc import load_saved

    model, config = load_saved(op["model_dir"], "cpu")
    log_and_register(
        model, op["run_id"], op.get("registered_model_name"), op.get("version_tags", {}),
        op.get("pip_requirements"), int(op.get("step", 0)), config,
    )  # fmt: skip
