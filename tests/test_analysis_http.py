"""The HTTP route against a real ``mlflow server``: the bulk route returns what get_metric_history returns.

One server process (SQLite backend, job runner off, one worker: ~10 s to start) serves a store that
was filled beforehand through the SQLite URI; the same store is then analysed both ways.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sedwatt_analysis import analyze, history
from sedwatt_analysis.synthetic import SyntheticRun, log_runs, realistic_curve

from servers import free_port, stop_process_group

STARTUP_TIMEOUT_S = 120


def make_runs() -> list[SyntheticRun]:
    rng = np.random.default_rng(7)
    runs = []
    for i in range(7):
        f1, energy, elapsed = realistic_curve(
            12 + i, rng, top_f1=0.5 + 0.02 * i, wh_per_epoch=3.0, s_per_epoch=60.0
        )
        runs.append(
            SyntheticRun(
                f1, energy, elapsed, params={"batch_size": str([4, 8][i % 2]), "seed": str(i)},
                tags={"hw.gpu_model": "none", "hw.cpu_model": "AMD EPYC"}, name=f"h{i}",
            )
        )  # fmt: skip
    runs[0].val_f1 = [math.nan, *list(runs[0].val_f1)[1:]]  # a NaN travels through JSON as "NaN"
    return runs


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(sqlite URI, http URI) of one store, the second through a running ``mlflow server``."""
    import requests
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("http-store")
    sqlite_uri = f"sqlite:///{root / 'mlruns.db'}"
    client = MlflowClient(sqlite_uri)
    experiment = client.create_experiment("served", artifact_location=(root / "artifacts").as_uri())
    log_runs(client, experiment, make_runs())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log = open(root / "server.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", sqlite_uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--artifacts-destination", (root / "served-artifacts").as_uri()],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                ok = requests.get(
                    f"{url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=5
                )
                if ok.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not ready: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield sqlite_uri, url
    finally:
        stop_process_group(process)


def client_histories(uri: str, run_ids: list[str]) -> pd.DataFrame:
    """The reference: MlflowClient.get_metric_history, one call per run and key."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    rows = [
        (run_id, m.key, m.step, m.timestamp, m.value)
        for run_id in run_ids
        for key in history.CURVE_KEYS
        for m in client.get_metric_history(run_id, key)
    ]
    return pd.DataFrame(rows, columns=history.HISTORY_COLUMNS)


def canonical(frame: pd.DataFrame) -> list[tuple]:
    return sorted(
        (r.run_id, r.key, int(r.step), int(r.timestamp), "nan" if math.isnan(r.value) else float(r.value))
        for r in frame.itertuples(index=False)
    )


def run_ids_of(uri: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("served")
    return [r.info.run_id for r in client.search_runs([experiment.experiment_id])]


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
