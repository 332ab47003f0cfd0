"""MLflow for sedwatt: where runs go, what a training run records, and logging that survives outages.

Importing this package is cheap; MLflow is imported by the functions that need it.

    uri = configure_tracking()                        # MLFLOW_TRACKING_URI or <project>/mlruns.db
    exp = ensure_experiment(config.tracking.experiment)
    with start_tracked_run(experiment_id=exp, spool_path=spool_path_for(out_dir)) as run:
        tracker = MLflowCallback(run.info.run_id, spool_path=spool_path_for(out_dir))
        Trainer(config, data, out_dir, callbacks=[energy, *stoppers, tracker]).fit()
        tracker.summary                               # the end-of-run metrics it logged
"""

from __future__ import annotations

from sedwatt.tracking.callback import MLflowCallback, spool_path_for
from sedwatt.tracking.resilient import ReplayResult, ResilientLogger, replay_spool
from sedwatt.tracking.runs import end_run_safely, start_tracked_run
from sedwatt.tracking.uri import configure_tracking, default_tracking_uri, ensure_experiment, project_home

__all__ = [
    "MLflowCallback",
    "ReplayResult",
    "ResilientLogger",
    "configure_tracking",
    "default_tracking_uri",
    "end_run_safely",
    "ensure_experiment",
    "project_home",
    "replay_spool",
    "spool_path_for",
    "start_tracked_run",
]
