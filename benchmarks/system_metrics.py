"""What MLflow's system metrics cost a training run: CPU time of the sampling thread per sample.

A training run logs MLflow's system metrics (``tracking.system_metrics``, on by default): one background
thread (``SystemMetricsMonitor``) that every ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (10 by
default) reads CPU, memory, disk, network (and GPU) figures, checks the run is still running and logs them.
This benchmark opens a run with them on against a local SQLite store, samples every ``--interval`` seconds
for ``--seconds``, and reads that thread's own CPU time from ``/proc/self/task/<tid>/stat`` (Linux), so what
else runs on the machine does not enter the figure. Prints the samples logged, CPU ms per sample, and as
its last line the share of one core the sampler takes at the default 10 s interval.

    python benchmarks/system_metrics.py --seconds 30 --interval 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_INTERVAL_S = 10.0


def thread_cpu_seconds(native_id: int) -> float:
    """utime + stime of one thread of this process (fields 14 and 15 of its stat line, in clock ticks)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to sample")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval in seconds")
    args = parser.parse_args()
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = str(args.interval)
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlruns.db")
        with mlflow.start_run(log_system_metrics=True) as run:
            time.sleep(0.5)
            monitor = next(t for t in threading.enumerate() if t.name == "SystemMetricsMonitor")
            start = thread_cpu_seconds(monitor.native_id)
            time.sleep(args.seconds)
            cpu_s = thread_cpu_seconds(monitor.native_id) - start
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    samples = max(1, round(args.seconds / args.interval))
    per_sample_ms = 1000 * cpu_s / samples
    share = per_sample_ms / (1000 * DEFAULT_INTERVAL_S)
    print(f"{len(history)} samples logged in {args.seconds:.0f} s at {args.interval:g} s intervals")
    print(f"sampler thread: {cpu_s:.2f} CPU-s, {per_sample_ms:.1f} ms per sample")
    print(f"system_metrics_cpu_ms_per_sample={per_sample_ms:.1f} share_of_one_core_at_10s={100 * share:.3f}%")


if __name__ == "__main__":
    main()
