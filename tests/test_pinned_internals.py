"""Libraries whose private internals sedwatt reads: one adapter each, the only place touching them.

CodeCarbon and psds_eval are refused at any version but the one their adapter was checked against
(a one-line SedwattError, before any figure is computed); MLflow's undocumented fast paths in the
analysis fall back to the public routes when the MLflow on the other side differs.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pandas as pd
import pytest
from sedwatt_analysis import history, mlflow_adapter

from sedwatt.config import EnergyConfig
from sedwatt.energy import EnergySession
from sedwatt.energy import codecarbon_adapter as cc
from sedwatt.errors import SedwattError
from sedwatt.metrics import psds_eval_adapter, psds_result
from served_store import canonical, client_histories, run_ids_of

REPO = Path(__file__).resolve().parents[1]


def pretend_installed(monkeypatch, distribution: str, version: str | None) -> None:
    """importlib.metadata answers ``version`` (None: not installed) for ``distribution`` only."""
    real = importlib.metadata.version

    def fake(name: str) -> str:
        if name == distribution:
            if version is None:
                raise importlib.metadata.PackageNotFoundError(name)
            return version
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", fake)


@pytest.mark.parametrize(("adapter", "distribution"), [(cc, "codecarbon"), (psds_eval_adapter, "psds_eval")])
def test_exact_pins_are_the_installed_versions(adapter, distribution):
    """Only the exactly pinned libraries: MLflow's range lets a patch in, and its adapter falls back."""
    required = adapter.REQUIRED_VERSION
    assert f'"{distribution}=={required}"' in (REPO / "pyproject.toml").read_text()  # pinned there too
    assert importlib.metadata.version(distribution) == required
    adapter.check_version()


@pytest.mark.parametrize(
    ("adapter", "distribution", "other"),
    [(cc, "codecarbon", "3.4.0"), (psds_eval_adapter, "psds_eval", "0.5.4")],
)
def test_adapter_refuses_another_version_in_one_line(monkeypatch, adapter, distribution, other):
    pretend_installed(monkeypatch, distribution, other)
    with pytest.raises(SedwattError) as info:
        adapter.check_version()
    required = adapter.REQUIRED_VERSION
    assert str(info.value) == (
        f"{distribution} {other} is installed but sedwatt reads its private internals and was checked "
        f"against exactly {required}: pip install {distribution}=={required}"
    )
    pretend_installed(monkeypatch, distribution, None)
    with pytest.raises(SedwattError, match=rf"^{distribution} is not installed but .*=={required}$"):
        adapter.check_version()


def test_energy_session_refuses_another_codecarbon_before_measuring(monkeypatch, tmp_path):
    pretend_installed(monkeypatch, "codecarbon", "3.4.0")
    with pytest.raises(SedwattError, match=r"^codecarbon 3\.4\.0 is installed .*codecarbon==3\.3\.2$"):
        EnergySession(EnergyConfig(), tmp_path / "energy")
    assert not (tmp_path / "energy").exists()  # no tracker was built, no CSV written


def test_psds_refuses_another_psds_eval(monkeypatch):
    truth = pd.DataFrame({"filename": ["a.wav"], "onset": [1.0], "offset": [2.0], "event_label": ["Dog"]})
    durations = pd.DataFrame({"filename": ["a.wav"], "duration": [10.0]})
    pretend_installed(monkeypatch, "psds_eval", "0.6.0")
    with pytest.raises(SedwattError, match=r"^psds_eval 0\.6\.0 is installed .*psds_eval==0\.5\.3$"):
        psds_result({0.5: truth}, truth, durations)


# Private names (attribute access or a string naming it) and the one module allowed to use each.
PRIVATE_USES = {
    "src/sedwatt/energy/codecarbon_adapter.py": [
        "_measure_power_and_energy", "_hardware", "_active_task", "_output_handlers", "_scheduler",
        "_electricitymaps_api_token", "_api_call_interval", "_get_cpu_power_from_registry",
        "_force_ram_power", "_has_counter", "_tdp", "_mode", "hardware_cache", "DEFAULT_POWER_PER_CORE",
    ],
    "src/sedwatt/metrics/psds_eval_adapter.py": ["_effective_tp_ratio", "_auc", "psds_eval.psds import"],
    "analysis/mlflow_adapter.py": ["ajax-api", "mlflow.utils.rest_utils", "mlflow.utils.credentials"],
}  # fmt: skip


def test_only_the_adapters_touch_private_names():
    sources = [p for folder in ("src", "analysis") for p in sorted((REPO / folder).rglob("*.py"))]
    assert sources
    for owner, names in PRIVATE_USES.items():
        for name in names:
            if name.startswith("_"):
                pattern = re.compile(rf"(?<!self)\.{name}\b|['\"]{name}['\"]")
            else:
                pattern = re.compile(re.escape(name))
            users = {str(p.relative_to(REPO)) for p in sources if pattern.search(p.read_text())}
            assert users == {owner}, (name, users)


# The gates compare against CHECKED_VERSION; set to the installed MLflow, the fast path must be taken
# (whatever patch release CI installs), set to another, the public fallback must give the same table.
def test_mlflow_sql_read_falls_back_to_the_client_for_another_mlflow(served, monkeypatch):
    sqlite_uri, _ = served
    ids = run_ids_of(sqlite_uri)
    monkeypatch.setattr(mlflow_adapter, "CHECKED_VERSION", importlib.metadata.version("mlflow"))
    assert history.fetch_histories(sqlite_uri, ids).route == "sql"
    monkeypatch.setattr(mlflow_adapter, "CHECKED_VERSION", "3.0.0")  # as if MLflow had moved on
    fetched = history.fetch_histories(sqlite_uri, ids)
    assert fetched.route == "client"
    assert canonical(fetched.table) == canonical(client_histories(sqlite_uri, ids))


def test_mlflow_ui_bulk_route_only_on_the_checked_server_version(served, monkeypatch):
    sqlite_uri, url = served
    ids = run_ids_of(sqlite_uri)
    creds = mlflow_adapter.host_creds(url)
    installed = importlib.metadata.version("mlflow")
    assert mlflow_adapter.server_version(creds) == installed  # the server is the installed MLflow
    monkeypatch.setattr(mlflow_adapter, "CHECKED_VERSION", installed)
    assert history.fetch_rest_bulk(url, ids, history.CURVE_KEYS).route == "rest-bulk"
    monkeypatch.setattr(mlflow_adapter, "CHECKED_VERSION", "3.0.0")  # as if the server had moved on
    fetched = history.fetch_rest_bulk(url, ids, history.CURVE_KEYS)
    assert fetched.route == "rest-interval"
    assert canonical(fetched.table) == canonical(client_histories(sqlite_uri, ids))
