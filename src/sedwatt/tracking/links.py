"""Addresses of experiments, runs and artifacts in the MLflow UI: every link sedwatt prints comes from here.

MLflow 3 opens in its GenAI view unless told otherwise: an experiment page shows an empty Traces
dashboard and a run sits under "Evaluations". The UI reads the view from the ``workflowType`` query
parameter of its *hash* route (``#/experiments/1/runs/ID?workflowType=machine_learning``); a real query
string before the ``#`` is ignored. Checked against the MLflow 3.17 UI bundle and in a browser.
"""

from __future__ import annotations

from urllib.parse import quote

DEFAULT_UI_PORT = 5000
WORKFLOW_PARAM = "workflowType"
TRAINING_VIEW = "machine_learning"  # MLflow's "Model training" view: Runs, Model metrics, charts
RUN_TABS = ("overview", "model-metrics", "system-metrics", "artifacts")


def ui_base(tracking_uri: str | None = None, port: int = DEFAULT_UI_PORT) -> str:
    """The UI's address: the tracking server itself, or a local ``mlflow ui`` on ``port`` for a file/DB store."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        from sedwatt.tracking.uri import redact_uri

        return redact_uri(tracking_uri).rstrip("/")
    return f"http://127.0.0.1:{port}"


def _route(base: str, path: str) -> str:
    return f"{base.rstrip('/')}/#/{path}?{WORKFLOW_PARAM}={TRAINING_VIEW}"


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the training view."""
    return _route(base, f"experiments/{experiment_id}")


def run_url(base: str, experiment_id: str, run_id: str, tab: str | None = None) -> str:
    """A run's page in the training view; ``tab="model-metrics"`` opens its metric charts (val_f1, energy)."""
    if tab is not None and tab not in RUN_TABS:
        raise ValueError(f"tab {tab!r}: MLflow's run tabs are {', '.join(RUN_TABS)}")
    return _route(base, f"experiments/{experiment_id}/runs/{run_id}" + (f"/{tab}" if tab else ""))


def artifact_url(base: str, experiment_id: str, run_id: str, artifact_path: str) -> str:
    """A run's artifact opened in the UI's artifact viewer (``artifact_path`` relative to the run's root)."""
    path = quote(artifact_path.strip("/"), safe="/")
    return _route(base, f"experiments/{experiment_id}/runs/{run_id}/artifacts/{path}")
