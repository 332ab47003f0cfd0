"""How many intra-op threads a sedwatt job may use: its CPUs divided among the sedwatt jobs sharing them.

PyTorch starts one OpenMP thread per core in every process. Two jobs on a 2-core machine then run
four spinning threads on two cores, and each epoch took 5–15× longer instead of 2× (measured:
README "Measured", contention). So every training, search trial and evaluation registers itself as
a *job* for its lifetime — a file under ``~/.cache/sedwatt/jobs`` (``$SEDWATT_JOBS_DIR``) held with an
exclusive ``flock``, which the kernel releases when the process dies, however it dies — and takes
``CPUs it may use // live jobs`` threads (at least one). The share is recomputed at every epoch start,
so a job that started alone gives up threads when a second one arrives, and takes them back after.

Waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE``, set by the ``sedwatt`` command before torch starts
its OpenMP pool, unless the environment sets it): by default an idle OpenMP thread spins for a while
before it sleeps, which on a machine busy with other work takes cores from the threads doing the step
(README "Measured", contention).

Precedence: ``train.num_threads`` (config) > ``OMP_NUM_THREADS`` (environment, as every OpenMP
program respects it) > automatic. DataLoader workers use one thread each (``worker_init``): their
work is decoding and STFTs of single clips, and their threads would compete with the step's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sedwatt.training.callbacks import Callback, RunState


def jobs_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sedwatt" / "jobs"
    return Path(os.environ.get("SEDWATT_JOBS_DIR", default))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: taskset, cgroups cpusets, Slurm)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _held(path: Path) -> bool:
    """True while the job that wrote ``path`` is alive (its lock is held); stale files are removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True  # someone holds the exclusive lock
    else:
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    finally:
        os.close(fd)


def live_jobs(directory: Path | None = None) -> int:
    directory = directory or jobs_dir()
    if not directory.is_dir():
        return 0
    return sum(_held(p) for p in directory.glob("*.job"))


@dataclass
class JobSlot:
    """This process's registration; ``fd`` holds the lock until ``release``."""

    path: Path
    fd: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def register_job(kind: str, directory: Path | None = None) -> JobSlot:
    """A new job file for this process; each call its own (a short uuid in the name), so two jobs of
    one kind in one process (a training run and the evaluation it starts) never replace or remove
    each other's file."""
    directory = directory or jobs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{kind}-{uuid.uuid4().hex[:8]}"
    path = directory / f"{name}.job"
    # Locked under a temporary name, then renamed: a counter never sees an unlocked (stale-looking) new file.
    pending = directory / f".{name}.pending"
    fd = os.open(pending, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.replace(pending, path)
    return JobSlot(path, fd)


def thread_budget(configured: int | None, *, cpus: int | None = None, jobs: int | None = None) -> tuple[int, str]:
    """(threads, where the number came from): config, OMP_NUM_THREADS, or the share of usable CPUs."""
    if configured is not None:
        return configured, "config train.num_threads"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    cpus = cpus if cpus is not None else usable_cpus()
    jobs = max(1, jobs if jobs is not None else live_jobs())
    return max(1, cpus // jobs), f"{cpus} usable CPUs / {jobs} sedwatt job(s)"


def apply_thread_budget(configured: int | None) -> tuple[int, str]:
    """Set torch's intra-op threads to this job's share now; returns (threads, reason)."""
    import torch

    threads, reason = thread_budget(configured)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads, reason


def sleep_when_waiting() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set: to be called before torch is imported (OpenMP reads it once)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@contextlib.contextmanager
def job(kind: str, configured: int | None) -> Iterator[tuple[int, str]]:
    """Register this process as a sedwatt job for the block and take its share of the CPUs."""
    slot = register_job(kind)
    try:
        yield apply_thread_budget(configured)
    finally:
        slot.release()


class ThreadShare(Callback):
    """Re-takes this job's share of the CPUs at every epoch start (jobs come and go).

    Records it as run tags through ``state.info["tags"]`` (the tracking callback logs them).
    """

    def __init__(self, configured: int | None, kind: str = "train") -> None:
        self.configured = configured
        self.kind = kind
        self.slot: JobSlot | None = None

    def on_train_start(self, state: RunState) -> None:
        self.slot = register_job(self.kind)
        self.on_epoch_start(state)

    def on_train_end(self, state: RunState) -> None:
        if self.slot is not None:
            self.slot.release()
            self.slot = None

    def on_epoch_start(self, state: RunState) -> None:
        threads, reason = apply_thread_budget(self.configured)
        tags = state.info.setdefault("tags", {})
        tags["sedwatt.num_threads"] = str(threads)
        tags["sedwatt.num_threads_source"] = reason


def worker_init(_worker_id: int) -> None:
    """DataLoader worker start: one intra-op thread (the main process's threads do the step)."""
    import torch

    torch.set_num_threads(1)
