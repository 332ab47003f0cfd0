"""Where a study lives: an Optuna RDB storage with heartbeats, opened safely by several workers at once.

Default: one SQLite file at the project root (``optuna.db``, beside ``mlruns.db``); a shared study
uses ``postgresql+psycopg://user:pass@host/db`` (psycopg 3; plain ``postgresql://`` maps to it too
with SQLAlchemy 2.1). Heartbeats are what let a surviving worker notice a killed one: a RUNNING trial
whose heartbeat is older than the grace period is marked FAIL and ``RetryHeartbeatStaleTrialCallback``
queues its parameters again (docs/stack.md §2). Two workers creating a *fresh* schema at the same
moment collide on PostgreSQL's enum types or SQLite's ``alembic_version`` (docs/stack.md §3,
reproduced here: 3 of 6 three-way PostgreSQL races and 2 of 4 SQLite ones failed; SQLite also says
"table … already exists"); the loser simply retries once the winner is done. A SQLite file is also
opened under its ``<db>.lock`` (``sedwatt.tracking.sqlite_init``, the lock the MLflow store uses), so
its schema is made by one process while the others wait, and a file a race left damaged is reported.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from sedwatt.errors import SedwattError, first_line
from sedwatt.tracking.sqlite_init import check_optuna_schema, half_migrated, store_lock
from sedwatt.tracking.uri import sqlite_path

OPTUNA_DB_NAME = "optuna.db"


def default_storage() -> str:
    from sedwatt.tracking import project_home

    return f"sqlite:///{project_home() / OPTUNA_DB_NAME}"


@contextlib.contextmanager
def quiet_optuna_warnings() -> Iterator[None]:
    """Heartbeats, retries, metric names and the GP sampler are all 'experimental' in Optuna 5."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def where_from(url: str) -> str:
    """How the user gave the storage, for error lines: the environment variable or the flag."""
    import os

    return "SEDWATT_OPTUNA_STORAGE" if url and os.environ.get("SEDWATT_OPTUNA_STORAGE") == url else "--storage"


def safe_url(url: str) -> str:
    """A storage URL without its password, for messages and tags."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy understands: show the host part only
        return url.split("@")[-1]


def open_storage(url: str, *, heartbeat_interval: int, grace_period: int, max_retry: int | None) -> Any:
    """An ``RDBStorage`` with heartbeats and retry of stale trials; user errors become ``SedwattError``."""
    import sqlalchemy.exc
    from alembic.util import CommandError
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random

    if heartbeat_interval < 1 or grace_period <= heartbeat_interval:
        raise SedwattError(
            f"--heartbeat-interval {heartbeat_interval} / --grace-period {grace_period}: "
            "need an interval of at least 1 s and a grace period longer than it"
        )

    def schema_race(exc: BaseException) -> bool:
        """Errors of two processes creating the same schema (or SQLite's writer lock); not auth or network."""
        if isinstance(exc, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError):
            return True
        # SQLite reports a table another process just created, and its writer lock, as OperationalError.
        return isinstance(exc, sqlalchemy.exc.OperationalError) and any(
            text in str(exc) for text in ("already exists", "database is locked")
        )

    @retry(
        retry=retry_if_exception(schema_race),
        stop=stop_after_attempt(6),
        wait=wait_random(0.2, 1.5),
        reraise=True,
    )
    def connect() -> Any:
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
        )

    db = sqlite_path(url)
    try:
        with quiet_optuna_warnings():
            if db is None:
                return connect()
            with store_lock(db):  # one process makes a new file's schema, the others find it done
                schema = check_optuna_schema(db)
                try:
                    return connect()
                except (sqlalchemy.exc.DBAPIError, RuntimeError, CommandError) as exc:
                    if "storage upgrade" in str(exc):  # made by an older Optuna: complete, just old
                        raise SedwattError(
                            f"{where_from(url)} {db}: made by an older Optuna ({first_line(exc)}); back it up, then "
                            f"run `optuna storage upgrade --storage {url}`"
                        ) from None
                    if not schema.tables or any(t in str(exc) for t in ("unable to open", "database is locked")):
                        raise  # not the file's schema: reported below
                    raise half_migrated(db, where_from(url), first_line(exc)) from None
    except (sqlalchemy.exc.ArgumentError, ImportError, ValueError) as exc:
        hint = " (psycopg 3 is what sedwatt installs: use postgresql+psycopg://)" if "psycopg2" in url else ""
        raise SedwattError(f"{where_from(url)} {safe_url(url)}: cannot open it ({exc.__class__.__name__}: {exc}){hint}") from None
    except sqlalchemy.exc.OperationalError as exc:
        raise SedwattError(f"{where_from(url)} {safe_url(url)}: cannot reach it ({first_line(exc)})") from None
