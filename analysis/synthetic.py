"""Runs with chosen per-epoch curves, written into a real tracking store the way training writes them.

The analysis tests (known curves → hand-computed tables) and the benchmark (1,000 runs × 200
epochs) need stores full of runs without training anything. Each run is one ``create_run`` and
``log_batch`` calls (≤ 1,000 metrics, 100 params, 100 tags each: MLflow's limits), with the run
schema's keys: ``val_f1``, ``energy_cum_kwh``, ``cum_time_s`` at step = epoch (1-based), the
``sedwatt.kind`` and ``hw.*`` tags, and params such as ``batch_size`` and ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100


@dataclass
class SyntheticRun:
    """One run's curves (index i = epoch i + 1) and its params/tags; ``extra`` adds more per-epoch keys."""

    val_f1: Sequence[float]
    energy_cum_kwh: Sequence[float] | None  # None: energy was not measured (the key is not logged)
    cum_time_s: Sequence[float]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    kind: str = "train"
    name: str = ""
    extra: dict[str, Sequence[float]] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)  # end-of-run metrics (analysis must ignore them)


def log_runs(
    client: Any, experiment_id: str, runs: Sequence[SyntheticRun], start_ms: int = 1_700_000_000_000
) -> list[str]:
    """Create the runs (FINISHED) and return their ids, in order."""
    from mlflow.entities import Metric, Param

    run_ids = []
    for index, run in enumerate(runs):
        tags = {"sedwatt.kind": run.kind, **run.tags}
        if run.name:
            tags["mlflow.runName"] = run.name
        created = client.create_run(experiment_id, start_time=start_ms + index * 1000, tags=tags)
        run_id = created.info.run_id
        metrics = []
        series = {
            "val_f1": run.val_f1,
            "energy_cum_kwh": run.energy_cum_kwh,
            "cum_time_s": run.cum_time_s,
            **run.extra,
        }
        for key, values in series.items():
            if values is None:  # not measured: the key is never logged
                continue
            for epoch, value in enumerate(values, start=1):
                metrics.append(Metric(key, float(value), start_ms + index * 1000 + epoch, epoch))
        last = len(run.val_f1)
        metrics += [Metric(k, float(v), start_ms + index * 1000 + last, last) for k, v in run.summary.items()]
        params = [Param(k, str(v)) for k, v in run.params.items()]
        for start in range(0, max(len(metrics), 1), MAX_METRICS_PER_BATCH):
            batch_params = params[:MAX_PARAMS_PER_BATCH] if start == 0 else []
            client.log_batch(
                run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH], params=batch_params
            )
        for start in range(MAX_PARAMS_PER_BATCH, len(params), MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])
        client.set_terminated(run_id, "FINISHED", end_time=start_ms + index * 1000 + last + 1)
        run_ids.append(run_id)
    return run_ids


def realistic_curve(
    epochs: int, rng: np.random.Generator, *, top_f1: float, wh_per_epoch: float, s_per_epoch: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plausible run: F1 rising towards ``top_f1`` with noise, energy and time growing ~linearly."""
    t = np.arange(1, epochs + 1)
    f1 = top_f1 * (1 - np.exp(-t / (epochs / 6))) + rng.normal(0, 0.01, epochs)
    f1 = np.clip(f1, 0.0, 1.0)
    energy = np.cumsum(rng.normal(wh_per_epoch, wh_per_epoch * 0.03, epochs).clip(min=0)) / 1000.0
    time = np.cumsum(rng.normal(s_per_epoch, s_per_epoch * 0.03, epochs).clip(min=0.1))
    return f1, energy, time
