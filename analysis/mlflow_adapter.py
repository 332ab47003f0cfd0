"""The only module of the analysis that relies on MLflow internals, and the version they were checked on.

history.py has two fast paths that MLflow does not document, each with a public fallback:
- the MLflow UI's ``/ajax-api/2.0/mlflow/metrics/get-history-bulk`` route, whose answer the server cuts
  at ``MAX_HISTORY_RESULTS`` (25,000 points) without saying so; history.py detects a cut answer only
  by that number, so a server whose limit or answer differs could silently return partial curves;
- a direct SQL read of a store's ``metrics`` table (its columns and the ``is_nan`` convention).

Pinning MLflow exactly for these would be too strong: both are optional. Instead each is used only
when the MLflow on the other side is exactly ``CHECKED_VERSION`` — the tracking server's version
(asked at its ``/version`` endpoint) for the route, the installed MLflow (whose client would refuse
a store at another schema revision) for the SQL read — and history.py takes the public path
otherwise: the ``get-history-bulk-interval`` REST route, or ``MlflowClient.get_metric_history``.
The REST helpers MLflow's own client uses (``mlflow.utils.rest_utils``, ``mlflow.utils.credentials``)
are also reached from here only; they are not version-gated, since a change there fails loudly.
"""

from __future__ import annotations

import logging
from typing import Any

from sedwatt.pins import installed_version

logger = logging.getLogger(__name__)

DISTRIBUTION = "mlflow"
CHECKED_VERSION = "3.17.2"
BULK_ROUTE = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
BULK_MAX_POINTS_PER_REQUEST = 25000  # MAX_HISTORY_RESULTS in mlflow/server/handlers.py (3.17.2)
VERSION_ROUTE = "/version"


# -- MLflow's REST helpers ---------------------------------------------------------------------
def host_creds(tracking_uri: str) -> Any:
    """Host and credentials (MLFLOW_TRACKING_* variables) as MLflow's own client builds them."""
    from mlflow.utils.credentials import get_default_host_creds

    return get_default_host_creds(tracking_uri)


def http_get(creds: Any, route: str, params: dict[str, Any] | None = None) -> Any:
    """A GET with MLflow's retries and auth; returns the ``requests`` response, whatever its status."""
    from mlflow.utils.rest_utils import http_request

    return http_request(creds, route, "GET", params=params or {})


def raise_for_response(response: Any, route: str) -> None:
    """Raise MlflowException with the server's own message for a non-200 answer."""
    from mlflow.utils.rest_utils import verify_rest_response

    verify_rest_response(response, route)


# -- the version gates ------------------------------------------------------------------------
def server_version(creds: Any) -> str | None:
    """The MLflow version a tracking server reports, or None when it does not answer with one.

    An unreachable server raises here as it would on any route (MLflow's retries included).
    """
    response = http_get(creds, VERSION_ROUTE)
    text = response.text.strip() if response.status_code == 200 else ""
    return text if text and len(text) < 64 and "\n" not in text else None  # not a proxy's HTML page


def bulk_route_usable(creds: Any) -> bool:
    """Whether the server runs exactly the MLflow the UI bulk route (and its point cut) was checked on."""
    found = server_version(creds)
    if found == CHECKED_VERSION:
        return True
    logger.info(
        "tracking server runs MLflow %s, not %s: skipping the UI bulk-history route for the public one",
        found or "(unknown version)",
        CHECKED_VERSION,
    )
    return False


def sql_read_usable() -> bool:
    """Whether the installed MLflow is exactly the one the direct SQL read was checked on."""
    found = installed_version(DISTRIBUTION)
    if found == CHECKED_VERSION:
        return True
    logger.info(
        "MLflow %s is installed, not %s: reading histories through MlflowClient instead of SQL",
        found or "(none)",
        CHECKED_VERSION,
    )
    return False
