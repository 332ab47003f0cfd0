"""One store served two ways for the analysis tests: a SQLite URI and a real ``mlflow server`` over it.

``served`` (session-scoped, registered in conftest) fills the store through the SQLite URI, then starts
one server process on it (SQLite backend, job runner off, one worker: ~10 s to start).
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
from sedwatt_analysis import history
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


@pytest.fixture(scope="session")
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
