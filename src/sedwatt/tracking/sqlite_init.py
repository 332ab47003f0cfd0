"""A new SQLite store gets its schema from one process at a time: ``<db>.lock`` around the first opening.

MLflow creates (migrates through ~60 Alembic revisions) the schema of a new SQLite tracking file when
the first ``SqlAlchemyStore`` on it is built, and Optuna when the first ``RDBStorage`` is; neither
guards against another process doing the same at that moment. Jobs started together on a new file
then collide ("table _alembic_tmp_metrics already exists", "Online migration expected to match one
row") and leave it half-migrated: 4 ``ensure_experiment`` calls started at once on a new file failed
3 or 4 of 4, three times out of three. Here every process opens a SQLite store for the first time
while holding an inter-process file lock beside it (released by the OS when its holder dies): the
first one builds the schema, the others find it complete, and later use needs no lock.

A store a race (or an interrupted upgrade) left half-migrated is not repaired: it is reported as one
line naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sedwatt.errors import SedwattError, first_line

logger = logging.getLogger(__name__)

# A new MLflow schema takes ~2 s alone and ~10 s with four jobs on two cores; much longer means a hung holder.
LOCK_TIMEOUT_S = 600.0
TMP_PREFIX = "_alembic_tmp_"  # Alembic's scratch copy of a table during a SQLite batch migration
MLFLOW_TABLES = frozenset({"experiments", "runs", "metrics"})  # enough to tell the two kinds of file apart
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})

_prepared: set[Path] = set()  # tracking stores this process has created or checked


def lock_path(db: Path) -> Path:
    return db.with_name(f"{db.name}.lock")


@contextlib.contextmanager
def store_lock(db: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``<db>.lock`` while a schema is created or checked; the one lock both MLflow and Optuna files use.

    Where no lock file can be made (a read-only folder), nothing can create a schema there either:
    the store is opened without the lock.
    """
    from filelock import FileLock, Timeout

    db.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(db)), timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout:
        raise SedwattError(
            f"{db}: another process held {lock_path(db).name} for over {timeout_s:.0f} s while creating or "
            "checking this store's schema; wait for it to finish or stop it, then retry"
        ) from None
    except OSError as exc:
        logger.debug("%s: no lock file (%s); opening the store without it", db, exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class Schema:
    """What a SQLite file holds, read without changing it."""

    tables: frozenset[str] = frozenset()
    versions: tuple[str, ...] | None = None  # rows of alembic_version; None: no such table
    runs: int | None = None  # rows of MLflow's runs table, when there is one
    leftovers: tuple[str, ...] = field(default=())  # Alembic scratch tables of an interrupted migration

    @property
    def data_tables(self) -> frozenset[str]:
        return frozenset(t for t in self.tables if not t.startswith(("alembic_", TMP_PREFIX, "sqlite_")))


def read_schema(db: Path) -> Schema:
    """The tables of ``db`` (an empty Schema for a missing or empty file), read-only."""
    if not db.is_file() or db.stat().st_size == 0:
        return Schema()
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)) as con:
            tables = frozenset(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
            versions = (
                tuple(r[0] for r in con.execute("SELECT version_num FROM alembic_version"))
                if "alembic_version" in tables
                else None
            )
            runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else None
    except sqlite3.DatabaseError as exc:
        raise SedwattError(f"{db}: not a readable SQLite database ({exc})") from None
    leftovers = tuple(sorted(t for t in tables if t.startswith(TMP_PREFIX)))
    return Schema(tables, versions, runs, leftovers)


def half_migrated(db: Path, what: str, detail: str, runs: int | None = None) -> SedwattError:
    """The one-line report of a schema that jobs racing to create it (or an interrupted upgrade) left unfinished."""
    held = "" if runs is None else f"; it holds {runs} run(s)"
    return SedwattError(
        f"{what} {db}: half-migrated schema ({detail}{held}), left by jobs that created it at the same moment "
        f"or by an interrupted upgrade; delete it if it holds nothing you need, "
        "or restore a backup"
    )


def _mlflow_head() -> str | None:
    try:
        from mlflow.store.db.utils import _get_latest_schema_revision

        return str(_get_latest_schema_revision())
    except Exception:  # noqa: BLE001 - private MLflow helper: without it, MLflow's own check decides
        return None


def _check_mlflow_schema(db: Path, schema: Schema) -> None:
    """Refuse what MLflow would make worse: Alembic scratch tables of an unfinished migration, no version."""
    if schema.tables >= OPTUNA_TABLES and "runs" not in schema.tables:
        raise SedwattError(f"tracking store {db}: this is an Optuna storage, not an MLflow tracking store")
    if not schema.data_tables:  # new (or empty) file: MLflow creates the schema
        if schema.versions or schema.leftovers:
            raise half_migrated(db, "tracking store", f"alembic_version {list(schema.versions or [])} but no tables")
        return
    if schema.versions is None or len(schema.versions) != 1:
        found = "no alembic_version table" if schema.versions is None else f"alembic_version rows {list(schema.versions)}"
        raise half_migrated(db, "tracking store", found, schema.runs)
    head = _mlflow_head()
    if schema.leftovers and head is not None and schema.versions[0] != head:
        raise half_migrated(
            db, "tracking store", f"left-over {', '.join(schema.leftovers)} at revision {schema.versions[0]}", schema.runs
        )


def _build_mlflow_store(uri: str, db: Path, artifact_root: Path, schema: Schema) -> Any:
    """MLflow's store on ``uri``: builds a new schema (artifacts of its Default experiment beside the DB)."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    try:
        return SqlAlchemyStore(uri, artifact_root.as_uri())
    except MlflowException as exc:
        message = exc.message.split(". ")[0]
        if "out-of-date database schema" in message:
            raise SedwattError(
                f"tracking store {db}: {message} (made by an older MLflow); back it up, then run "
                f"`mlflow db upgrade {uri}`"
            ) from None
        raise half_migrated(db, "tracking store", first_line(exc), schema.runs) from None
    except Exception as exc:  # noqa: BLE001 - Alembic/SQLAlchemy failing on the file's schema
        if "unable to open database file" in str(exc) or "database is locked" in str(exc):
            raise SedwattError(f"tracking store {db}: cannot open it ({first_line(exc)})") from None
        raise half_migrated(db, "tracking store", first_line(exc), schema.runs) from None


def _drop_leftovers(store: Any, db: Path, leftovers: tuple[str, ...]) -> None:
    """Scratch tables beside a complete schema (a racing job died, another finished): they would break
    the next ``mlflow db upgrade``, which makes a scratch table of the same name."""
    import sqlalchemy as sa

    with store.engine.begin() as con:
        for table in leftovers:
            con.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    logger.warning("%s: dropped %s, left by an interrupted schema migration (the schema is complete)",
                   db, ", ".join(leftovers))  # fmt: skip


def prepare_sqlite_store(uri: str, *, create: bool = True) -> None:
    """Create or check the MLflow schema of a SQLite tracking store under ``<db>.lock``, once per process.

    After this the schema is current, so any number of processes may open the store at once.
    ``create=False`` leaves a missing file missing (commands that only read runs). Not SQLite: nothing.
    A half-migrated store raises ``SedwattError``.
    """
    from sedwatt.tracking.uri import local_artifact_root, sqlite_path

    db = sqlite_path(uri)
    artifact_root = local_artifact_root(uri)
    if db is None or artifact_root is None:
        return
    if db in _prepared and db.is_file():
        return
    if not create and not db.is_file():
        return
    with store_lock(db):
        schema = read_schema(db)
        _check_mlflow_schema(db, schema)
        store = _build_mlflow_store(uri, db, artifact_root, schema)
        try:
            if schema.leftovers:
                _drop_leftovers(store, db, schema.leftovers)
        finally:
            store.engine.dispose()
    _prepared.add(db)


def check_optuna_schema(db: Path) -> Schema:
    """Refuse an Optuna file left with Alembic scratch tables or several versions (Optuna itself stamps
    a file whose version is missing)."""
    schema = read_schema(db)
    if schema.tables >= MLFLOW_TABLES:
        raise SedwattError(f"--storage {db}: this is an MLflow tracking store, not an Optuna storage")
    if schema.leftovers:
        raise half_migrated(db, "--storage", f"left-over {', '.join(schema.leftovers)}")
    if schema.versions is not None and len(schema.versions) > 1:
        raise half_migrated(db, "--storage", f"alembic_version rows {list(schema.versions)}")
    return schema
