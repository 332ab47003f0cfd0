"""Each sedwatt job takes its share of the CPUs: config > OMP_NUM_THREADS > usable CPUs // live jobs."""

from __future__ import annotations

import argparse
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
        assert live_jobs() == 1  # one process, one thread pool: one share of the CPUs
        first.release()
        assert not first.path.exists() and second.path.is_file()
        assert live_jobs() == 1  # the second one's lock still holds
    finally:
        first.release()
        second.release()
    assert live_jobs() == 0 and list(jobs.iterdir()) == []


def test_jobs_count_per_process(jobs, monkeypatch):
    """Two jobs in this process and one in another: two processes share the CPUs, half each."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    first, second = register_job("train"), register_job("evaluate")
    holder = start_holder(jobs)
    try:
        assert len(list(jobs.glob("*.job"))) == 3 and live_jobs() == 2
        assert thread_budget(None, cpus=4) == (2, "4 usable CPUs / 2 sedwatt job(s)")
    finally:
        holder.kill()
        holder.wait(timeout=10)
        first.release()
        second.release()


@pytest.mark.parametrize(
    ("preset", "others", "expected", "note"),
    [
        (None, 0.1, None, "default: spin, then sleep (other processes used 0.1 CPUs at the start)"),
        (None, 1.3, "PASSIVE", "PASSIVE (other processes used 1.3 CPUs at the start)"),
        ("ACTIVE", 1.3, "ACTIVE", "ACTIVE (environment)"),
    ],
)
def test_waiting_threads_sleep_when_the_machine_is_busy_at_the_start(preset, others, expected, note, monkeypatch):
    """Idle machine: libgomp's default (spinning first is faster); busy: PASSIVE; a user's value stays."""
    from sedwatt.threads import choose_wait_policy, wait_policy_note

    monkeypatch.setenv("OMP_WAIT_POLICY", preset or "")  # recorded, so the teardown restores what was there
    if preset is None:
        monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr("sedwatt.threads._wait_policy_choice", None)
    assert choose_wait_policy(lambda: others, torch_loaded=False) == note
    assert os.environ.get("OMP_WAIT_POLICY") == expected
    assert wait_policy_note() == note  # the run tag
    assert choose_wait_policy(lambda: 1.9 - others, torch_loaded=False) == note  # the process's first choice stands

    share, state = ThreadShare(1), RunState(config=None, out_dir=None)
    share.on_epoch_start(state)
    assert state.info["tags"]["sedwatt.omp_wait_policy"] == note


def test_choosing_after_torch_is_loaded_changes_nothing_and_says_so(monkeypatch):
    """`sedwatt.cli.main` called from a Python session that imported torch: OpenMP has read its policy."""
    from sedwatt.threads import choose_wait_policy

    monkeypatch.setenv("OMP_WAIT_POLICY", "")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr("sedwatt.threads._wait_policy_choice", None)
    note = choose_wait_policy(lambda: pytest.fail("sampled"), torch_loaded=True)
    assert note == "default: spin, then sleep (not chosen: torch was loaded before the sedwatt command started)"
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize(("command", "decides"), [("check-data", False), ("score", False), ("train", True)])
def test_only_torch_commands_sample_the_machine(command, decides, monkeypatch):
    """Commands that do not run torch do not spend a quarter second sampling the CPUs; training ones do."""
    import sedwatt.cli as cli

    monkeypatch.setenv("OMP_WAIT_POLICY", "")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr("sedwatt.threads._wait_policy_choice", None)
    monkeypatch.setattr("sys.modules", {k: v for k, v in sys.modules.items() if k != "torch"})  # as at start
    sampled = []
    monkeypatch.setattr("sedwatt.threads.others_cpu_use", lambda: sampled.append(1) or 0.0)
    build = cli.build_parser

    def parser():  # the command's own work replaced: only the choice before it is under test
        p = build()
        parse = p.parse_args
        p.parse_args = lambda argv=None: argparse.Namespace(**{**vars(parse(argv)), "func": lambda args: 0})
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    argv = {"check-data": ["check-data", "DIR"], "score": ["score", "--help"], "train": ["train", "--data", "DIR"]}
    if command == "score":  # --help exits inside the parser, before any choice
        with pytest.raises(SystemExit):
            cli.main(argv[command])
    else:
        assert cli.main(argv[command]) == 0
    assert bool(sampled) == decides


def test_the_command_chooses_before_torch_starts(tmp_path):
    """In a fresh `sedwatt` process beside a busy loop, a training command's torch starts with PASSIVE."""
    probe = """
import sys, sedwatt.cli as cli, sedwatt.threads as t
def func(args):
    loaded = "torch" in sys.modules  # the choice was made before anything imported torch
    print(loaded, "|", __import__("os").environ.get("OMP_WAIT_POLICY"), "|", t.wait_policy_note())
    return 0
build = cli.build_parser
def parser():
    p = build()
    parse = p.parse_args
    def parse_then_probe(argv=None):
        args = parse(argv)
        args.func = func
        return args
    p.parse_args = parse_then_probe
    return p
cli.build_parser = parser
sys.exit(cli.main(sys.argv[1:]))
"""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        out = subprocess.run([sys.executable, "-c", probe, "calibrate", "--data", str(tmp_path)], env=env,
                             capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    finally:
        busy.kill()
        busy.wait()
    loaded, policy, note = out.strip().splitlines()[-1].split(" | ")
    assert loaded == "False" and policy == "PASSIVE" and note.startswith("PASSIVE (other processes used ")
