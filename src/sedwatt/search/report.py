"""The study's Pareto front and summary, written as artifacts of the study's parent MLflow run.

CSV for tables, a matplotlib PNG for the MLflow UI's preview, and Optuna's own interactive plotly
figure as one self-contained HTML file. Rewritten after every finished trial, so the UI shows the
front growing while workers run.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd


def pareto_frame(study: Any) -> pd.DataFrame:
    rows = []
    front = {t.number for t in study.best_trials}
    for t in study.get_trials(deepcopy=False):
        if t.values is None:
            continue
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                **{f"param_{k}": v for k, v in t.params.items()},
                "val_f1": t.values[0],
                "energy_kwh": t.values[1],
                "pareto": t.number in front,
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
                "stop_reason": t.user_attrs.get("stop_reason", ""),
            }
        )
    return pd.DataFrame(rows)


def write_study_report(study: Any, out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pareto_frame(study)
    paths = {"csv": out_dir / "pareto_front.csv", "png": out_dir / "pareto_front.png", "summary": out_dir / "study_summary.json"}
    frame.to_csv(paths["csv"], index=False)

    fig, ax = plt.subplots(figsize=(6, 4))
    if not frame.empty:
        rest, front = frame[~frame.pareto], frame[frame.pareto].sort_values("energy_kwh")
        ax.scatter(rest.energy_kwh * 1000, rest.val_f1 * 100, c="0.6", label="trial")
        ax.plot(front.energy_kwh * 1000, front.val_f1 * 100, "o-", c="C3", label="Pareto front")
        for _, row in frame.iterrows():
            label = f"#{row.trial}" + (f" bs={row.param_batch_size}" if "param_batch_size" in row else "")
            ax.annotate(label, (row.energy_kwh * 1000, row.val_f1 * 100), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("energy (Wh)")
    ax.set_ylabel("F1 (%)")
    ax.set_title(f"study {study.study_name}: F1 vs energy")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)

    if len(frame):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure = optuna.visualization.plot_pareto_front(study, target_names=["F1", "energy (kWh)"])
        paths["html"] = out_dir / "pareto_front.html"
        figure.write_html(paths["html"], include_plotlyjs=True, full_html=True)

    states = frame.state.value_counts().to_dict() if len(frame) else {}
    summary = {
        "study_name": study.study_name,
        "directions": [d.name for d in study.directions],
        "n_trials": len(study.get_trials(deepcopy=False)),
        "states": states,
        "pareto_trials": frame[frame.pareto].trial.tolist() if len(frame) else [],
    }
    paths["summary"].write_text(json.dumps(summary, indent=2))
    return paths


def log_study_report(study: Any, parent_run_id: str) -> None:
    """Write the report to a temp folder and upload it to the parent run (overwriting the previous one)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_study_report(study, Path(tmp))
        for path in paths.values():
            client.log_artifact(parent_run_id, str(path), artifact_path="study")
    frame = pareto_frame(study)
    if len(frame):
        client.log_metric(parent_run_id, "n_trials_complete", float((frame.state == "COMPLETE").sum()))
        client.log_metric(parent_run_id, "pareto_size", float(frame.pareto.sum()))
        client.log_metric(parent_run_id, "best_val_f1", float(frame.val_f1.max()))
