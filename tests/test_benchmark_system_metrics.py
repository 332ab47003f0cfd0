"""benchmarks/system_metrics.py runs, samples, and ends with its figure line (so it cannot rot)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads per-thread CPU time from /proc")
def test_system_metrics_benchmark_measures_its_sampler() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "system_metrics.py"), "--seconds", "3", "--interval", "1"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = out.stdout.strip().splitlines()
    logged = int(re.match(r"(\d+) samples logged", lines[0]).group(1))
    assert logged >= 2  # the run really logged system metrics
    last = re.fullmatch(r"system_metrics_cpu_ms_per_sample=([\d.]+) share_of_one_core_at_10s=([\d.]+)%", lines[-1])
    assert last and float(last.group(1)) > 0  # the sampler thread's own CPU time was read
