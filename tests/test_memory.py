"""Freed memory is kept for the next step: a second large allocation no longer page-faults (glibc only).

The setting is process-wide, so each case runs in its own Python process, which allocates and frees a
64 MiB tensor, then allocates one again and counts the minor page faults of filling it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sedwatt.config import SedwattConfig
from sedwatt.memory import ReuseFreedMemory, _glibc, keep_freed_memory
from sedwatt.training.callbacks import RunState

PROBE = """
import json, resource, sys, torch
from sedwatt.config import SedwattConfig
from sedwatt.memory import keep_freed_memory
done = keep_freed_memory() if sys.argv[1] == "reuse" else "default"
n = 16 * 2**20  # 64 MiB of float32
torch.ones(n)  # allocated, filled, freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(n)
print(json.dumps({"done": done, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""
PAGES = 16 * 2**20 * 4 // 4096  # the tensor's 4 KiB pages


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_glibc() is None, reason="mallopt is glibc's")
def test_second_allocation_reuses_freed_pages() -> None:
    default, reuse = probe("default"), probe("reuse")
    assert default["faults"] > PAGES // 2  # glibc unmapped the first tensor: every page faults in again
    assert reuse["faults"] < PAGES // 20  # kept: the pages are already there
    assert reuse["done"].startswith("reuse (glibc ")


def test_callback_records_what_the_process_does(tmp_path) -> None:
    on, off = (RunState(config=SedwattConfig(), out_dir=tmp_path) for _ in range(2))
    ReuseFreedMemory(enabled=False).on_train_start(off)
    assert off.info["tags"]["sedwatt.malloc"] == "unchanged (train.reuse_freed_memory=false)"
    ReuseFreedMemory(enabled=True).on_train_start(on)
    assert on.info["tags"]["sedwatt.malloc"] == keep_freed_memory()
