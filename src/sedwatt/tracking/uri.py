"""Where runs go: ``MLFLOW_TRACKING_URI`` if set, else one fixed SQLite store for the whole project.

MLflow's own default is ``./mlflow.db`` in whatever folder a script was started from, so runs
scatter across databases. sedwatt's default is the project root's ``mlruns.db`` (the checkout
holding MLproject), with artifacts in ``mlartifacts/`` beside it; an installed (non-checkout)
sedwatt uses ``~/.sedwatt/mlruns.db``. A SQLite store also gives new experiments an artifact
location relative to the *current* directory, so experiments are created here with an explicit
location next to the database.

A SQLite store's schema is created or checked under a file lock beside it before MLflow first opens
it in a process (``sqlite_init.prepare_sqlite_store``): jobs started together on a new file would
otherwise all migrate it at once and leave it half-migrated.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

DB_NAME = "mlruns.db"
ARTIFACTS_DIR = "mlartifacts"
PROJECT_MARKERS = ("MLproject", "pyproject.toml")

# A dead server should cost seconds, not MLflow's default ~2 minutes of retries: the resilient
# logger spools what could not be sent. Only defaults: a user's own settings win.
FAIL_FAST_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def package_dir() -> Path:
    import sedwatt

    return Path(sedwatt.__file__).resolve().parent


def project_root(package: Path | None = None) -> Path | None:
    """The checkout sedwatt runs from (src/sedwatt/../..), or None when installed elsewhere."""
    candidate = (package or package_dir()).parent.parent
    if any((candidate / marker).is_file() for marker in PROJECT_MARKERS) and (candidate / "src" / "sedwatt").is_dir():
        return candidate
    return None


def project_home(package: Path | None = None) -> Path:
    """Where the project's local stores live: the checkout, else ``~/.sedwatt``."""
    root = project_root(package)
    return root if root is not None else Path.home() / ".sedwatt"


def default_store_path(package: Path | None = None) -> Path:
    return project_home(package) / DB_NAME


def default_tracking_uri(package: Path | None = None) -> str:
    return f"sqlite:///{default_store_path(package)}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URI (relative paths are relative to the CWD, as for SQLite)."""
    if not uri.startswith("sqlite:"):
        return None
    path = urlsplit(uri).path
    if not path or path == "/:memory:":
        return None
    # sqlite:///rel.db → "/rel.db"; sqlite:////abs.db → "//abs.db"
    path = unquote(path[1:])
    return Path(path).resolve()


def local_artifact_root(uri: str) -> Path | None:
    db = sqlite_path(uri)
    return db.parent / ARTIFACTS_DIR if db is not None else None


def configure_tracking() -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or the project store, and make HTTP fail fast; returns the URI.

    Creates nothing: the SQLite file appears with the first experiment (``ensure_experiment``). An
    existing SQLite file has its schema checked (and finished, if MLflow needs to) under its lock.
    """
    import mlflow

    from sedwatt.tracking.sqlite_init import prepare_sqlite_store

    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    for key, value in FAIL_FAST_HTTP.items():
        os.environ.setdefault(key, value)
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        prepare_sqlite_store(uri, create=False)
    mlflow.set_tracking_uri(uri)  # also exports MLFLOW_TRACKING_URI to child processes
    return uri


# The experiment's description in the MLflow UI (its "note"): where a newcomer finds F1 and energy.
NOTE_TAG = "mlflow.note.content"
EXPERIMENT_NOTE = (
    "sedwatt runs: the DCASE 2022 Task 4 baseline (mean-teacher CRNN) trained with its F1 and energy logged "
    "every epoch.\n\n"
    "- Open a run, tab **Model metrics**: `val_f1` (teacher intersection F1, the paper's figure) and "
    "`energy_cum_kwh` (energy so far), both with step = epoch; `energy_kwh` is each epoch's energy.\n"
    "- End-of-run figures: `max_val_f1`, `energy_total_kwh`, `energy_at_95pct_max_kwh`; the run's tags "
    "`energy.*` say how each energy figure was measured (a reading or an estimate).\n"
    "- Compare runs: select them, **Compare**, or `sedwatt analyze --experiment NAME --out DIR` for the paper's "
    "tables and plots.\n"
    "- Search studies: runs with `sedwatt.kind = search` hold the Pareto front; their trials are nested under them."
)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "experiment"


def ensure_experiment(name: str, tracking_uri: str | None = None) -> str:
    """Id of experiment ``name``, created if missing (beside the DB for SQLite stores)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from sedwatt.tracking.sqlite_init import prepare_sqlite_store

    uri = tracking_uri or mlflow.get_tracking_uri()
    artifact_root = local_artifact_root(uri)
    prepare_sqlite_store(uri)  # a new file: its schema (and Default experiment beside the DB) under the lock
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (artifact_root / _slug(name)).as_uri() if artifact_root is not None else None
    try:
        return client.create_experiment(name, artifact_location=location, tags={NOTE_TAG: EXPERIMENT_NOTE})
    except MlflowException:
        experiment = client.get_experiment_by_name(name)  # another process created it first
        if experiment is None:
            raise
        return experiment.experiment_id


def redact_uri(uri: str) -> str:
    """The URI without any ``user:password@`` part: safe to write into files and logs."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def using_tracking_uri(uri: str | None) -> Iterator[None]:
    """Temporarily point MLflow's global URI at ``uri`` (model logging/registration only read the global)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    if not uri or uri == previous:
        yield
        return
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
