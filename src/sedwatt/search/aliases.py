"""Registry aliases on a study's Pareto models, so a teammate fetches a search's result by name.

After every finished trial the study's Pareto front is recomputed, and two aliases of the registered
model (``tracking.registered_model_name``) move to the versions its front trials registered:

* ``best-f1``: the front trial with the highest F1 objective (the most accurate model of the search);
* ``lowest-energy``: the front trial with the lowest energy objective (the cheapest one to train).

Each also exists scoped to the study (``best-f1-<study>``, ``lowest-energy-<study>``), because several
studies may register into one model name and the plain aliases follow the study that updated them
last. ``mlflow.pyfunc.load_model("models:/NAME@best-f1")`` is then how a teammate gets the model.
A version is found by its run (``run_id``); a trial whose model is not registered (yet, or
``tracking.log_model=false``) moves nothing.
"""

from __future__ import annotations

import logging
import re
from typing import Any

logger = logging.getLogger(__name__)

BEST_F1 = "best-f1"
LOWEST_ENERGY = "lowest-energy"


def alias_slug(study_name: str) -> str:
    """MLflow aliases allow letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", study_name).strip("-") or "study"


def front_choices(best_trials: list[Any]) -> dict[str, Any]:
    """{alias: trial} for the front: max F1 (ties: less energy), min energy (ties: more F1)."""
    if not best_trials:
        return {}
    return {
        BEST_F1: max(best_trials, key=lambda t: (t.values[0], -t.values[1], -t.number)),
        LOWEST_ENERGY: min(best_trials, key=lambda t: (t.values[1], -t.values[0], t.number)),
    }


def version_of_run(client: Any, model_name: str, run_id: str) -> str | None:
    versions = [v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.name == model_name]
    return max(versions, key=lambda v: int(v.version)).version if versions else None


def set_pareto_aliases(study: Any, model_name: str | None) -> dict[str, str]:
    """Point the aliases at the front's versions; returns {alias: version} of what was set."""
    from mlflow import MlflowClient

    from sedwatt.search.runs import RUN_ATTR

    if not model_name:
        return {}
    client = MlflowClient()
    done: dict[str, str] = {}
    for alias, trial in front_choices(list(study.best_trials)).items():
        run_id = trial.user_attrs.get(RUN_ATTR)
        version = version_of_run(client, model_name, run_id) if run_id else None
        if version is None:
            continue
        for name in (alias, f"{alias}-{alias_slug(study.study_name)}"):
            client.set_registered_model_alias(model_name, name, version)
            done[name] = version
    return done


def update_aliases(study: Any, model_name: str | None) -> None:
    """``set_pareto_aliases`` that never fails a search: the aliases are refreshed after the next trial."""
    try:
        set_pareto_aliases(study, model_name)
    except Exception as exc:  # noqa: BLE001 - a server blip or a permission problem must not stop the study
        logger.warning("could not move the registry aliases of study %s: %s", study.study_name, exc)
