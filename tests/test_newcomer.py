"""What a newcomer types after `make demo`: the printed commands run as printed, the links open the right view.

The UI and dashboard commands are started exactly as the demo prints them (`make -C <checkout> ui …` and the
full `.venv/bin/mlflow ui …` line), from another folder, with a PATH that has no venv on it, and must answer
HTTP 200 on 127.0.0.1 with the store they were pointed at. The run links must carry MLflow's training-view
parameter where the UI reads it (inside the hash route); with a browser installed, a headless one checks
that the page really is the training view (on the same server as the direct ``mlflow ui`` line's test: one
start for both). The study's Pareto HTML must be light and say its units.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import mlflow
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from launch import bare_env, http_get, started
from sedwatt.cli.demo import dashboard_command, ui_command
from sedwatt.search.report import write_study_report
from sedwatt.tracking import ensure_experiment
from sedwatt.tracking.links import artifact_url, experiment_url, run_url, ui_base
from sedwatt.tracking.uri import project_root
from servers import free_port

ROOT = project_root()


def _store_with_a_run(uri: str) -> tuple[str, str]:
    """(experiment id, run id) of a finished run, 2 epochs of val_f1 and energy, in the store at ``uri``."""
    experiment_id = ensure_experiment("newcomer", tracking_uri=uri)
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(experiment_id).info.run_id
    for step in (1, 2):
        client.log_metric(run_id, "val_f1", 0.2 * step, step=step)
        client.log_metric(run_id, "energy_cum_kwh", 0.001 * step, step=step)
    client.set_terminated(run_id)
    return experiment_id, run_id


@contextlib.contextmanager
def _printed_ui(folder: Path, form: str, fresh_store: Callable[[Path], str]) -> Iterator[SimpleNamespace]:
    """The printed UI command (``form``: make or direct) on a new store holding one run, started as printed
    from another folder; yields its ``url``, ``experiment_id`` and ``run_id``."""
    assert ROOT is not None, "these tests run from the checkout"
    uri = fresh_store(folder / "store")
    experiment_id, run_id = _store_with_a_run(uri)
    port = free_port()
    printed = ui_command(ROOT, uri, port=port, cwd=folder)
    assert printed is not None and printed.url == f"http://127.0.0.1:{port}"
    command = printed.make if form == "make" else printed.direct
    assert command is not None
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    with started(command, elsewhere, printed.url):
        yield SimpleNamespace(url=printed.url, experiment_id=experiment_id, run_id=run_id)


@pytest.fixture(scope="module")
def direct_ui(tmp_path_factory, fresh_store) -> Iterator[SimpleNamespace]:
    """The full ``mlflow ui`` line's server, started once for the direct-form test and the browser test."""
    with _printed_ui(tmp_path_factory.mktemp("direct-ui"), "direct", fresh_store) as ui:
        yield ui


def _serves_the_run(ui: SimpleNamespace) -> None:
    assert http_get(ui.url)[0] == 200
    status, body = http_get(f"{ui.url}/api/2.0/mlflow/runs/get?run_id={ui.run_id}")
    assert status == 200 and json.loads(body)["run"]["info"]["experiment_id"] == ui.experiment_id


@pytest.mark.integration
def test_printed_make_ui_serves_the_store_from_anywhere(tmp_path, fresh_store):
    with _printed_ui(tmp_path, "make", fresh_store) as ui:
        _serves_the_run(ui)


@pytest.mark.integration
def test_printed_mlflow_ui_line_serves_the_store_from_anywhere(direct_ui):
    _serves_the_run(direct_ui)


@pytest.mark.integration
@pytest.mark.parametrize("form", ["make", "direct"])
def test_printed_dashboard_command_serves_the_demo_study(tmp_path, form):
    assert ROOT is not None, "these tests run from the checkout"
    out = tmp_path / "my demo"  # a space: the printed command must quote it
    out.mkdir()
    study = optuna.create_study(study_name="demo-batch-size", storage=f"sqlite:///{out / 'optuna.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    study.add_trial(create_trial(params={"batch_size": 8}, distributions={"batch_size": CategoricalDistribution([8])},
                                 values=[0.4, 0.002]))  # fmt: skip
    port = free_port()
    printed = dashboard_command(ROOT, out, port=port, cwd=tmp_path)
    command = printed.make if form == "make" else printed.direct
    assert command is not None
    with started(command, tmp_path, printed.url):
        status, body = http_get(f"http://127.0.0.1:{port}/api/studies")
        assert status == 200 and "demo-batch-size" in body


