"""Per-epoch metric histories of many runs in one pass, whatever the tracking URI.

MLflow's client only offers ``get_metric_history`` (one request per metric per run: ~60 ms each over
HTTP, so 1,000 runs × 3 metrics ≈ 3 minutes). Faster routes, chosen by the URI's scheme:

- ``http(s)://`` (a tracking server): the REST bulk route
  ``/api/2.0/mlflow/metrics/get-history-bulk-interval`` with ≤ 100 run ids per request and up to
  2,500 points per run (the server's limits), requests sent from a small thread pool. A run that
  returns 2,500 points may have been down-sampled by the server, so it alone is re-read in full
  with ``get_metric_history``.
- ``sqlite:``, ``postgresql:``, ``mysql:``, ``mssql:`` (no server: the client *is* the store): one
  SQL query on the store's ``metrics`` table through SQLAlchemy, chunked by run ids — what MLflow's
  own SqlAlchemyStore does for one run, done for all runs at once.
- anything else (``file:``, ``databricks``…): ``MlflowClient.get_metric_history`` per run and key.

All routes return the same long table: run_id, key, step, timestamp, value (NaN where MLflow stored
NaN). ``curves`` then keeps, per run, the last value logged at each step (a resumed run may log an
epoch twice) and aligns the keys on the steps at which the F1 curve was logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

CURVE_KEYS: tuple[str, ...] = ("val_f1", "energy_cum_kwh", "cum_time_s")
BULK_ROUTE = "/api/2.0/mlflow/metrics/get-history-bulk-interval"
BULK_MAX_RUNS = 100  # MAX_RUNS_GET_METRIC_HISTORY_BULK in mlflow/server/handlers.py
BULK_MAX_POINTS = 2500  # MAX_RESULTS_PER_RUN: beyond it the server samples the curve
SQL_CHUNK = 500  # run ids per IN (...) list: far below every backend's parameter limit
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql")
HISTORY_COLUMNS = ["run_id", "key", "step", "timestamp", "value"]
# MLflow's SQL store writes ±inf as ±max double (sanitize_metric_value).
_FLOAT_MAX = np.finfo(float).max


def fetch_route(tracking_uri: str) -> str:
    scheme = urlsplit(tracking_uri).scheme.lower().split("+", 1)[0]
    if scheme in ("http", "https"):
        return "rest-bulk"
    if scheme in SQL_SCHEMES:
        return "sql"
    return "client"


def chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _frame(rows: list[tuple] | pd.DataFrame) -> pd.DataFrame:
    frame = (
        rows[HISTORY_COLUMNS]
        if isinstance(rows, pd.DataFrame)
        else pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    )
    return frame.astype(
        {"run_id": str, "key": str, "step": "int64", "timestamp": "int64", "value": "float64"}
    )


# --- the SQL store ------------------------------------------------------------------------------


def fetch_sql(tracking_uri: str, run_ids: Sequence[str], keys: Sequence[str]) -> pd.DataFrame:
    """One SELECT per chunk of run ids on the store's ``metrics`` table."""
    import sqlalchemy as sa

    engine = sa.create_engine(tracking_uri)
    metrics = sa.table(
        "metrics",
        sa.column("run_uuid"),
        sa.column("key"),
        sa.column("step"),
        sa.column("timestamp"),
        sa.column("value"),
        sa.column("is_nan"),
    )
    rows: list[Any] = []
    try:
        with engine.connect() as connection:
            for chunk in chunks(list(run_ids), SQL_CHUNK):
                query = sa.select(
                    metrics.c.run_uuid, metrics.c.key, metrics.c.step, metrics.c.timestamp, metrics.c.value,
                    metrics.c.is_nan,
                ).where(metrics.c.key.in_(list(keys)), metrics.c.run_uuid.in_(list(chunk)))  # fmt: skip
                rows.extend(connection.execute(query).all())
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=[*HISTORY_COLUMNS, "is_nan"])
    frame["value"] = frame["value"].astype("float64")
    frame.loc[frame["is_nan"].astype(bool), "value"] = np.nan
    frame.loc[frame["value"] >= _FLOAT_MAX, "value"] = np.inf
    frame.loc[frame["value"] <= -_FLOAT_MAX, "value"] = -np.inf
    return _frame(frame)


# --- a tracking server ---------------------------------------------------------------------------


