"""The HTTP route against a real ``mlflow server``: the bulk route returns what get_metric_history returns.

One server process serves a store that was filled beforehand through the SQLite URI (served_store.py,
the ``served`` fixture); the same store is then analysed both ways.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sedwatt_analysis import analyze, history

from served_store import canonical, client_histories, run_ids_of


@pytest.mark.parametrize("route", ["bulk", "interval"])
def test_bulk_routes_return_the_same_histories_as_get_metric_history(served, route):
    sqlite_uri, url = served
    ids = run_ids_of(url)
    assert len(ids) == 7
    fetched = history.fetch_rest_bulk(url, ids, history.CURVE_KEYS, routes=(route,))
    assert fetched.route == f"rest-{route}"
    reference = client_histories(url, ids)
    assert len(reference) == sum(3 * (12 + i) for i in range(7))
    assert canonical(fetched.table) == canonical(reference)
    # The direct SQL read of the same store agrees too.
    assert canonical(history.fetch_sql(sqlite_uri, ids, history.CURVE_KEYS)) == canonical(reference)


def test_answers_cut_at_the_point_limit_are_asked_again(served, monkeypatch):
    _, url = served
    ids = run_ids_of(url)
    # 7 runs of 12-18 points: a 30-point cut splits every request down to one or two runs per request,
    # and with a 15-point cut the 15-18-point runs must come from get_metric_history.
    for cut in (30, 15):
        monkeypatch.setattr(history, "BULK_MAX_POINTS_PER_REQUEST", cut)
        fetched = history.fetch_rest_bulk(url, ids, history.CURVE_KEYS, routes=("bulk",))
        assert canonical(fetched.table) == canonical(client_histories(url, ids))


def test_histories_the_interval_route_samples_are_read_in_full(served, monkeypatch):
    _, url = served
    ids = run_ids_of(url)
    monkeypatch.setattr(history, "INTERVAL_MAX_POINTS", 5)  # every curve (≥ 12 points) is now sampled
    fetched = history.fetch_rest_bulk(url, ids, history.CURVE_KEYS, routes=("interval",))
    assert canonical(fetched.table) == canonical(client_histories(url, ids))


def test_a_server_without_the_bulk_route_falls_back(served, monkeypatch):
    _, url = served
    ids = run_ids_of(url)
    monkeypatch.setattr(history, "BULK_ROUTE", "/ajax-api/2.0/mlflow/metrics/no-such-route")
    fetched = history.fetch_rest_bulk(url, ids, history.CURVE_KEYS)
    assert fetched.route == "rest-interval"
    assert canonical(fetched.table) == canonical(client_histories(url, ids))


def test_analysis_over_http_matches_the_sqlite_store(served, tmp_path):
    sqlite_uri, url = served
    over_http = analyze(["served"], None, None, tmp_path / "http", tracking_uri=url)
    direct = analyze(["served"], None, None, tmp_path / "sql", tracking_uri=sqlite_uri)
    assert (over_http.route, direct.route) == ("rest-bulk", "sql")
    pd.testing.assert_frame_equal(
        over_http.runs.sort_values("run_id").reset_index(drop=True),
        direct.runs.sort_values("run_id").reset_index(drop=True),
    )
    assert (tmp_path / "http" / "table2.md").read_text() == (tmp_path / "sql" / "table2.md").read_text()
    nan_run = over_http.runs.set_index("run_name").loc["h0"]
    assert nan_run.epochs == 12  # the NaN epoch still counts as an epoch, and never reaches a target


def test_report_links_run_ids_to_the_servers_ui(served, tmp_path):
    from mlflow import MlflowClient

    sqlite_uri, url = served
    experiment_id = MlflowClient(url).get_experiment_by_name("served").experiment_id
    html = analyze(["served"], None, None, tmp_path / "links", tracking_uri=url).report_path.read_text()
    ids = run_ids_of(url)
    for run_id in ids:  # in the runs table: the id, linking to the run's page in the UI
        page = f"{url}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
        assert f'<a href="{page}">{run_id}</a>' in html
    assert html.count('<a href="') == len(ids)
    plain = analyze(
        ["served"], None, None, tmp_path / "plain", tracking_uri=sqlite_uri
    ).report_path.read_text()
    assert "<a href=" not in plain and f"<td>{ids[0]}</td>" in plain  # a sqlite store: plain ids
