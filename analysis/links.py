"""Links from the report to a run's page in the MLflow UI — built in this one place only.

Only an ``http(s)`` tracking URI is a UI one can open; a ``sqlite:`` / ``postgresql:`` / file store
has no address (``mlflow ui`` could serve it anywhere), so its runs stay plain ids. Credentials in
the URI (``https://user:pass@host``) never reach the page.

MLflow 3's UI opens a run in its training view with ``workflowType=machine_learning`` in the hash
route's query; MLflow 2 ignores the parameter. If that ever changes, ``WORKFLOW_QUERY`` is the one
place to change.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

WORKFLOW_QUERY = "workflowType=machine_learning"


def ui_base(tracking_uri: str) -> str | None:
    """``scheme://host[:port][/prefix]`` of an http(s) tracking server, without credentials; else None."""
    parts = urlsplit(tracking_uri.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI, or None when the store has no UI address."""
    base = ui_base(tracking_uri)
    if base is None or not experiment_id or not run_id:
        return None
    route = f"/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(str(run_id), safe='')}"
    return f"{base}/#{route}?{WORKFLOW_QUERY}"