def fetch_rest_bulk(
    tracking_uri: str, run_ids: Sequence[str], keys: Sequence[str], workers: int = 4, client: Any = None
) -> pd.DataFrame:
    """The bulk-interval route, ≤ 100 runs and one key per request, a few requests in flight."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request_safe

    creds = get_default_host_creds(tracking_uri)

    def one_request(job: tuple[Sequence[str], str]) -> list[tuple]:
        chunk, key = job
        response = http_request_safe(
            creds,
            BULK_ROUTE,
            "GET",
            params={"run_ids": list(chunk), "metric_key": key, "max_results": BULK_MAX_POINTS},
        )
        return [
            (m["run_id"], m["key"], int(m.get("step", 0)), int(m.get("timestamp", 0)), float(m["value"]))
            for m in response.json().get("metrics", [])
        ]

    jobs = [(chunk, key) for chunk in chunks(list(run_ids), BULK_MAX_RUNS) for key in keys]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        parts = list(pool.map(one_request, jobs))
    frame = _frame([row for part in parts for row in part])
    # The server samples a run's curve beyond BULK_MAX_POINTS points: re-read those in full.
    counts = frame.groupby(["run_id", "key"]).size()
    capped = counts[counts >= BULK_MAX_POINTS]
    if len(capped):
        logger.info(
            "%d run/metric histories reached the bulk route's limit: reading them one by one", len(capped)
        )
        pairs = list(capped.index)
        full = fetch_with_client(tracking_uri, pairs=pairs, client=client)
        keep = ~frame.set_index(["run_id", "key"]).index.isin(pairs)
        frame = pd.concat([frame[keep], full], ignore_index=True)
    return frame


# --- any store, slowly -------------------------------------------------------------------------


def fetch_with_client(
    tracking_uri: str,
    run_ids: Sequence[str] = (),
    keys: Sequence[str] = (),
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    client: Any = None,
    workers: int = 4,
) -> pd.DataFrame:
    """``MlflowClient.get_metric_history`` for every (run, key): the route of last resort."""
    from mlflow import MlflowClient

    mlflow_client = client or MlflowClient(tracking_uri)
    jobs = list(pairs) if pairs is not None else [(run_id, key) for run_id in run_ids for key in keys]

    def one(job: tuple[str, str]) -> list[tuple]:
        run_id, key = job
        return [
            (run_id, m.key, int(m.step), int(m.timestamp), float(m.value))
            for m in mlflow_client.get_metric_history(run_id, key)
        ]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        parts = list(pool.map(one, jobs))
    return _frame([row for part in parts for row in part])


@dataclass(frozen=True)
class Histories:
    """The long history table and the route that produced it (for the report)."""

    table: pd.DataFrame
    route: str


def fetch_histories(
    tracking_uri: str, run_ids: Sequence[str], keys: Sequence[str] = CURVE_KEYS, client: Any = None
) -> Histories:
    """Every logged point of ``keys`` for ``run_ids``, by the fastest route the URI allows."""
    route = fetch_route(tracking_uri)
    if not run_ids:
        return Histories(_frame([]), route)
    fetchers: dict[str, Callable[[], pd.DataFrame]] = {
        "sql": lambda: fetch_sql(tracking_uri, run_ids, keys),
        "rest-bulk": lambda: fetch_rest_bulk(tracking_uri, run_ids, keys, client=client),
        "client": lambda: fetch_with_client(tracking_uri, run_ids, keys, client=client),
    }
    if route == "sql":
        try:
            return Histories(fetchers["sql"](), "sql")
        except Exception as exc:  # not MLflow's schema after all: the client still works
            logger.warning("direct SQL read of %s failed (%s): using get_metric_history", route, exc)
            return Histories(fetchers["client"](), "client")
    return Histories(fetchers[route](), route)


def curves(table: pd.DataFrame, keys: Sequence[str] = CURVE_KEYS) -> dict[str, dict[str, np.ndarray]]:
    """run_id → {"step": epochs, key: values aligned on them} for the steps where ``keys[0]`` was logged.

    At a step logged twice the later timestamp wins. Keys missing at a curve step are NaN.
    """
    if table.empty:
        return {}
    latest = table.sort_values(["run_id", "key", "step", "timestamp"], kind="stable").drop_duplicates(
        ["run_id", "key", "step"], keep="last"
    )
    wide = latest.pivot(index=["run_id", "step"], columns="key", values="value").sort_index()
    for key in keys:
        if key not in wide.columns:
            wide[key] = np.nan
    wide = wide[wide.index.isin(_steps_with(latest, keys[0]))]
    result: dict[str, dict[str, np.ndarray]] = {}
    run_index = wide.index.get_level_values("run_id")
    steps = wide.index.get_level_values("step").to_numpy()
    values = {key: wide[key].to_numpy(dtype=float) for key in keys}
    boundaries = np.flatnonzero(np.r_[True, run_index[1:] != run_index[:-1], True])
    for start, stop in zip(boundaries[:-1], boundaries[1:], strict=True):
        curve = {"step": steps[start:stop]}
        curve.update({key: values[key][start:stop] for key in keys})
        result[str(run_index[start])] = curve
    return result


def _steps_with(latest: pd.DataFrame, key: str) -> pd.MultiIndex:
    """(run, step) pairs at which ``key`` was logged, NaN values included."""
    rows = latest[latest["key"] == key]
    return pd.MultiIndex.from_arrays([rows["run_id"], rows["step"]])
