"""Time the CRNN's speed levers on CPU: one mean-teacher model step per variant, against upstream.

A step here is the model part of a training step: student forward + backward of a mean-teacher-like
loss, and a no-grad teacher forward in train mode (dropout on, BN statistics updated), on random
normalised log-mel input of shape [batch, n_mels, frames] (default [24, 128, 626]). Features, Adam
and the EMA are left out (see train_step.py for the whole step). Every variant computes the same fp32
math; fast dropout draws the same Bernoulli(0.5) masks from a different random stream.

Prints the median wall-clock and CPU time of each variant and its speed-up over the
upstream-structured reference. Variants run interleaved, one step each per round.

    python benchmarks/model_levers.py                    # 2 threads, [24, 128, 626], 3 timed steps
    python benchmarks/model_levers.py --steps 5 --only upstream "ours + fast_dropout"
    python benchmarks/model_levers.py --thp              # large tensors on transparent huge pages
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if "--thp" in sys.argv:  # read by torch at its first allocation, so set before anything allocates
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream_reference import UpstreamCRNN  # noqa: E402

from sedwatt.config import SedwattConfig, load_config  # noqa: E402
from sedwatt.model import build_crnn  # noqa: E402

LEVERS: dict[str, dict[str, bool]] = {
    "ours default": {},
    "ours + fast_dropout": {"fast_dropout": True},
    "ours + channels_last": {"channels_last": True},
    "ours + fast_dropout + channels_last": {"fast_dropout": True, "channels_last": True},
}


def with_levers(config: SedwattConfig, **levers: bool) -> SedwattConfig:
    base = {"fast_dropout": False, "channels_last": False}
    return config.model_copy(update={"model": config.model.model_copy(update={**base, **levers})})


def make_step(student: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    student.train()
    teacher.train()
    params = [p for p in student.parameters() if p.requires_grad]

    def step() -> None:
        for p in params:
            p.grad = None
        strong_s, weak_s = student(x)
        with torch.no_grad():
            strong_t, weak_t = teacher(x)
        target = (strong_t > 0.5).float()
        loss = (
            F.binary_cross_entropy(strong_s, target)
            + F.binary_cross_entropy(weak_s, (weak_t > 0.5).float())
            + F.mse_loss(strong_s, strong_t)
            + F.mse_loss(weak_s, weak_t)
        )
        loss.backward()

    return step


def time_interleaved(
    steps: dict[str, Callable[[], None]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """One warm-up each (allocator, oneDNN primitives, compilation), then rounds of one step per variant.

    Interleaving spreads the noise of a shared machine evenly over the variants. Returns wall-clock
    and process CPU seconds per step (CPU time is less disturbed by other processes on the machine).
    """
    for step in steps.values():
        step()
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for _ in tqdm(range(rounds), desc="rounds", leave=False):
        for name, step in steps.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: the recipe)")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--frames", type=int, default=None, help="input frames (default: the config's 10 s = 626)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of ours + fast_dropout")
    parser.add_argument(
        "--thp", action="store_true", help="THP_MEM_ALLOC_ENABLE=1: torch backs large tensors with huge pages (all variants)"
    )
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    frames = args.frames or config.n_feature_frames
    torch.manual_seed(0)
    x = torch.rand(args.batch, config.features.n_mels, frames)
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "0")
    print(
        f"torch {torch.__version__}, {args.threads} threads, input {list(x.shape)}, median of {args.steps} steps, "
        f"THP_MEM_ALLOC_ENABLE={thp}"
    )

    variants: dict[str, Callable[[], torch.nn.Module]] = {"upstream": lambda: UpstreamCRNN.from_config(config)}
    for name, levers in LEVERS.items():
        variants[name] = lambda levers=levers: build_crnn(with_levers(config, **levers))
    if args.compile:
        variants["ours + fast_dropout + channels_last + torch.compile"] = lambda: torch.compile(
            build_crnn(with_levers(config, fast_dropout=True, channels_last=True))
        )
    if args.only:
        unknown = set(args.only) - set(variants)
        if unknown:
            parser.error(f"unknown variant(s) {sorted(unknown)}; choose from {list(variants)}")
        variants = {name: make for name, make in variants.items() if name in args.only}

    steps = {}
    for name, make in variants.items():
        torch.manual_seed(0)
        steps[name] = make_step(make(), x)
    wall, cpu = time_interleaved(steps, args.steps)
    wall_med = {name: statistics.median(values) for name, values in wall.items()}
    cpu_med = {name: statistics.median(values) for name, values in cpu.items()}
    print(f"{'variant':<40} {'wall ms/step':>12} {'(min-max)':<15} {'CPU ms/step':>11}  speed-up vs upstream (wall, CPU)")
    for name in steps:
        spread = f"({min(wall[name]) * 1000:.0f}-{max(wall[name]) * 1000:.0f})"
        ratio = ""
        if "upstream" in steps:
            ratio = f"{wall_med['upstream'] / wall_med[name]:5.2f}x  {cpu_med['upstream'] / cpu_med[name]:5.2f}x"
        print(f"{name:<40} {wall_med[name] * 1000:12.0f} {spread:<15} {cpu_med[name] * 1000:11.0f}  {ratio}")

if __name__ == "__main__":
    main()
