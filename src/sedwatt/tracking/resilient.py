"""Logging that survives a tracking-server outage: training goes on, nothing is lost.

Every write to MLflow is an *operation*, a small JSON record (log a batch, log params, upload an
artifact, record a dataset input, log the model, register it, end the run). ``ResilientLogger.submit``
tries it now, with a short tenacity retry on errors that can pass (connection refused, 5xx,
timeouts); if the server stays away the operation joins an in-memory queue **and** a JSONL spool
file on disk at once, so even a killed process keeps it. The queue is retried, in order, at every
later submit (each epoch end) and at ``close`` (train end). If the server never came back, the
spool stays with a one-line ``sedwatt sync <spool>`` hint; ``replay_spool`` (the ``sedwatt sync``
command) sends it later.

Errors that will not pass by waiting (invalid value, unknown run, permission denied) are not
retried during training; they are kept in the spool with their error so the user can see them.
Metric timestamps are fixed when the metric is produced, so a late send stores the true times.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sedwatt.atomic import write_atomic
from sedwatt.tracking.params import reconcile_params
from sedwatt.tracking.uri import redact_uri

logger = logging.getLogger(__name__)

SPOOL_VERSION = 1
TRANSIENT_CODES = frozenset(
    {
        "INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "IO_ERROR", "SERVICE_UNDER_MAINTENANCE",
        "WORKSPACE_TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED",
        "REQUEST_LIMIT_EXCEEDED", "COULD_NOT_ACQUIRE_LOCK", "UNPARSEABLE_HTTP_ERROR",
    }
)  # fmt: skip

Op = dict[str, Any]


class PartialOp(Exception):
    """Part of an operation went through; ``remaining`` is what is still to send (e.g. register after log)."""

    def __init__(self, remaining: Op, cause: BaseException) -> None:
        super().__init__(f"{remaining['op']} still to do: {cause}")
        self.remaining = remaining
        self.cause = cause


def is_transient(exc: BaseException) -> bool:
    """True for failures that waiting can cure: the server or network is away, busy or erroring."""
    if isinstance(exc, PartialOp):
        return is_transient(exc.cause)
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code in TRANSIENT_CODES
    import requests

    if isinstance(exc, requests.RequestException):
        return True
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        if isinstance(exc, BotoConnectionError | HTTPClientError):
            return True
    except ImportError:  # pragma: no cover - boto3 is a dependency
        pass
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False  # a local file problem: waiting will not fix it
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


# --- operations -----------------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def batch_op(
    run_id: str,
    metrics: dict[str, float] | None = None,
    step: int = 0,
    tags: dict[str, str] | None = None,
    timestamp_ms: int | None = None,
) -> Op:
    stamp = timestamp_ms if timestamp_ms is not None else now_ms()
    return {
        "op": "log_batch",
        "run_id": run_id,
        "metrics": [[key, float(value), stamp, int(step)] for key, value in (metrics or {}).items()],
        "tags": {key: str(value) for key, value in (tags or {}).items()},
    }


def params_op(run_id: str, params: dict[str, Any]) -> Op:
    return {"op": "log_params", "run_id": run_id, "params": {key: str(value) for key, value in params.items()}}


def artifact_op(run_id: str, local_path: Path, artifact_path: str | None) -> Op:
    """Upload a file, or a folder's contents, under ``artifact_path`` (None = the run's root)."""
    local = Path(local_path).resolve()
    return {"op": "log_artifact", "run_id": run_id, "local_path": str(local), "artifact_path": artifact_path,
            "directory": local.is_dir()}  # fmt: skip


def log_input_op(run_id: str, dataset: dict[str, str], context: str = "training") -> Op:
    """Record a dataset the run used: ``dataset`` holds the ``mlflow.entities.Dataset`` fields
    (name, digest, source_type, source, optional schema and profile), ``context`` its role."""
    return {"op": "log_input", "run_id": run_id, "dataset": dict(dataset), "context": context}


def terminate_op(run_id: str, status: str) -> Op:
    return {"op": "set_terminated", "run_id": run_id, "status": status, "end_time": now_ms()}


def apply_op(op: Op, client: Any) -> None:
    """Send one operation through ``client`` (an ``MlflowClient``); raises on failure."""
    kind = op["op"]
    run_id = op["run_id"]
    if kind == "log_batch":
        from mlflow.entities import Metric, RunTag

        client.log_batch(
            run_id,
            metrics=[Metric(key, value, int(stamp), int(step)) for key, value, stamp, step in op["metrics"]],
            tags=[RunTag(key, value) for key, value in op["tags"].items()],
            synchronous=True,
        )
    elif kind == "log_params":
        from mlflow.entities import Param

        existing = client.get_run(run_id).data.params
        to_log, renamed = reconcile_params(existing, op["params"])
        for key in renamed:
            logger.warning("param %s differs from the value already on run %s: logged as %s", key[len("sedwatt."):], run_id, key)
        merged = {**to_log, **renamed}
        if merged:
            client.log_batch(run_id, params=[Param(k, v) for k, v in merged.items()], synchronous=True)
    elif kind == "log_artifact":
        if op.get("directory"):
            client.log_artifacts(run_id, op["local_path"], op.get("artifact_path"))
        else:
            client.log_artifact(run_id, op["local_path"], op.get("artifact_path"))
    elif kind == "log_model":
        from sedwatt.tracking.registry import log_pending_model

        log_pending_model(op)
    elif kind == "register_model":
        from sedwatt.tracking.registry import register_model_version

        register_model_version(op["model_uri"], op["registered_model_name"], run_id, op.get("version_tags", {}))
    elif kind == "log_input":
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        fields = op["dataset"]
        dataset = Dataset(
            name=fields["name"], digest=fields["digest"], source_type=fields["source_type"], source=fields["source"],
            schema=fields.get("schema"), profile=fields.get("profile"),
        )  # fmt: skip
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, op["context"])] if op.get("context") else []
        client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=tags)])
    elif kind == "set_terminated":
        client.set_terminated(run_id, op["status"], end_time=op.get("end_time"))
    else:
        raise ValueError(f"unknown spooled operation {kind!r}")


# --- the spool file -----------------------------------------------------------------------


def append_to_spool(path: Path, ops: Iterable[Op]) -> None:
    """Append records and fsync: an operation on disk survives a crash of the training process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        for op in ops:
            handle.write(json.dumps(op) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_spool(path: Path) -> list[Op]:
    from sedwatt.errors import SedwattError

    if not path.is_file():
        raise SedwattError(f"{path}: spool file not found")
    ops: list[Op] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            op = json.loads(line)
        except json.JSONDecodeError:
            raise SedwattError(f"{path} line {number}: not a JSON record (torn write?); fix or delete that line") from None
        if not isinstance(op, dict) or "op" not in op or "run_id" not in op:
            raise SedwattError(f"{path} line {number}: not a sedwatt spool record")
        ops.append(op)
    return ops


def load_spool_leniently(path: Path) -> list[Op]:
    """A spool left by an earlier process (a resumed run): complete records; a torn last write is skipped."""
    ops: list[Op] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            op = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            op = None
            logger.warning("%s line %d: incomplete record (the writing process died mid-line); skipped", path, number)
        if isinstance(op, dict) and "op" in op and "run_id" in op:
            ops.append(op)
    return ops


def rewrite_spool(path: Path, ops: list[Op]) -> None:
    """Replace the spool with ``ops`` atomically, or remove it when nothing is left."""
    if not ops:
        path.unlink(missing_ok=True)
        return
    write_atomic(path, "".join(json.dumps(op) + "\n" for op in ops), fsync=True)


def sync_hint(path: Path, count: int) -> str:
    return (
        f"sedwatt: the tracking server was unreachable; {count} record(s) kept in {path}. "
        f"Send them when it is back: sedwatt sync {path}"
    )


# --- the logger ---------------------------------------------------------------------------


@dataclass
class ResilientLogger:
    """Sends operations now, or queues them (memory + spool file) until the server answers again."""

    spool_path: Path
    tracking_uri: str | None = None
    attempts: int = 2  # tries per send, on top of MLflow's own HTTP retries
    wait_s: float = 1.0
    # After a failed send, records are only queued for this long (no new attempt): during an outage
    # the end of training (tags, artifacts, model) then costs one wait, not one per record. The
    # interval doubles with each consecutive failure (up to max_retry_interval_s), so a server that
    # swallows packets (every try waits out MLFLOW_HTTP_REQUEST_TIMEOUT) is rarely waited for.
    retry_interval_s: float = 15.0
    max_retry_interval_s: float = 600.0
    client: Any = None
    queue: list[Op] = field(default_factory=list)  # not yet sent, will be retried
    rejected: list[Op] = field(default_factory=list)  # refused for good, kept in the spool
    sent: int = 0
    last_failure: float | None = None  # time.monotonic() of the last transient failure
    failures: int = 0  # consecutive transient failures

    def __post_init__(self) -> None:
        self.spool_path = Path(self.spool_path)
        if self.client is None:
            from mlflow import MlflowClient

            self.client = MlflowClient(self.tracking_uri)
        if self.tracking_uri is None:
            import mlflow

            self.tracking_uri = mlflow.get_tracking_uri()
        if self.spool_path.is_file():  # left by an earlier process of this run: it goes first
            for op in load_spool_leniently(self.spool_path):
                (self.rejected if "error" in op else self.queue).append(op)
            if self.queue or self.rejected:
                logger.warning("%s: %d record(s) from an earlier attempt will be sent first",
                               self.spool_path, len(self.queue))  # fmt: skip

    # sending -------------------------------------------------------------------------------
    def _send(self, op: Op, action: Callable[[], None] | None = None) -> None:
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

        for attempt in Retrying(
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=wait_fixed(self.wait_s),
            # a PartialOp did part of the work: repeating the whole action would do that part twice
            retry=retry_if_exception(lambda exc: not isinstance(exc, PartialOp) and is_transient(exc)),
            reraise=True,
        ):
            with attempt:
                (action or (lambda: apply_op(op, self.client)))()

    def _stamp(self, op: Op) -> Op:
        return {**op, "tracking_uri": redact_uri(str(self.tracking_uri)), "spooled_at": now_ms(), "v": SPOOL_VERSION}

    def _reject(self, op: Op, exc: BaseException) -> None:
        logger.warning("MLflow refused %s for run %s (%s); kept in %s", op["op"], op["run_id"], exc, self.spool_path)
        record = {**self._stamp(op), "error": f"{exc.__class__.__name__}: {exc}"[:500]}
        self.rejected.append(record)
        append_to_spool(self.spool_path, [record])

    def _enqueue(self, op: Op) -> None:
        record = self._stamp(op)
        self.queue.append(record)
        append_to_spool(self.spool_path, [record])

    def submit(self, op: Op, action: Callable[[], None] | None = None, on_defer: Callable[[Op], Op] | None = None) -> bool:
        """Send ``op`` now if the queue is empty and the server answers; else queue it. True if sent.

        ``action`` replaces ``apply_op`` for the live attempt (the model is still in memory then);
        ``on_defer`` turns the op into the form that can wait (a saved model, a copy of a file that is
        about to be deleted) before it is spooled; it is not applied to the rest of a half-done op.
        """
        original = op
        if self.queue:
            self.flush()
        if not self.queue:
            try:
                self._send(op, action)
                self.sent += 1
                return True
            except PartialOp as partial:
                op, exc = partial.remaining, partial.cause
            except Exception as exc_:  # noqa: BLE001 - classified below
                exc = exc_
            if not is_transient(exc):
                self._reject(on_defer(op) if on_defer is not None and op is original else op, exc)
                return False
            self._failed()
            logger.warning("tracking server unreachable (%s); %s for run %s queued in %s",
                           exc.__class__.__name__, op["op"], op["run_id"], self.spool_path)  # fmt: skip
        if on_defer is not None and op is original:
            op = on_defer(op)
        self._enqueue(op)
        return False

    def _failed(self) -> None:
        self.last_failure = time.monotonic()
        self.failures += 1

    def cooling_down(self) -> bool:
        if self.last_failure is None:
            return False
        interval = min(self.retry_interval_s * 2 ** max(self.failures - 1, 0), self.max_retry_interval_s)
        return time.monotonic() - self.last_failure < interval

    def flush(self, force: bool = False) -> int:
        """Retry the queue in order, stopping at the first transient failure; returns what is left.

        Within ``retry_interval_s`` of the last failure nothing is tried, unless ``force``.
        """
        if not self.queue or (self.cooling_down() and not force):
            return len(self.queue)
        remaining = list(self.queue)
        changed = False
        while remaining:
            op = remaining[0]
            try:
                self._send(op)
            except PartialOp as partial:
                remaining[0] = self._stamp(partial.remaining)  # the done part must not be sent twice
                changed = True
                if is_transient(partial.cause):
                    self._failed()
                    break
                self._reject(remaining.pop(0), partial.cause)
                continue
            except Exception as exc:  # noqa: BLE001
                if is_transient(exc):
                    self._failed()
                    break
                remaining.pop(0)
                self._reject(op, exc)
                changed = True
                continue
            remaining.pop(0)
            self.sent += 1
            changed = True
        if not remaining:
            self.last_failure, self.failures = None, 0
        if changed:
            self.queue = remaining
            rewrite_spool(self.spool_path, self.rejected + self.queue)
            if not self.queue:
                logger.warning("tracking server back: every queued record was sent")
        return len(self.queue)

    @property
    def pending(self) -> int:
        return len(self.queue) + len(self.rejected)

    def close(self) -> int:
        """Last flush (always tried); if records are left, say where and how to send them. Returns their count."""
        if _OPEN.get(_spool_key(self.spool_path)) is self:
            del _OPEN[_spool_key(self.spool_path)]
        self.flush(force=True)
        if self.pending:
            print(sync_hint(self.spool_path, self.pending), file=sys.stderr, flush=True)
        return self.pending


# --- one logger per spool file ----------------------------------------------------------------

# The loggers of this process's open runs, by spool file. Several writers of one run (the run's tags
# when it opens, an Optuna trial's link, the tracking callback) must share one logger: two loggers
# on one spool would each rewrite the file with only their own records, and each would wait out the
# same outage again instead of sharing the retry interval.
_OPEN: dict[Path, ResilientLogger] = {}


def _spool_key(path: Path | str) -> Path:
    return Path(path).resolve()


def logger_for(
    spool_path: Path | str,
    *,
    tracking_uri: str | None = None,
    client: Any = None,
    attempts: int | None = None,
    wait_s: float | None = None,
    retry_interval_s: float | None = None,
) -> ResilientLogger:
    """The open logger of ``spool_path`` in this process, made on first use; closing it ends the sharing.

    Settings given here apply to a logger that is already open too (the tracking callback's win over
    the defaults of the first writer); the tracking URI is the first opener's.
    """
    key = _spool_key(spool_path)
    log = _OPEN.get(key)
    if log is None:
        settings: dict[str, Any] = {"attempts": attempts, "wait_s": wait_s, "retry_interval_s": retry_interval_s}
        log = ResilientLogger(key, tracking_uri=tracking_uri, client=client,
                              **{k: v for k, v in settings.items() if v is not None})  # fmt: skip
        _OPEN[key] = log
        return log
    if client is not None:
        log.client = client
    if attempts is not None:
        log.attempts = attempts
    if wait_s is not None:
        log.wait_s = wait_s
    if retry_interval_s is not None:
        log.retry_interval_s = retry_interval_s
    return log


def close_logger(spool_path: Path | str) -> int | None:
    """Close the open logger of ``spool_path`` (if any): what a run's end does before its status is set."""
    log = _OPEN.get(_spool_key(spool_path))
    return log.close() if log is not None else None


# --- replay (``sedwatt sync``) --------------------------------------------------------------


@dataclass
class ReplayResult:
    sent: int
    left: int
    errors: list[str]


def replay_spool(path: Path, tracking_uri: str | None = None) -> ReplayResult:
    """Send a spool's records in order to ``tracking_uri`` (default: the URI each record names,
    with credentials from MLFLOW_TRACKING_USERNAME/PASSWORD). Sent records leave the file."""
    import mlflow
    from mlflow import MlflowClient

    from sedwatt.tracking.sqlite_init import prepare_sqlite_store

    path = Path(path)
    ops = read_spool(path)
    for uri in {tracking_uri or op.get("tracking_uri") or mlflow.get_tracking_uri() for op in ops}:
        prepare_sqlite_store(uri)  # a SQLite store's schema is made or checked under its lock, before any send
    clients: dict[str, Any] = {}
    left: list[Op] = []
    errors: list[str] = []
    sent = 0
    server_down = False
    for op in ops:
        uri = tracking_uri or op.get("tracking_uri") or mlflow.get_tracking_uri()
        if server_down:
            left.append(op)
            continue
        mlflow.set_tracking_uri(uri)  # log_model/register_model use the global URI
        client = clients.setdefault(uri, MlflowClient(uri))
        clean = {k: v for k, v in op.items() if k not in ("error",)}
        try:
            apply_op(clean, client)
            sent += 1
        except PartialOp as partial:
            left.append({**clean, **partial.remaining})
            errors.append(f"{op['op']} (run {op['run_id']}): {partial.cause}")
            server_down = is_transient(partial.cause)
        except Exception as exc:  # noqa: BLE001 - reported, kept in the spool
            left.append({**clean, "error": f"{exc.__class__.__name__}: {exc}"[:500]})
            errors.append(f"{op['op']} (run {op['run_id']}): {exc.__class__.__name__}: {exc}"[:300])
            server_down = is_transient(exc)
    rewrite_spool(path, left)
    return ReplayResult(sent=sent, left=len(left), errors=errors)
