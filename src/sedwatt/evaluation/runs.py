"""What ``evaluate`` and ``calibrate`` share around MLflow and their output folder.

Both compute everything first and open their MLflow run only to record it, so bad input or a
crash in inference never leaves a half-made run. A user-given ``--out`` folder is filled under a
temporary name and renamed at the end, so it never holds half an evaluation either.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sedwatt.errors import SedwattError


def check_out_dir(out: Path | str | None) -> Path | None:
    """``--out`` must be new or empty; checked before any work starts."""
    if out is None:
        return None
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SedwattError(f"--out {out}: already exists and is not an empty folder")
    return out


@contextlib.contextmanager
def output_folder(out: Path | None, prefix: str) -> Iterator[Path]:
    """A work folder: renamed to ``out`` when the block succeeds, removed otherwise (or always, without ``out``)."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix=f"sedwatt-{prefix}-") as folder:
            yield Path(folder)
        return
    out = check_out_dir(out)
    assert out is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if out.is_dir():
        out.rmdir()  # empty, as checked
    os.replace(work, out)


@contextlib.contextmanager
def open_run(
    *,
    experiment_id: str,
    run_name: str | None,
    parent_run_id: str | None = None,
    resume_project_run: bool = True,
) -> Iterator[Any]:
    """A new run in ``experiment_id`` (nested under ``parent_run_id``), ended FINISHED/FAILED/KILLED.

    Under ``mlflow run`` (``MLFLOW_RUN_ID`` set) the project's run is resumed instead when
    ``resume_project_run``; the caller then sets the parent tag itself.
    """
    from sedwatt.tracking import start_tracked_run

    project_run = os.environ.get("MLFLOW_RUN_ID")
    if project_run and resume_project_run:
        with start_tracked_run(run_id=project_run) as run:
            yield run
        return
    kwargs: dict[str, Any] = {"experiment_id": experiment_id, "run_name": run_name}
    if parent_run_id:
        kwargs["parent_run_id"] = parent_run_id
    saved = os.environ.pop("MLFLOW_RUN_ID", None)  # start_run would otherwise resume that run
    try:
        tracked = start_tracked_run(**kwargs)
        run = tracked.__enter__()
    finally:
        if saved is not None:
            os.environ["MLFLOW_RUN_ID"] = saved
    with contextlib.ExitStack() as stack:
        stack.push(tracked)  # ends the run with the right status, whatever happens below
        yield run


def log_params_once(params: dict[str, Any]) -> None:
    """Log params to the active run, skipping (or renaming) keys ``mlflow run`` already logged."""
    import mlflow

    from sedwatt.tracking.params import reconcile_params

    run = mlflow.active_run()
    existing = mlflow.MlflowClient().get_run(run.info.run_id).data.params if run else {}
    to_log, renamed = reconcile_params(existing, {k: str(v) for k, v in params.items()})
    if to_log or renamed:
        mlflow.log_params({**to_log, **renamed})


def finite(metrics: dict[str, float | None]) -> dict[str, float]:
    """The metrics MLflow can store: numbers that are not NaN or infinite."""
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def json_safe(tree: Any) -> Any:
    """NaN/inf → None, so the per-class JSON stays valid JSON."""
    if isinstance(tree, dict):
        return {str(k): json_safe(v) for k, v in tree.items()}
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree
