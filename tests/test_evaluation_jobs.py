"""`sedwatt evaluate` and `sedwatt calibrate` are sedwatt jobs while they run, like a training.

Beside a training, an evaluation that does not register would take every core (and the training
would not give up its threads). Here another job (a process of its own) is held in a jobs folder of the test's own, and
the dev-test pass is replaced by a probe that looks at the jobs folder and torch's threads, then
stops the command: the probe sees both jobs and the evaluation's share; afterwards only the other
job is left.
"""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest
import torch

from sedwatt import threads
from sedwatt.config import load_config
from sedwatt.evaluation import calibrate, evaluate
from sedwatt.model import build_crnn
from sedwatt.tracking.registry import log_model


class Probed(Exception):
    """Raised by the probe in place of the dev-test pass: what the test needed has been seen."""


HOLDER = "import time; from sedwatt.threads import register_job; register_job('train'); print('ready', flush=True); time.sleep(600)"


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    """A jobs folder of the test's own with one other live job, a training in another process (jobs count per
    process: a second job of this one would share its threads); the automatic share (no OMP_NUM_THREADS)."""
    folder = tmp_path / "jobs"
    monkeypatch.setenv("SEDWATT_JOBS_DIR", str(folder))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    other = subprocess.Popen([sys.executable, "-c", HOLDER], env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "ready"
    before = torch.get_num_threads()
    yield folder
    torch.set_num_threads(before)
    other.kill()
    other.wait(timeout=10)


@pytest.fixture
def probe(monkeypatch):
    """Replaces the dev-test pass; ``seen`` gets this process's job files, the live jobs and torch's threads."""
    import sedwatt.evaluation.devtest as devtest

    seen: dict[str, object] = {}

    def look(*_args, **_kwargs):
        folder = threads.jobs_dir()
        seen["mine"] = sorted(p.name.split("-")[1] for p in folder.glob(f"{os.getpid()}-*.job"))  # this process's
        seen["live"] = threads.live_jobs()
        seen["threads"] = torch.get_num_threads()
        raise Probed

    monkeypatch.setattr(devtest, "run_devtest", look)
    return seen


def test_an_evaluation_is_a_job_and_takes_its_share(jobs, probe, tmp_path, monkeypatch, tiny_data, tiny_overrides):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    config = load_config(None, [*tiny_overrides, "energy.enabled=false"])
    (tmp_path / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    client = mlflow.MlflowClient()
    run_id = client.create_run(client.create_experiment("jobs")).info.run_id
    uri = log_model(build_crnn(config), run_id, requirements=[], config=config)
    mlflow.set_tracking_uri(None)
    torch.set_num_threads(threads.usable_cpus())  # as a process starts: one thread per core

    with pytest.raises(Probed):
        evaluate(uri, tiny_data, config_path=tmp_path / "config.yaml")
    assert probe == {"mine": ["evaluate"], "live": 2, "threads": max(1, threads.usable_cpus() // 2)}
    assert sorted(p.name.split("-")[1] for p in jobs.glob("*.job")) == ["train"]  # its file went with it


def test_a_calibration_is_a_job_and_takes_its_share(jobs, probe, tmp_path, monkeypatch, tiny_data):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(threads.usable_cpus())

    with pytest.raises(Probed):
        calibrate(tiny_data, overrides=["data.clip_seconds=4.0"])
    assert probe == {"mine": ["calibrate"], "live": 2, "threads": max(1, threads.usable_cpus() // 2)}
    assert sorted(p.name.split("-")[1] for p in jobs.glob("*.job")) == ["train"]
