"""Freed memory is kept for the next step: a step's large allocations stop page-faulting (glibc only).

The setting is process-wide, so each case runs in its own Python process, which does 16 "steps" of
allocating, using and freeing two 64 MiB tensors and counts the minor page faults of each. glibc maps such
tensors afresh every time by default. With freed memory kept, the heap takes a few steps to hold free
chunks large enough for torch's 64-byte-aligned requests (up to ~7 steps here), then serves the steps from
them; the last 8 steps are compared.
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
from sedwatt.memory import keep_freed_memory, set_allocator
done = keep_freed_memory() if sys.argv[1] != "default" else "default"
if sys.argv[1] == "reuse-then-default":
    done = set_allocator(False)
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 * 2**20)  # 64 MiB of float32
    y = x * 2
    del x, y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"done": done, "faults": faults}))
"""
PAGES = 2 * 16 * 2**20 * 4 // 4096  # one step's 4 KiB pages


def last_steps_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    return probe["done"], sum(probe["faults"][-8:])


@pytest.mark.skipif(_glibc() is None, reason="mallopt is glibc's")
def test_steps_reuse_freed_pages() -> None:
    (_, default), (reuse_done, reuse), (back_done, back) = map(
        last_steps_faults, ("default", "reuse", "reuse-then-default")
    )
    assert default > 4 * PAGES  # every step faults its tensors in again
    assert reuse < PAGES  # kept: the pages are already there
    assert reuse_done.startswith("reuse (glibc ")
    # Back to glibc's settled defaults (benchmarks alternate): 64 MiB is above its 32 MiB mmap cap.
    assert back > 4 * PAGES
    assert back_done.endswith(" defaults")


def test_callback_records_what_the_process_does(tmp_path) -> None:
    on, off = (RunState(config=SedwattConfig(), out_dir=tmp_path) for _ in range(2))
    ReuseFreedMemory(enabled=False).on_train_start(off)
    assert off.info["tags"]["sedwatt.malloc"] == "unchanged (train.reuse_freed_memory=false)"
    ReuseFreedMemory(enabled=True).on_train_start(on)
    assert on.info["tags"]["sedwatt.malloc"] == keep_freed_memory()
