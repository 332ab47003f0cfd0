"""Write-then-rename: a file is either its old self or its complete new self, never half-written.

Checkpoints, spools, CSVs, plots and reports are all written this way, so a run killed mid-write
(or two workers writing the same cache entry) never leaves a torn file for the next reader.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@functools.cache
def _umask_mode() -> int:
    """What ``open(path, "w")`` would give a new file (mkstemp alone gives 0o600, surprising for shared reports).

    Read once per process (sedwatt never changes its umask; every atomic write re-reading /proc did);
    code that changes the umask afterwards calls ``_umask_mode.cache_clear()``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it the portable way, and put it back at once
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: Path | str, *, suffix: str = ".tmp", mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path``: renamed onto ``path`` when the block succeeds, removed when it fails.

    The file gets ``mode``, else the mode the current umask gives a new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        os.fchmod(fd, _umask_mode() if mode is None else mode)
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, data: str | bytes, *, mode: int | None = None, fsync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8, no newline translation) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path, mode=mode) as tmp, open(tmp, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    return path
