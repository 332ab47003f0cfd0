"""Time `sedwatt analyze` on a big store: 1,000 runs × 200 epochs, SQLite directly and through `mlflow server`.

Populating is not timed: runs are written once with ``log_batch`` (on /dev/shm when it exists, where
SQLite commits cost nothing) and reused by later invocations with the same --runs/--epochs. Then:

1. ``analyze`` on the ``sqlite:`` URI (one SQL pass over the metrics table);
2. a local ``mlflow server`` on the same store (job runner off, one worker), ``analyze`` on its
   ``http:`` URI (the bulk-interval route, 100 runs per request);
3. the routes alone through the same server: get-history-bulk on all runs; the slower
   get-history-bulk-interval route and the ``get_metric_history`` loop timed on --reference-runs runs
   and extrapolated to all of them.

Prints each phase's seconds and, last, ``analysis_http_s=<seconds>``.

    python benchmarks/analysis.py --runs 1000 --epochs 200
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH_SIZES = ("4", "8", "16", "32")
HARDWARE = (
    {"hw.gpu_model": "NVIDIA A100-SXM4-40GB", "hw.cpu_model": "AMD EPYC 7742"},
    {"hw.gpu_model": "Tesla T4", "hw.cpu_model": "Intel Xeon"},
)


def default_store_dir() -> Path:
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return base / "sedwatt-analysis-bench"


def populate(store: Path, n_runs: int, epochs: int) -> str:
    """Fill (or reuse) ``store``/mlruns.db with ``n_runs`` training runs of ``epochs`` epochs."""
    from mlflow import MlflowClient
    from sedwatt_analysis.synthetic import SyntheticRun, log_runs, realistic_curve
    from tqdm import tqdm

    marker = store / f"populated-{n_runs}x{epochs}"
    uri = f"sqlite:///{store / 'mlruns.db'}"
    if marker.exists():
        print(f"reusing {uri} ({n_runs} runs × {epochs} epochs)")
        return uri
    if store.exists():
        for path in store.iterdir():
            path.unlink()
    store.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri)
    experiment = client.create_experiment("bench", artifact_location=(store / "artifacts").as_uri())
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for i in tqdm(range(n_runs), desc="populating", unit="run", mininterval=10):
        batch = BATCH_SIZES[i % len(BATCH_SIZES)]
        hw = HARDWARE[(i // len(BATCH_SIZES)) % len(HARDWARE)]
        f1, energy, elapsed = realistic_curve(
            epochs, rng, top_f1=0.5 + 0.02 * BATCH_SIZES.index(batch), wh_per_epoch=4.0 + int(batch) / 16,
            s_per_epoch=150.0 - int(batch),
        )  # fmt: skip
        run = SyntheticRun(f1, energy, elapsed, params={"batch_size": batch, "seed": str(i)}, tags=hw)
        log_runs(client, experiment, [run], start_ms=1_700_000_000_000 + i * 1_000_000)
    print(
        f"populated {n_runs} runs × {epochs} epochs in {time.perf_counter() - started:.1f} s (not part of the timing)"
    )
    marker.touch()
    return uri


def start_server(uri: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--artifacts-destination", (workdir / "served").as_uri()],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("mlflow server exited")
        try:
            if requests.get(
                f"{url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=5
            ).ok:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("mlflow server did not start")


def stop_server(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def timed_analysis(label: str, uri: str, out: Path) -> float:
    from sedwatt_analysis import analyze

    started = time.perf_counter()
    result = analyze(["bench"], None, ["params.batch_size"], out, tracking_uri=uri)
    total = time.perf_counter() - started
    phases = ", ".join(f"{k} {v:.2f}" for k, v in result.timings_s.items() if k != "total")
    print(f"{label}: {len(result.runs)} runs, {len(result.runs) and int(result.runs['epochs'].sum())} epochs "
          f"via {result.route}: {total:.2f} s ({phases})")  # fmt: skip
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--store", type=Path, default=default_store_dir())
    parser.add_argument("--reference-runs", type=int, default=100, help="runs timed with the slow routes")
    parser.add_argument("--no-server", action="store_true", help="only the direct SQLite read")
    args = parser.parse_args()

    uri = populate(args.store, args.runs, args.epochs)
    with tempfile.TemporaryDirectory(prefix="sedwatt-bench-") as tmp:
        work = Path(tmp)
        sqlite_s = timed_analysis("sqlite", uri, work / "sqlite")
        if args.no_server:
            print(f"analysis_sqlite_s={sqlite_s:.2f}")
            return
        server_started = time.perf_counter()
        process, url = start_server(uri, work)
        print(f"mlflow server up in {time.perf_counter() - server_started:.1f} s (not timed)")
        try:
            http_s = timed_analysis("http", url, work / "http")
            from mlflow import MlflowClient
            from sedwatt_analysis.history import CURVE_KEYS, fetch_rest_bulk

            client = MlflowClient(url)
            experiment = client.get_experiment_by_name("bench")
            run_ids = [
                r.info.run_id for r in client.search_runs([experiment.experiment_id], max_results=args.runs)
            ]
            subset = run_ids[: args.reference_runs]
            started = time.perf_counter()
            points = sum(len(client.get_metric_history(r, k)) for r in subset for k in CURVE_KEYS)
            loop_s = (time.perf_counter() - started) / len(subset) * len(run_ids)
            started = time.perf_counter()
            bulk = fetch_rest_bulk(url, run_ids, CURVE_KEYS, routes=("bulk",))
            bulk_s = time.perf_counter() - started
            started = time.perf_counter()
            interval = fetch_rest_bulk(url, subset, CURVE_KEYS, routes=("interval",))
            interval_s = (time.perf_counter() - started) / len(subset) * len(run_ids)
        finally:
            stop_server(process)
    print(
        f"get_metric_history loop: {points} points for {len(subset)} runs → ~{loop_s:.0f} s for {len(run_ids)} runs"
    )
    print(f"get-history-bulk-interval route: {len(interval.table)} points for {len(subset)} runs "
          f"→ ~{interval_s:.0f} s for {len(run_ids)} runs")  # fmt: skip
    print(f"get-history-bulk route: {bulk_s:.2f} s for all {len(bulk.table)} points "
          f"({loop_s / bulk_s:.0f}× faster than the loop, {interval_s / bulk_s:.0f}× faster than bulk-interval)")  # fmt: skip
    print(f"whole analysis: sqlite {sqlite_s:.2f} s, http {http_s:.2f} s")
    print(f"analysis_http_s={http_s:.2f}")


if __name__ == "__main__":
    main()