def test_make_dashboard_without_a_study_says_run_make_demo(tmp_path):
    assert ROOT is not None
    done = subprocess.run(["make", "-C", str(ROOT), "dashboard", f"DEMO_DIR={tmp_path}"], env=bare_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0 and "run make demo first" in done.stderr


def test_every_printed_command_is_runnable_without_an_activated_venv(tmp_path):
    assert ROOT is not None
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    ui = ui_command(ROOT, uri, cwd=ROOT)
    dash = dashboard_command(ROOT, ROOT / "demo", cwd=ROOT)
    assert ui is not None and ui.make == f"make ui MLFLOW_TRACKING_URI={uri}" and dash.make == "make dashboard"
    for direct in (ui.direct, dash.direct):
        program = direct.split()[0]
        assert Path(program).is_absolute() and os.access(program, os.X_OK), direct
    assert ui_command(ROOT, "http://mlflow.lab:5000") is None  # a server is its own UI


def test_links_carry_the_training_view_inside_the_hash_route():
    base = "http://127.0.0.1:5000"
    run = run_url(base, "3", "ab" * 16, tab="model-metrics")
    assert run == f"{base}/#/experiments/3/runs/{'ab' * 16}/model-metrics?workflowType=machine_learning"
    assert experiment_url(base + "/", "3") == f"{base}/#/experiments/3?workflowType=machine_learning"
    art = artifact_url(base, "3", "cd" * 16, "study/pareto_front.png")
    assert art.endswith("/artifacts/study/pareto_front.png?workflowType=machine_learning")
    for url in (run, art):
        assert "?" not in url.split("#", 1)[0]  # a real query string is ignored by the UI
    assert ui_base("http://alice:pw@mlflow.lab:5000/") == "http://mlflow.lab:5000"  # never print a password
    with pytest.raises(ValueError, match="tab 'metrics'"):
        run_url(base, "3", "ab" * 16, tab="metrics")


def test_installed_mlflow_ui_reads_the_view_parameter_we_send():
    """Guards an MLflow upgrade: its bundle must still read ``workflowType`` and know ``machine_learning``."""
    build = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    bundles = [p.read_text(errors="replace") for p in build.glob("*.js")]
    assert any('get("workflowType")' in text and '"machine_learning"' in text for text in bundles)


def _browser() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _page_text(browser: str, url: str, profile: Path) -> str:
    done = subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", done.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


@pytest.mark.integration
@pytest.mark.skipif(_browser() is None, reason="no headless chromium to render the MLflow UI")
def test_run_link_opens_the_training_view_in_a_browser(tmp_path, direct_ui):
    browser = _browser()
    assert browser is not None
    experiment_id, run_id = direct_ui.experiment_id, direct_ui.run_id
    link = run_url(direct_ui.url, experiment_id, run_id, tab="model-metrics")
    trained = _page_text(browser, link, tmp_path / "profile-1")
    plain_link = f"{direct_ui.url}/#/experiments/{experiment_id}/runs/{run_id}"
    plain = _page_text(browser, plain_link, tmp_path / "profile-2")
    # MLflow's GenAI view lists "Evaluation runs" in its side bar and files the run under "Evaluations"
    assert "Evaluation runs" in plain, plain[:2000]
    assert "Evaluation runs" not in trained and "Model registry" in trained, trained[:2000]
    assert "Model metrics (2)" in trained  # the tab that opened: the run's two metric charts (val_f1, energy)


def _study(n_trials: int) -> optuna.Study:
    rng = random.Random(n_trials)
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="light")
    sizes = [4, 8, 16, 32, 64]
    for _ in range(n_trials):
        study.add_trial(create_trial(
            params={"batch_size": rng.choice(sizes)}, distributions={"batch_size": CategoricalDistribution(sizes)},
            values=[rng.uniform(0.2, 0.6), rng.uniform(0.001, 0.03)], user_attrs={"mlflow_run_id": f"{rng.getrandbits(128):032x}"},
        ))  # fmt: skip
    return study


@pytest.mark.parametrize("n_trials", [1, 120])
def test_pareto_html_is_light_offline_and_says_its_units(tmp_path, n_trials):
    paths = write_study_report(_study(n_trials), tmp_path)
    page = paths["html"].read_text()
    assert paths["html"].stat().st_size < 200_000
    assert "<script" not in page and 'src="http' not in page  # renders offline and in MLflow's sandboxed viewer
    for label in ("training energy (Wh)", "intersection F1 (%)", "trial number (order of sampling)"):
        assert label in page
    assert len(re.findall(r"<title>#\d+ batch_size=\d+: \w+ [\d.]+ %, \w+ [\d.e+-]+ Wh", page)) == n_trials  # hover texts
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
