"""What sleeping OpenMP waits cost a training step, on an idle machine and beside other busy processes.

By default an idle OpenMP thread spins a while before it sleeps. Beside other busy processes the spinning takes
cores from the threads doing the work; on an idle machine sleeping at once costs a wake-up per parallel region —
and the GRU runs a few small regions per time step. The ``sedwatt`` command chooses between the two as a job
starts (src/sedwatt/threads.py, ``decide_wait_policy``); this benchmark measures the trade-off it is based on.
OpenMP reads the policy once, when torch starts, so each measurement is its own process: the parent runs, in
turn and round after round (the order rotated), a child per policy — ``OMP_WAIT_POLICY`` unset (libgomp's
default: spin 300,000 times, then sleep — how upstream runs), ``PASSIVE``, and unset with
``GOMP_SPINCOUNT=10000`` (a shorter spin) — and ``--load N`` keeps N busy-loop processes running beside, the
foreign load. Each child times ``--steps`` mean-teacher steps of the config's own model (benchmarks/train_step.py's
StepTimer, after one untimed warm-up step), in wall time and in the process's CPU time (all threads: a spinning
thread's CPU counts, which is what a CPU-time energy attribution charges). Prints each child's medians, the
medians over all children per policy and the wall-time ratio to the default, and as its last line ``passive_vs_default=<PASSIVE / default median>``
(above 1: sleeping at once is slower).

    python benchmarks/wait_policy.py --config configs/dcase2022_fast.yaml --batch-size 48 --rounds 3 --steps 2
    python benchmarks/wait_policy.py --config configs/dcase2022_fast.yaml --batch-size 48 --rounds 2 --load 1
    python benchmarks/wait_policy.py --config configs/cpu_demo.yaml --batch-size 16 --rounds 3 --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# name → (OMP_WAIT_POLICY, GOMP_SPINCOUNT); None: unset. libgomp's default spins 300,000 times before it sleeps.
POLICIES: dict[str, tuple[str | None, str | None]] = {
    "default (unset)": (None, None),
    "PASSIVE": ("PASSIVE", None),
    "spin 10k": (None, "10000"),
}
BUSY = "while True: pass"


def child(args: argparse.Namespace) -> None:
    """Time the configured model's steps under the policy this process was started with; print JSON."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step import StepTimer, variants_for

    from sedwatt.config import load_config
    from sedwatt.memory import keep_freed_memory

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    config = load_config(args.config, [f"train.batch_size={args.batch_size}", "train.mixup_prob=1.0"])
    if config.train.reuse_freed_memory:
        keep_freed_memory()  # as a sedwatt training runs
    variants, _ = variants_for(config, device, upstream=False, configured_only=True)
    timer = StepTimer(variants[0], config, args.batch_size, device)
    timer()  # warm-up: kernels, the heap
    times, cpu = [], []
    for _ in range(args.steps):
        start = time.process_time()  # every thread of this process: spinning counts, sleeping does not
        times.append(timer())
        cpu.append(time.process_time() - start)
    policy = (os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"))
    print(json.dumps({"policy": policy, "times": times, "cpu": cpu}))


def run_child(args: argparse.Namespace, policy: tuple[str | None, str | None]) -> tuple[list[float], list[float]]:
    env = dict(os.environ)
    for name, value in zip(("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"), policy, strict=True):
        env.pop(name, None)
        if value is not None:
            env[name] = value
    command = [
        sys.executable,
        __file__,
        "--child",
        "--config",
        args.config,
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wait_policy.py: the child with {policy} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if tuple(result["policy"]) != policy:  # nothing in between may set it (sedwatt's own default, for one)
        raise SystemExit(f"wait_policy.py: the child ran with {result['policy']}, not {policy}")
    return result["times"], result["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/dcase2022_fast.yaml")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per child")
    parser.add_argument("--rounds", type=int, default=3, help="children per policy, in turn")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes running beside (foreign load)")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES), metavar="NAME")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1 or args.load < 0:
        parser.error("--steps and --rounds must be at least 1, --load at least 0")
    if args.child:
        child(args)
        return
    if "default (unset)" not in args.policies:
        parser.error("--policies must include 'default (unset)': the ratios are against it")
    print(
        f"{args.config}, batch {args.batch_size}, {args.threads} threads, {args.load} busy-loop process(es) beside, "
        f"{args.rounds} rounds × one process per policy × {args.steps} timed steps"
    )
    times: dict[str, list[float]] = {name: [] for name in args.policies}
    cpu: dict[str, list[float]] = {name: [] for name in args.policies}
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load)]
    try:
        for r in range(args.rounds):
            k = r % len(args.policies)
            for name in args.policies[k:] + args.policies[:k]:  # rotated: no policy always runs first
                got, used = run_child(args, POLICIES[name])
                times[name].extend(got)
                cpu[name].extend(used)
                print(
                    f"round {r + 1} {name:<16} median {statistics.median(got) * 1000:9.1f} ms/step "
                    f"{statistics.median(used) * 1000:9.1f} CPU-ms/step",
                    flush=True,
                )
    finally:
        for process in busy:
            process.kill()
            process.wait()
    medians = {name: statistics.median(values) for name, values in times.items()}
    default = medians["default (unset)"]
    for name, value in medians.items():
        used = statistics.median(cpu[name])
        print(
            f"{name:<16} {value * 1000:9.1f} ms/step {value / default:6.3f}x default, {used * 1000:9.1f} CPU-ms/step "
            f"(medians of {len(times[name])} steps)"
        )
    if "PASSIVE" in medians:
        print(f"passive_vs_default={medians['PASSIVE'] / default:.3f}")


if __name__ == "__main__":
    main()
