"""How many intra-op threads a sedwatt job may use: its CPUs divided among the sedwatt jobs sharing them.

PyTorch starts one OpenMP thread per core in every process. Two jobs on a 2-core machine then run
four spinning threads on two cores, and each epoch took 5–15× longer instead of 2× (measured:
README "Measured", contention). So every training, search trial and evaluation registers itself as
a *job* for its lifetime — a file under ``~/.cache/sedwatt/jobs`` (``$SEDWATT_JOBS_DIR``) held with an
exclusive ``flock``, which the kernel releases when the process dies, however it dies — and takes
``CPUs it may use // processes with a live job`` threads (at least one; jobs of one process share its pool). The share is recomputed at every epoch start,
so a job that started alone gives up threads when a second one arrives, and takes them back after.

Waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE``) when other processes keep the machine busy as a job
starts, and spin a while first (libgomp's default) when it is idle: ``choose_wait_policy``, called by the
``sedwatt`` command before torch starts its OpenMP pool, unless the environment sets it (README "Measured").

Precedence: ``train.num_threads`` (config) > ``OMP_NUM_THREADS`` (environment, as every OpenMP
program respects it) > automatic. DataLoader workers use one thread each (``worker_init``): their
work is decoding and STFTs of single clips, and their threads would compete with the step's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
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
    """Processes holding at least one live job: threads are per process, so a training run and the evaluation
    it starts in the same process share one thread pool and count once (the file names start with the pid)."""
    directory = directory or jobs_dir()
    if not directory.is_dir():
        return 0
    return len({p.name.split("-", 1)[0] for p in directory.glob("*.job") if _held(p)})


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


WAIT_POLICY_TAG = "sedwatt.omp_wait_policy"
# Other processes keeping at least this many CPUs busy when a job starts make its waiting threads sleep.
BUSY_CPUS = 0.5
_wait_policy_choice: str | None = None  # what choose_wait_policy did in this process, for the run tag


def others_cpu_use(seconds: float = 0.25) -> float:
    """CPUs' worth of busy time the machine's other processes had over a ``seconds`` sample: the machine's busy
    CPU time (psutil) minus this process's own, per second."""
    from sedwatt.energy.attribution import machine_cpu_seconds, process_tree_seconds

    busy, own, start = machine_cpu_seconds()[0], process_tree_seconds(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    return max(0.0, (machine_cpu_seconds()[0] - busy) - (process_tree_seconds() - own)) / elapsed


def decide_wait_policy(environ: Mapping[str, str], others: Callable[[], float] | None = None) -> tuple[str | None, str]:
    """(``OMP_WAIT_POLICY`` to set, or None to leave it; what was decided) for a job starting now.

    By default an idle OpenMP thread spins a while before it sleeps. Beside other busy processes the spinning
    takes cores from the threads doing the work (a ``dcase2022_fast.yaml`` step 1.36× slower than sleeping
    beside one busy process, 3–13× under heavier load), but on an idle machine sleeping costs a wake-up per
    parallel region (the same step 1.14–1.29× slower, a ``cpu_demo`` step 2.2–2.6×, for as much CPU time) —
    README "Measured", benchmarks/wait_policy.py. So: ``PASSIVE`` when other processes keep at least
    ``BUSY_CPUS`` busy at the start, libgomp's default otherwise; a value set in the environment is left as it
    is. Load that arrives later from other sedwatt jobs is met by the thread share (one thread each on a
    2-core machine: nothing left to wait for).
    """
    if "OMP_WAIT_POLICY" in environ:
        return None, f"{environ['OMP_WAIT_POLICY']} (environment)"
    busy = (others or others_cpu_use)()
    if busy >= BUSY_CPUS:
        return "PASSIVE", f"PASSIVE (other processes used {busy:.1f} CPUs at the start)"
    return None, f"default: spin, then sleep (other processes used {busy:.1f} CPUs at the start)"


def choose_wait_policy(others: Callable[[], float] | None = None, torch_loaded: bool | None = None) -> str:
    """``decide_wait_policy`` for this process, applied: to be called before torch starts (OpenMP reads the
    policy once, when torch loads it). Returns the decision, which runs started in this process record as a
    tag. Once torch is loaded (``sedwatt.cli.main`` called from a Python session that imported it) a choice
    would change nothing: the environment is left alone and the tag says so."""
    global _wait_policy_choice
    if _wait_policy_choice is not None:  # OpenMP reads it once: the process's first choice stands
        return _wait_policy_choice
    if torch_loaded if torch_loaded is not None else "torch" in sys.modules:
        current = os.environ.get("OMP_WAIT_POLICY", "default: spin, then sleep")
        _wait_policy_choice = f"{current} (not chosen: torch was loaded before the sedwatt command started)"
        return _wait_policy_choice
    value, _wait_policy_choice = decide_wait_policy(os.environ, others)
    if value is not None:
        os.environ["OMP_WAIT_POLICY"] = value
    return _wait_policy_choice


def chosen_by_sedwatt() -> bool:
    """Whether ``OMP_WAIT_POLICY`` in this process's environment is sedwatt's choice (not the user's): a
    child process should then make its own, for the load at its own start."""
    return _wait_policy_choice is not None and _wait_policy_choice.startswith("PASSIVE (other processes")


def wait_policy_note() -> str:
    """The run tag ``sedwatt.omp_wait_policy``: what ``choose_wait_policy`` did, or what the environment says."""
    if _wait_policy_choice is not None:
        return _wait_policy_choice
    if "OMP_WAIT_POLICY" in os.environ:
        return f"{os.environ['OMP_WAIT_POLICY']} (environment)"
    return "default: spin, then sleep (not chosen: started outside the sedwatt command)"


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
        tags[WAIT_POLICY_TAG] = wait_policy_note()


def worker_init(_worker_id: int) -> None:
    """DataLoader worker start: one intra-op thread (the main process's threads do the step)."""
    import torch

    torch.set_num_threads(1)
