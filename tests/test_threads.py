"""Each sedwatt job takes its share of the CPUs: config > OMP_NUM_THREADS > usable CPUs // live jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from sedwatt.threads import ThreadShare, live_jobs, register_job, thread_budget
from sedwatt.training.callbacks import RunState

HOLDER = "import sys, time; from sedwatt.threads import register_job; register_job('held'); print('ready', flush=True); time.sleep(600)"


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    directory = tmp_path / "jobs"
    monkeypatch.setenv("SEDWATT_JOBS_DIR", str(directory))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield directory
    torch.set_num_threads(before)


def start_holder(env_dir) -> subprocess.Popen:
    env = {**os.environ, "SEDWATT_JOBS_DIR": str(env_dir)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_precedence(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_budget(3, cpus=16, jobs=4) == (3, "config train.num_threads")
    assert thread_budget(None, cpus=16, jobs=4)[0] == 4
    assert thread_budget(None, cpus=2, jobs=3)[0] == 1  # never zero
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert thread_budget(None, cpus=16, jobs=4) == (5, "OMP_NUM_THREADS")
    assert thread_budget(2, cpus=16, jobs=4)[0] == 2


def test_a_killed_job_stops_counting(jobs):
    mine = register_job("train")
    holder = start_holder(jobs)
    try:
        assert live_jobs() == 2
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert live_jobs() == 1  # the kernel dropped its lock; its file is cleaned up
        assert sorted(p.name for p in jobs.glob("*.job")) == [mine.path.name]
    finally:
        holder.kill()
        mine.release()
    assert live_jobs() == 0


def test_share_follows_the_jobs_at_each_epoch(jobs, monkeypatch):
    monkeypatch.setattr("sedwatt.threads.usable_cpus", lambda: 4)
    share = ThreadShare(None)
    state = RunState(config=None, out_dir=jobs)
    share.on_train_start(state)  # alone: all 4
    assert torch.get_num_threads() == 4 and state.info["tags"]["sedwatt.num_threads"] == "4"
    holder = start_holder(jobs)
    try:
        share.on_epoch_start(state)  # a second job arrived: half each
        assert torch.get_num_threads() == 2
        assert state.info["tags"]["sedwatt.num_threads_source"] == "4 usable CPUs / 2 sedwatt job(s)"
    finally:
        holder.kill()
        holder.wait(timeout=10)
    time.sleep(0.1)
    share.on_epoch_start(state)  # it left: take them back
    assert torch.get_num_threads() == 4
    share.on_train_end(state)
    assert live_jobs() == 0


def test_two_jobs_of_one_kind_in_one_process_keep_their_own_files(jobs):
    """A training run and an evaluation in one process: neither replaces nor removes the other's file."""
    first = register_job("evaluate")
    second = register_job("evaluate")
    try:
        assert first.path != second.path and first.path.is_file() and second.path.is_file()
        assert live_jobs() == 2
        first.release()
        assert not first.path.exists() and second.path.is_file()
        assert live_jobs() == 1  # the second one's lock still holds
    finally:
        first.release()
        second.release()
    assert live_jobs() == 0 and list(jobs.iterdir()) == []


@pytest.mark.parametrize("preset", [None, "ACTIVE"])
def test_the_command_lets_waiting_threads_sleep_unless_told_otherwise(preset, monkeypatch):
    """`sedwatt` sets OMP_WAIT_POLICY=PASSIVE before any subcommand imports torch; a user's value stays."""
    from sedwatt.cli import main

    if preset is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["OMP_WAIT_POLICY"] == (preset or "PASSIVE")
