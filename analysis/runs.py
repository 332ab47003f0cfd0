"""Which runs an analysis covers: experiments by name, MLflow's filter, training runs only.

The filter string is MLflow's own (``params.batch_size = '32' and tags.hw.gpu_model = 'A100'``), so
the tracking server does the selecting; sedwatt adds ``tags.sedwatt.kind = 'train'`` to skip search
parents, calibration and evaluation runs. Every mistake a user can make here (an unknown experiment,
a filter MLflow rejects, nothing matched) becomes a one-line ``SedwattError`` before any history is
fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sedwatt.errors import SedwattError
from sedwatt.tracking.uri import redact_uri

TRAIN_FILTER = "tags.sedwatt.kind = 'train'"
PAGE_SIZE = 5000


@dataclass(frozen=True)
class RunRecord:
    """What the analysis needs from one run besides its per-epoch history."""

    run_id: str
    experiment: str
    run_name: str
    status: str
    start_time: int
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""


def resolve_experiments(client: Any, names: list[str], tracking_uri: str) -> dict[str, str]:
    """Experiment id → name for every ``--experiment`` (a name, or an id as a fallback)."""
    from mlflow.exceptions import MlflowException

    if not names:
        raise SedwattError("--experiment: give at least one experiment name")
    resolved: dict[str, str] = {}
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None and name.isdigit():
            try:
                experiment = client.get_experiment(name)
            except MlflowException:
                experiment = None
        if experiment is None:
            known = sorted(e.name for e in client.search_experiments(max_results=50))
            listed = ", ".join(known[:10]) + (" …" if len(known) > 10 else "")
            raise SedwattError(
                f"--experiment {name!r}: no such experiment in {redact_uri(tracking_uri)} (known: {listed or 'none'})"
            )
        resolved[experiment.experiment_id] = experiment.name
    return resolved


def combined_filter(user_filter: str | None) -> str:
    user = (user_filter or "").strip()
    return f"{user} and {TRAIN_FILTER}" if user else TRAIN_FILTER


def _search_all(client: Any, experiment_ids: list[str], filter_string: str) -> list[Any]:
    from mlflow.entities import ViewType

    runs: list[Any] = []
    page_token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=PAGE_SIZE,
            order_by=["attributes.start_time ASC"],
            page_token=page_token,
        )
        runs.extend(page)
        page_token = page.token
        if not page_token:
            return runs


def search_training_runs(
    client: Any, experiments: dict[str, str], user_filter: str | None, tracking_uri: str
) -> list[RunRecord]:
    """The active training runs of ``experiments`` that match ``user_filter`` (oldest first)."""
    from mlflow.exceptions import MlflowException

    ids = list(experiments)
    try:
        runs = _search_all(client, ids, combined_filter(user_filter))
    except MlflowException as exc:
        first_line = (str(getattr(exc, "message", exc)).strip().splitlines() or ["invalid filter"])[0]
        if user_filter and user_filter.strip():
            raise SedwattError(f"--filter {user_filter!r}: MLflow rejected it: {first_line}") from exc
        raise
    if not runs:
        user = (user_filter or "").strip()
        # Say why: nothing matched at all, or only runs that are not training runs.
        any_match = client.search_runs(ids, filter_string=user, max_results=1)
        reason = (
            "runs matched, but none is a training run (tag sedwatt.kind = 'train')"
            if any_match
            else "no runs matched"
        )
        shown = f" with --filter {user!r}" if user else ""
        where = ", ".join(repr(n) for n in experiments.values())
        raise SedwattError(f"experiment {where}{shown}: {reason}")
    return [
        RunRecord(
            run_id=run.info.run_id,
            experiment=experiments.get(run.info.experiment_id, run.info.experiment_id),
            run_name=run.info.run_name or "",
            status=run.info.status,
            start_time=int(run.info.start_time or 0),
            params=dict(run.data.params),
            tags=dict(run.data.tags),
            experiment_id=run.info.experiment_id,
        )
        for run in runs
        if run.data.tags.get("sedwatt.kind") == "train"  # the server filtered already; cheap to be sure
    ]
