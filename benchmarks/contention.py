"""One training job alone vs two at once on this machine: epoch time and per-job energy, both attributions.

The same small training (the generator's tiny preset at 4 s clips, the test suite's tiny CRNN, seed 1)
runs once alone, then twice at the same time (two ``sedwatt train`` processes), each with its own
SQLite MLflow store in a temporary folder. A first one-epoch job fills the mel cache, so the three
measured jobs do the same work. Jobs share the CPUs as they would in production (``SEDWATT_JOBS_DIR``
is private to the benchmark, ``OMP_NUM_THREADS`` is unset: each job takes usable CPUs ÷ live jobs).

Every run's ``energy/epochs.csv`` holds both attributions of each epoch: ``machine_energy_kwh`` (what
``energy.tracking_mode=machine`` charges) and ``process_energy_kwh`` (what ``process`` charges), so one
alone run and one pair give both. Only epochs that ran entirely while the other job of the pair was
training are compared (epoch spans from the runs' metric timestamps). A third figure is derived here, not
logged by sedwatt: the *busy-share* rule sedwatt used before 2026-12-02, machine CPU + RAM energy × the job's
share of the busy CPU time. It charges a job alone all of the machine's static RAM power and each of two jobs
half, which is why the process attribution now charges RAM by the job's share of the machine's CPU capacity
(src/sedwatt/energy/attribution.py); printed to show how far apart the two rules come on this machine.

Targets (issue 12): a job's epoch beside another ≤ 2.5 × its epoch alone, and its energy per epoch
within 20 % of alone in the process attribution (the machine attribution is expected to grow with the
epoch time). Prints one line per job, and as its last line the ratios.

    python benchmarks/contention.py --epochs 4
    python benchmarks/contention.py --epochs 6 --preset small --keep /tmp/contention
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The test suite's tiny CRNN (tests/conftest.py TINY_OVERRIDES) without its epoch count; power read every
# second, no model or checkpoints logged.
TINY = [
    "data.clip_seconds=4.0",
    "features.n_mels=32",
    "model.channels=[8,16,16]",
    "model.pools=[[2,2],[2,4],[1,4]]",
    "model.rnn_hidden=16",
    "model.fast_dropout=true",
    "train.batch_size=8",
    "train.rampup_epochs=1",
    "train.patience=null",
    "train.progress=false",
    "energy.measure_power_secs=1",
    "tracking.log_model=false",
    "tracking.log_checkpoints=false",
    "tracking.registered_model_name=null",
]
TIME_TARGET = 2.5
ENERGY_TOLERANCE = 0.20


def sedwatt(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from sedwatt.cli import main; sys.exit(main())", *args]


@dataclass
class Job:
    name: str
    run_id: str
    store: str
    rows: list[dict[str, str]]
    spans: list[tuple[float, float]]  # (start, end) wall-clock seconds of each epoch

    @property
    def span(self) -> tuple[float, float]:
        return self.spans[0][0], self.spans[-1][1]


def start_job(name: str, work: Path, data: Path, args: argparse.Namespace, epochs: int) -> tuple:
    """A ``sedwatt train`` process in its own folder and store: (process, console log, store URI)."""
    folder = work / name
    folder.mkdir(parents=True)
    store = f"sqlite:///{folder / 'mlruns.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MLFLOW_RUN_ID")}
    env.update({"MLFLOW_TRACKING_URI": store, "SEDWATT_JOBS_DIR": str(work / "jobs")})
    overrides = [
        *TINY,
        f"train.epochs={epochs}",
        f"train.seed={args.seed}",
        *([f"train.num_threads={args.threads}"] if args.threads else []),
        f"data.cache_dir={work / 'cache'}",
        f"train.out_dir={folder / 'out'}",
        f"tracking.experiment=contention-{name}",
    ]
    args = sedwatt("train", "--data", str(data), *[a for o in overrides for a in ("--set", o)])
    log = folder / "console.txt"
    with open(log, "w") as handle:
        proc = subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=folder)
    return proc, log, store


def finish_job(name: str, proc: subprocess.Popen, log: Path, store: str) -> Job:
    if proc.wait() != 0:
        sys.exit(f"job {name} failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
    lines = log.read_text().splitlines()
    run_id = next(line for line in lines if line.startswith("run ")).split()[1].rstrip(":")
    folder = log.parent
    (csv_path,) = (folder / "out").glob(f"{run_id}/energy/epochs.csv")
    with open(csv_path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["complete"] == "1"]
    for row in rows:  # the busy-share rule (module docstring)
        machine = float(row["machine_cpu_energy_kwh"]) + float(row["machine_ram_energy_kwh"])
        row["busy_share_energy_kwh"] = str(machine * float(row["process_cpu_share"]) + float(row["gpu_energy_kwh"]))
    import mlflow

    history = mlflow.MlflowClient(store).get_metric_history(run_id, "energy_kwh")
    ends = {m.step: m.timestamp / 1000 for m in history}  # logged right after each epoch
    spans = [(ends[int(r["epoch"])] - float(r["duration_s"]), ends[int(r["epoch"])]) for r in rows]
    return Job(name, run_id, store, rows, spans)


def per_epoch(job: Job, key: str, epochs: list[int]) -> float:
    return statistics.fmean(float(job.rows[i][key]) for i in epochs)


def overlapped(job: Job, other: Job) -> list[int]:
    """Indices of the job's epochs that ran entirely while the other job was training."""
    start, end = other.span
    return [i for i, (s, e) in enumerate(job.spans) if s >= start and e <= end]


