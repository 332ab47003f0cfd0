"""Opening and closing the MLflow run around training, with a status that tells what happened.

``mlflow.start_run()`` as a context manager ends a run FAILED for any exception, Ctrl-C included,
and its ``end_run`` raises if the server is away at that moment (after training succeeded).
``start_tracked_run`` ends it FINISHED, KILLED (KeyboardInterrupt) or FAILED, and when the server
cannot be reached it appends the status change to the run's spool, for ``sedwatt sync``.
Under ``mlflow run`` it resumes the project's run (``MLFLOW_RUN_ID``), as ``start_run`` does.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sedwatt.errors import SedwattError

logger = logging.getLogger(__name__)


def end_run_safely(run_id: str, status: str, spool_path: Path | None = None) -> bool:
    """End ``run_id`` with ``status``; if the server is away, spool it. True if the server took it.

    A logger still open on ``spool_path`` (training failed before its tracker closed it) is closed
    first, so its queued records go out, or stay in the spool, before the status.
    """
    import mlflow

    from sedwatt.tracking.resilient import (
        append_to_spool,
        close_logger,
        now_ms,
        read_spool,
        sync_hint,
        terminate_op,
    )
    from sedwatt.tracking.uri import redact_uri

    if spool_path is not None:
        close_logger(spool_path)
    try:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status)  # pops MLflow's run stack before it calls the server
        else:
            mlflow.MlflowClient().set_terminated(run_id, status)
        return True
    except Exception as exc:  # noqa: BLE001 - the run's data must not be lost for a status
        if spool_path is None:
            logger.warning("could not end MLflow run %s as %s: %s", run_id, status, exc)
            return False
        op = {**terminate_op(run_id, status), "tracking_uri": redact_uri(mlflow.get_tracking_uri()), "spooled_at": now_ms()}
        append_to_spool(Path(spool_path), [op])
        print(sync_hint(Path(spool_path), len(read_spool(Path(spool_path)))), file=sys.stderr, flush=True)
        return False


def write_denied(start_run_kwargs: dict[str, Any]) -> str:
    """The one line for a run this user may not create or resume (the team server's READ default)."""
    import os

    import mlflow

    from sedwatt.tracking.uri import redact_uri

    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
    server = redact_uri(mlflow.get_tracking_uri())
    if start_run_kwargs.get("run_id"):
        return f"run {start_run_kwargs['run_id']} on {server}: {user} may read it but not write to it (it is someone else's)"
    experiment = start_run_kwargs.get("experiment_id")
    try:
        name = mlflow.MlflowClient().get_experiment(experiment).name if experiment else "the default experiment"
    except Exception:  # noqa: BLE001 - the id is enough to act on
        name = f"experiment {experiment}"
    return (
        f"experiment {name!r} on {server}: {user} may read it but not write to it (another user created it); "
        "use --experiment NAME of your own, or ask its owner to grant you EDIT (README: sharing an experiment)"
    )


@contextlib.contextmanager
def start_tracked_run(
    *,
    spool_path: Path | Callable[[str], Path] | None = None,
    resume_project_run: bool = True,
    **start_run_kwargs: Any,
) -> Iterator[Any]:
    """``with start_tracked_run(experiment_id=…, run_name=…, nested=…) as run:`` — see module docstring.

    ``spool_path`` may be a function of the run id, for spools that live in a per-run folder.
    ``resume_project_run=False``: a new run even under ``mlflow run`` (``MLFLOW_RUN_ID`` is ignored
    while the run starts, and left as it was for what follows).
    """
    import os

    import mlflow
    from mlflow.exceptions import MlflowException

    project_run = None if resume_project_run else os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        run = mlflow.start_run(**start_run_kwargs)
    except MlflowException as exc:
        if exc.error_code == "PERMISSION_DENIED":
            raise SedwattError(write_denied(start_run_kwargs)) from None
        raise
    finally:
        if project_run is not None:
            os.environ["MLFLOW_RUN_ID"] = project_run
    if callable(spool_path):
        spool_path = spool_path(run.info.run_id)
    status = "FINISHED"
    try:
        yield run
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        end_run_safely(run.info.run_id, status, spool_path)
