"""The demo's runs as synthetic MLflow runs, for the cohort and policy tests (hand-picked curves: see
test_analysis_cohorts.py's docstring)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from sedwatt_analysis.synthetic import SyntheticRun

from sedwatt.config import load_config
from sedwatt.tracking.callback import run_params
from sedwatt.training.loop import run_info

CPU = {"hw.gpu_model": "none", "hw.cpu_model": "AMD EPYC"}
CPU_DEMO = Path(__file__).resolve().parents[1] / "configs" / "cpu_demo.yaml"


def logged_params(config_overrides: list[str], extra: dict[str, str]) -> dict[str, str]:
    """What a run of the cpu_demo config with ``config_overrides`` has as params: ``extra`` (logged
    first, by the entry point or Optuna) and the training callback's flattened config."""
    config = load_config(CPU_DEMO, config_overrides)
    info = run_info(config, "demo-fingerprint", torch.device("cpu"), 1)  # as the Trainer fills it
    return {**run_params(SimpleNamespace(config=config, info=info)), **extra}


def run(
    epochs: int, top_f1: float, s_per_epoch: float, wh_per_epoch: float, params: dict, name: str
) -> SyntheticRun:
    f1 = np.linspace(top_f1 / epochs, top_f1, epochs)  # rising to top_f1 at the last epoch
    energy = [wh_per_epoch * (i + 1) / 1000 for i in range(epochs)]
    elapsed = [s_per_epoch * (i + 1) for i in range(epochs)]
    return SyntheticRun(list(f1), energy, elapsed, params=params, tags=CPU, name=name)


def demo_runs() -> list[SyntheticRun]:
    # `mlflow run -e main -P epochs=45 …`: the entry point's params come first, then the callback's.
    main = logged_params(
        ["train.epochs=45", "train.out_dir=demo/outputs"],
        {
            "config": "configs/cpu_demo.yaml",
            "data": "demo/data",
            "epochs": "45",
            "batch_size": "16",
            "overrides": "",
        },
    )
    trials = []
    for number, (batch, f1, seconds, wh) in enumerate(
        [(16, 0.42, 60, 10), (32, 0.45, 45, 15), (48, 0.35, 40, 20)]
    ):
        params = logged_params(
            ["train.epochs=8", f"train.batch_size={batch}", f"train.seed={100 + number}",
             "tracking.registered_model_name=null", "tracking.log_model=false", f"train.out_dir=demo/outputs/t{number}"],
            {"trial_number": str(number), "study_name": "demo-batch-size"},
        )  # fmt: skip
        trials.append(run(8, f1, seconds, wh, params, f"trial-{batch}"))
    return [run(45, 0.60, 60, 10, main, "train"), *trials]
