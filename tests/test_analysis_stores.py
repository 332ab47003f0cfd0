"""The direct SQL route on PostgreSQL (a team store read without its server): same rows as the client.

The SQLite case is covered in test_analysis.py; this one checks the other paramstyle (psycopg's named
parameters) and PostgreSQL's types, using the session's throwaway cluster from servers.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sedwatt_analysis import analyze, history
from sedwatt_analysis.synthetic import SyntheticRun, log_runs


@pytest.fixture(scope="module")
def pg_store(pg_cluster, tmp_path_factory) -> str:
    from mlflow import MlflowClient

    uri = pg_cluster.uri()
    client = MlflowClient(uri)
    experiment = client.create_experiment(
        "pg-analysis", artifact_location=tmp_path_factory.mktemp("pg-art").as_uri()
    )
    log_runs(
        client,
        experiment,
        [
            SyntheticRun([0.2, 0.45, 0.5], [0.1, 0.2, 0.3], [60.0, 120.0, 180.0], params={"batch_size": "8"}, name="p1"),
            SyntheticRun([math.nan, 0.3, 0.35], [0.1, 0.2, math.inf], [60.0, 120.0, 180.0], params={"batch_size": "16"}, name="p2"),
        ],
    )  # fmt: skip
    return uri


def test_sql_route_on_postgresql_matches_get_metric_history(pg_store):
    from mlflow import MlflowClient

    client = MlflowClient(pg_store)
    experiment = client.get_experiment_by_name("pg-analysis")
    ids = [r.info.run_id for r in client.search_runs([experiment.experiment_id])]
    table = history.fetch_sql(pg_store, ids, history.CURVE_KEYS)
    reference = sorted(
        (run_id, m.key, m.step, m.timestamp, math.inf if m.value >= 1.7976931348623157e308 else m.value)
        for run_id in ids
        for key in history.CURVE_KEYS
        for m in client.get_metric_history(run_id, key)
    )
    got = sorted(table.itertuples(index=False, name=None))
    assert len(got) == len(reference) == 18
    for mine, theirs in zip(got, reference, strict=True):
        assert mine[:4] == theirs[:4]
        # NaN survives; MLflow stores inf as max double and the client returns that; ours is inf again.
        assert (np.isnan(mine[4]) and np.isnan(theirs[4])) or mine[4] == theirs[4]


def test_analysis_on_postgresql(pg_store, tmp_path):
    result = analyze(["pg-analysis"], None, None, tmp_path / "out", tracking_uri=pg_store)
    assert result.route == "sql"
    runs = result.runs.set_index("run_name")
    assert runs.loc["p1", "energy_at_f1_40_kwh"] == 0.2 and runs.loc["p1", "max_val_f1"] == 0.5
    assert math.isnan(runs.loc["p2", "energy_at_f1_40_kwh"])  # the NaN epoch never counts
    assert math.isnan(runs.loc["p2", "energy_total_kwh"])  # an infinite total is not a number to average