def describe(
    job: Job, values: dict[str, float], epochs: list[int], ratios: dict[str, float] | None = None
) -> str:
    """Per-epoch means of one job (and their ratio to the job alone)."""

    def ratio(metric: str) -> str:
        return f" ({ratios[metric]:.2f}×)" if ratios else ""

    return (
        f"epoch {values['duration_s']:6.1f} s{ratio('epoch_time')}, {values['process_cpu_s']:5.1f} CPU-s"
        f"  energy/epoch machine {values['machine_energy_kwh'] * 1e6:8.1f} mWh{ratio('machine_energy')}"
        f"  process {values['process_energy_kwh'] * 1e6:8.1f} mWh{ratio('process_energy')}"
        f"  busy share {values['busy_share_energy_kwh'] * 1e6:8.1f} mWh{ratio('busy_share_energy')}"
        f"  CPU share {per_epoch(job, 'process_cpu_share', epochs):.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each measured job (default 4)")
    parser.add_argument("--preset", choices=("tiny", "small"), default="tiny")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="train.num_threads per job")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="work here and keep it")
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the job that fills the mel cache first (a quick check: the job alone then fills it, so its "
        "first epoch does more work than the pair's)",
    )
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="sedwatt-contention-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = work / "data"
        if not data.exists():
            make = ["make-data", str(data), "--preset", args.preset, "--seed", "1", "--clip-seconds", "4"]
            subprocess.run(sedwatt(*make), check=True, stdout=subprocess.DEVNULL)
        for name in ("warmup", "alone", "pair-a", "pair-b"):
            shutil.rmtree(work / name, ignore_errors=True)
        cpus = f"{os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable"
        print(f"[contention] {cpus}, load {os.getloadavg()[0]:.1f}; work in {work}", flush=True)
        if not args.no_warmup:
            finish_job("warmup", *start_job("warmup", work, data, args, 1))  # fills the mel cache
        t0 = time.monotonic()
        alone = finish_job("alone", *start_job("alone", work, data, args, args.epochs))
        print(f"[contention] alone: {time.monotonic() - t0:.0f} s", flush=True)
        t0 = time.monotonic()
        started = [(name, *start_job(name, work, data, args, args.epochs)) for name in ("pair-a", "pair-b")]
        pair = [finish_job(*job) for job in started]
        print(f"[contention] pair: {time.monotonic() - t0:.0f} s", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    everything = list(range(len(alone.rows)))
    keys = ("duration_s", "process_cpu_s", "machine_energy_kwh", "process_energy_kwh", "busy_share_energy_kwh")
    base = {key: per_epoch(alone, key, everything) for key in keys}
    print(f"alone   {describe(alone, base, everything)}  ({len(everything)} epochs)")
    ratios: dict[str, list[float]] = {"epoch_time": [], "machine_energy": [], "process_energy": [], "busy_share_energy": []}
    for job, other in (pair, pair[::-1]):
        epochs = overlapped(job, other)
        note = f"{len(epochs)} epochs beside the other job"
        if not epochs:
            epochs, note = list(range(len(job.rows))), "none ran entirely beside the other job: all epochs"
        values = {key: per_epoch(job, key, epochs) for key in base}
        for metric, key in (("epoch_time", "duration_s"), ("machine_energy", "machine_energy_kwh"),
                            ("process_energy", "process_energy_kwh"),
                            ("busy_share_energy", "busy_share_energy_kwh")):  # fmt: skip
            ratios[metric].append(values[key] / base[key] if base[key] > 0 else float("nan"))
        print(f"{job.name}  {describe(job, values, epochs, {k: v[-1] for k, v in ratios.items()})}  ({note})")
    time_ok = all(r <= TIME_TARGET for r in ratios["epoch_time"])
    process_ok = all(abs(r - 1) <= ENERGY_TOLERANCE for r in ratios["process_energy"])
    machine_ok = all(abs(r - 1) <= ENERGY_TOLERANCE for r in ratios["machine_energy"])
    busy_share_ok = all(abs(r - 1) <= ENERGY_TOLERANCE for r in ratios["busy_share_energy"])
    print(
        f"targets: epoch time ≤ {TIME_TARGET}× {'met' if time_ok else 'MISSED'}; per-job energy within "
        f"{ENERGY_TOLERANCE:.0%}: process attribution {'met' if process_ok else 'MISSED'}, "
        f"machine attribution {'met' if machine_ok else 'missed'}, old busy-share rule {'met' if busy_share_ok else 'missed'}"
    )
    print(" ".join(f"{metric}_ratio={'/'.join(f'{r:.2f}' for r in rs)}" for metric, rs in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
