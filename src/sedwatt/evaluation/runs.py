"""What ``evaluate`` and ``calibrate`` share around MLflow and their output folder.

Both compute everything first and open their MLflow run only to record it, so bad input or a
crash in inference never leaves a half-made run. A user-given ``--out`` folder is filled under a
temporary name and renamed at the end, so it never holds half an evaluation either.

Opening the run needs the server; every write after that goes through the outage-proof path that
training uses (``RunRecorder``): if the server goes away, the records wait in
``<train.out_dir>/<run_id>/mlflow-spool.jsonl`` for ``sedwatt sync``, and the files they upload are
copied beside it (the work folder may be a temporary one that is about to be deleted).
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


class RunRecorder:
    """Writes one run's tags, params, metrics and files through the run's ``ResilientLogger``.

    Params already on the run (``mlflow run`` logs its own) are not logged again; a different value
    goes to ``sedwatt.<key>``, as for training runs.
    """

    def __init__(self, run: Any, spool_path: Path) -> None:
        from sedwatt.tracking.resilient import logger_for

        self.run = run
        self.run_id: str = run.info.run_id
        self.spool_path = Path(spool_path)
        self.log = logger_for(self.spool_path)
        self._texts = Path(tempfile.mkdtemp(prefix="sedwatt-run-text-"))
        self._kept = 0

    def set_tags(self, tags: dict[str, Any]) -> None:
        from sedwatt.tracking.resilient import batch_op

        self.log.submit(batch_op(self.run_id, tags={k: str(v) for k, v in tags.items()}))

    def log_params(self, params: dict[str, Any]) -> None:
        from sedwatt.tracking.resilient import params_op

        self.log.submit(params_op(self.run_id, params))

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from sedwatt.tracking.resilient import batch_op

        if metrics:
            self.log.submit(batch_op(self.run_id, metrics, step=step))

    def log_text(self, text: str, artifact_file: str) -> None:
        local = self._texts / artifact_file
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text, encoding="utf-8")
        parent = str(Path(artifact_file).parent)
        self.log_artifact(local, None if parent == "." else parent)

    def log_artifact(self, local: Path | str, artifact_path: str | None = None) -> None:
        """A file, or a folder's contents, under ``artifact_path`` (None: the run's root)."""
        from sedwatt.tracking.resilient import artifact_op

        self.log.submit(artifact_op(self.run_id, Path(local), artifact_path), on_defer=self._keep)

    def _keep(self, op: dict[str, Any]) -> dict[str, Any]:
        """A deferred upload's file is copied beside the spool: the work folder may be deleted before the send."""
        if op.get("op") != "log_artifact":
            return op
        self._kept += 1
        source = Path(op["local_path"])
        target = self.spool_path.parent / "pending" / f"{self._kept:03d}" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return {**op, "local_path": str(target)}

    def close(self) -> int:
        """Send what is queued (or leave it in the spool with a ``sedwatt sync`` hint); returns what is left."""
        try:
            return self.log.close()
        finally:
            shutil.rmtree(self._texts, ignore_errors=True)


@contextlib.contextmanager
def open_run(
    *,
    experiment_id: str,
    run_name: str | None,
    spool_root: Path | str,
    parent_run_id: str | None = None,
    resume_project_run: bool = True,
) -> Iterator[RunRecorder]:
    """A new run in ``experiment_id`` (nested under ``parent_run_id``), ended FINISHED/FAILED/KILLED.

    Yields the run's ``RunRecorder``, spooling to ``<spool_root>/<run_id>/`` during an outage (the
    final status too). Under ``mlflow run`` (``MLFLOW_RUN_ID`` set) the project's run is resumed
    instead when ``resume_project_run``; the caller then sets the parent tag itself.
    """
    from sedwatt.tracking import spool_path_for, start_tracked_run

    root = Path(spool_root).resolve()

    def spool(run_id: str) -> Path:
        return spool_path_for(root / run_id)

    project_run = os.environ.get("MLFLOW_RUN_ID") if resume_project_run else None
    kwargs: dict[str, Any] = {"run_id": project_run}
    if not project_run:
        kwargs = {"experiment_id": experiment_id, "run_name": run_name}
        if parent_run_id:
            kwargs["parent_run_id"] = parent_run_id
    # The run ends with its status after the recorder closed: queued records go first.
    with start_tracked_run(spool_path=spool, resume_project_run=resume_project_run, **kwargs) as run:
        recorder = RunRecorder(run, spool(run.info.run_id))
        try:
            yield recorder
        finally:
            recorder.close()


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
