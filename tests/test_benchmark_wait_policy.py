"""benchmarks/wait_policy.py runs each policy in its own process, under that policy, in turn, and ends with its
ratio (so it cannot rot)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wait_policy_benchmark_times_both_policies() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    command = [sys.executable, str(ROOT / "benchmarks" / "wait_policy.py"), "--config", "configs/cpu_demo.yaml"]
    command += ["--batch-size", "4", "--steps", "1", "--rounds", "2", "--threads", "1"]
    command += ["--policies", "default (unset)", "PASSIVE"]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    # Each child reports the policy it ran under and the parent refuses a mismatch: importing train_step.py (for
    # its StepTimer) must not choose sedwatt's policy in the "default (unset)" child, or this run fails.
    rounds = re.findall(r"^round (\d) (default \(unset\)|PASSIVE) +median +[\d.]+ ms/step +[\d.]+ CPU-ms/step$", out, re.M)
    # Alternated: the second round starts with the policy the first ended with.
    assert rounds == [("1", "default (unset)"), ("1", "PASSIVE"), ("2", "PASSIVE"), ("2", "default (unset)")]
    last = re.fullmatch(r"passive_vs_default=(\d+\.\d{3})", out.strip().splitlines()[-1])
    assert last and float(last.group(1)) > 0
