"""Links from the report to a run's page in the MLflow UI (built by ``sedwatt.tracking.links``).

Only an ``http(s)`` tracking URI is a UI one can open; a ``sqlite:`` / ``postgresql:`` / file store
has no address (``mlflow ui`` could serve it anywhere), so its runs stay plain ids. Credentials in
the URI (``https://user:pass@host``) never reach the page; the link opens MLflow 3's training view.
"""

from __future__ import annotations

from urllib.parse import quote

from sedwatt.tracking import links


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI, or None when the store has no UI address."""
    if not tracking_uri.strip().lower().startswith(("http://", "https://")) or not experiment_id or not run_id:
        return None
    base = links.ui_base(tracking_uri.strip())
    return links.run_url(base, quote(str(experiment_id), safe=""), quote(str(run_id), safe=""))
