"""Keep freed CPU memory for the next training step instead of handing it back to the kernel.

glibc serves every allocation above its mmap threshold (128 KiB, rising to at most 32 MiB) with a fresh
``mmap`` and unmaps it on ``free``. A training step allocates and frees the same large maps every time (the
first block's output alone is 48 × 16 × 626 × 128 floats = 61 MB at the recipe's batch), so each step
page-faults gigabytes in again: on a 2-core VM a third of the step's CPU time was the kernel's (6.5 million
minor faults in four steps of ``dcase2022_fast.yaml`` at batch 48). With ``mmap`` off for the heap and the
trim threshold raised, freed maps stay in the process and the next step reuses them: 1.2 million faults for
the same four steps, and the step ~1.6× faster (benchmarks/train_step.py, README "Measured"). The cost is
a higher peak resident size (the heap keeps its high-water mark: ~5.6 GB instead of ~4.0 GB there).

Only glibc's public ``mallopt`` is used, and only on glibc; elsewhere nothing changes. Config switch:
``train.reuse_freed_memory`` (default on). The setting is process-wide and stays for the process's life.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from sedwatt.training.callbacks import Callback, RunState

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
# Freed heap memory above this is returned to the kernel: far above any step's working set.
TRIM_THRESHOLD = 2**31 - 1
# glibc's defaults as they settle in a training loop: its dynamic mmap threshold rises to its cap (32 MiB on
# 64-bit) after the first large frees, the trim threshold to twice that; mmap stays on (65,536 maps).
GLIBC_SETTLED = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20}


@functools.cache
def _glibc() -> tuple[ctypes.CDLL, str] | None:
    """glibc and its version, or None where the C library is another one (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        version = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc, version().decode()


def set_allocator(reuse: bool) -> str:
    """Keep freed memory (``reuse``) or go back to glibc's settled defaults and release what is kept; say what
    was done. Benchmarks alternate the two in one process (benchmarks/train_step.py)."""
    glibc = _glibc()
    if glibc is None:
        return "unchanged (not glibc)"
    libc, version = glibc
    settings = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: TRIM_THRESHOLD} if reuse else GLIBC_SETTLED
    if not all(libc.mallopt(param, value) == 1 for param, value in settings.items()):
        return f"unchanged (glibc {version} refused mallopt)"
    if reuse:
        return f"reuse (glibc {version}: no mmap per allocation, no trimming)"
    libc.malloc_trim(0)
    return f"glibc {version} defaults"


@functools.cache
def keep_freed_memory() -> str:
    """``set_allocator(reuse=True)`` once per process: later calls only report what the first did."""
    return set_allocator(True)


class ReuseFreedMemory(Callback):
    """Applies ``keep_freed_memory`` before the first step (when ``enabled``) and records what the process's
    allocator does as the run tag ``sedwatt.malloc``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def on_train_start(self, state: RunState) -> None:
        done = keep_freed_memory() if self.enabled else "unchanged (train.reuse_freed_memory=false)"
        state.info.setdefault("tags", {})["sedwatt.malloc"] = done
