"""The study's Pareto front and summary, written as artifacts of the study's parent MLflow run.

CSV for tables, a matplotlib PNG for the MLflow UI's preview, and Optuna's own interactive plotly
figure as one self-contained HTML file (plotly.js embedded, ~5 MB: it must open offline). Rewritten
after every finished trial, so the UI shows the front growing while workers run; the parent's
``n_trials_complete`` / ``pareto_size`` / ``front_best_f1`` / ``front_min_energy_kwh`` metrics use the number
of complete trials as their step for the same reason.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from sedwatt.search.objectives import METRIC_NAMES

CSV_NAME = "pareto_front.csv"
PNG_NAME = "pareto_front.png"
HTML_NAME = "pareto_front.html"
SUMMARY_NAME = "study_summary.json"
ARTIFACT_DIR = "study"


def pareto_frame(study: Any) -> pd.DataFrame:
    """One row per trial with objective values (the COMPLETE ones); ``pareto`` marks Optuna's front."""
    front = {t.number for t in study.best_trials}
    rows = []
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
                "epochs_run": t.user_attrs.get("epochs_run"),
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id") or "",
                "stop_reason": t.user_attrs.get("stop_reason") or "",
            }
        )
    columns = ["trial", "state", "val_f1", "energy_kwh", "pareto", "epochs_run", "mlflow_run_id", "stop_reason"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def _plot_png(frame: pd.DataFrame, title: str, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if not frame.empty:
        rest, front = frame[~frame.pareto], frame[frame.pareto].sort_values("energy_kwh")
        ax.scatter(rest.energy_kwh * 1000, rest.val_f1 * 100, c="0.6", label="trial")
        ax.plot(front.energy_kwh * 1000, front.val_f1 * 100, "o-", c="tab:red", label="Pareto front")
        for _, row in frame.iterrows():
            label = f"#{row.trial}" + (f" bs={row.param_batch_size}" if "param_batch_size" in row else "")
            ax.annotate(label, (row.energy_kwh * 1000, row.val_f1 * 100), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.legend(loc="lower right", fontsize="small")
    ax.set_xlabel("training energy (Wh)")
    ax.set_ylabel("intersection F1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


def study_summary(study: Any, frame: pd.DataFrame) -> dict[str, Any]:
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    front = frame[frame.pareto].sort_values("energy_kwh") if len(frame) else frame
    param_columns = [c for c in frame.columns if c.startswith("param_")]
    return {
        "study_name": study.study_name,
        "directions": [d.name.lower() for d in study.directions],
        "objectives": list(METRIC_NAMES),
        "n_trials": sum(states.values()),
        "states": states,
        "pareto_front": [
            {
                "trial": int(row.trial),
                "params": {c.removeprefix("param_"): _plain(row[c]) for c in param_columns},
                "val_f1": float(row.val_f1),
                "energy_kwh": float(row.energy_kwh),
            }
            for _, row in front.iterrows()
        ],
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def write_study_report(study: Any, out_dir: Path) -> dict[str, Path]:
    """pareto_front.csv/.png, pareto_front.html (once a trial is complete) and study_summary.json in ``out_dir``."""
    import optuna

    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pareto_frame(study)
    paths = {"csv": out_dir / CSV_NAME, "png": out_dir / PNG_NAME, "summary": out_dir / SUMMARY_NAME}
    frame.to_csv(paths["csv"], index=False)
    _plot_png(frame, f"study {study.study_name}: F1 vs energy", paths["png"])
    if len(frame):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure = optuna.visualization.plot_pareto_front(study, target_names=["F1", "energy (kWh)"])
        paths["html"] = out_dir / HTML_NAME
        figure.write_html(paths["html"], include_plotlyjs=True, full_html=True)
    paths["summary"].write_text(json.dumps(study_summary(study, frame), indent=2))
    return paths


def log_study_report(study: Any, parent_run_id: str) -> None:
    """Write the report to a temp folder and upload it to the parent run (overwriting the previous one)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_study_report(study, Path(tmp))
        for path in paths.values():
            client.log_artifact(parent_run_id, str(path), artifact_path=ARTIFACT_DIR)
    frame = pareto_frame(study)
    if len(frame):
        step = len(frame)
        client.log_metric(parent_run_id, "n_trials_complete", float(step), step=step)
        client.log_metric(parent_run_id, "pareto_size", float(frame.pareto.sum()), step=step)
        client.log_metric(parent_run_id, "front_best_f1", float(frame.val_f1.max()), step=step)
        client.log_metric(parent_run_id, "front_min_energy_kwh", float(frame.energy_kwh.min()), step=step)
