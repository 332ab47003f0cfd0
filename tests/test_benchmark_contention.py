"""benchmarks/contention.py runs one job alone and two at once and ends with its ratio line (so it cannot rot)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_contention_benchmark_compares_a_pair_with_a_job_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    command = [sys.executable, str(ROOT / "benchmarks" / "contention.py"), "--epochs", "2", "--threads", "1"]
    command.append("--no-warmup")  # one training fewer: this checks that it runs and reports, not the figures
    done = subprocess.run(command + ["--keep", str(tmp_path / "work")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    jobs = {line.split()[0]: line for line in lines if re.match(r"(alone|pair-a|pair-b) +epoch", line)}
    assert set(jobs) == {"alone", "pair-a", "pair-b"}
    for name in ("pair-a", "pair-b"):  # each pair job: a ratio for time and all three energy figures
        assert len(re.findall(r"\(\d+\.\d\d×\)", jobs[name])) == 4, jobs[name]
    last = re.fullmatch(
        r"epoch_time_ratio=([\d.]+)/([\d.]+) machine_energy_ratio=[\d.]+/[\d.]+ "
        r"process_energy_ratio=[\d.]+/[\d.]+ busy_share_energy_ratio=[\d.]+/[\d.]+",
        lines[-1],
    )
    assert last and min(float(last.group(1)), float(last.group(2))) > 0
