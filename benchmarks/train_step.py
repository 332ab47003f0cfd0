"""Time full mean-teacher training steps on random 10 s clips, ours against the upstream-structured CRNN.

A step is everything the trainer does per batch: linear mel of the waveforms, mixup, log + min-max,
student forward/backward, teacher forward (train mode, no grad), EMA, Adam. One warm-up step is not
timed. Prints clips per second for each variant, the ratio to upstream, and as its last line
``train_step_ms=<median of ours as configured>``. ``--device cuda`` runs it on a GPU (the clips are drawn
on the CPU as before, moved over, and every timing is closed by ``torch.cuda.synchronize``); ``--set``
overrides config fields, e.g. ``--set train.precision=bf16`` for autocast.

    python benchmarks/train_step.py --config configs/dcase2022.yaml --batch-size 48 --steps 5
    python benchmarks/train_step.py --device cuda --set train.precision=bf16
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sedwatt.config import load_config  # noqa: E402
from sedwatt.features import MelExtractor  # noqa: E402
from sedwatt.model import build_crnn  # noqa: E402
from sedwatt.training.mean_teacher import MeanTeacherStep  # noqa: E402


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a wall-clock interval holds the kernels it launched."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    student: torch.nn.Module,
    config,
    batch: int,
    steps: int,
    seed: int = 0,
    device: torch.device | None = None,
) -> list[float]:
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    student = student.to(device)
    teacher = copy.deepcopy(student)
    step = MeanTeacherStep(student, teacher, config, steps_per_epoch=118, device=device)
    extractor = MelExtractor(config.features, config.data.sample_rate).to(device)
    rng = np.random.default_rng(seed)
    n_synth, n_weak, _ = config.train.batch_split
    frames = config.n_label_frames
    times = []
    for i in range(steps + 1):
        wave = torch.randn(batch, config.n_samples) * 0.1
        strong = (torch.rand(batch, config.model.n_classes, frames) > 0.8).float()
        weak = (strong.amax(-1) > 0).float()
        synchronize(device)
        start = time.perf_counter()
        with torch.no_grad():
            mel = extractor(wave.to(device))
        step(mel, strong, weak, rng)
        synchronize(device)
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/dcase2022.yaml")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-upstream", action="store_true", help="skip the upstream reference")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.precision=bf16 (repeatable)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    overrides = [f"train.batch_size={args.batch_size}", "train.mixup_prob=1.0", *args.overrides]
    config = load_config(args.config, overrides)
    where = ""  # the header stays as it was for the default CPU run
    if device.type != "cpu" or args.overrides:
        where = f", device {device}, precision {config.train.precision}"
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, {args.steps} timed steps{where}"
    )

    variants: dict[str, torch.nn.Module] = {}
    if not args.no_upstream:
        from upstream_reference import UpstreamCRNN

        variants["upstream"] = UpstreamCRNN.from_config(config)
    plain = config.model.model_copy(update={"fast_dropout": False, "channels_last": False})
    variants["ours (torch dropout)"] = build_crnn(config.model_copy(update={"model": plain}))
    variants["ours (as configured)"] = build_crnn(config)
    fast = config.model.model_copy(update={"fast_dropout": True})
    variants["ours (fast dropout)"] = build_crnn(config.model_copy(update={"model": fast}))
    fast_cl = config.model.model_copy(update={"fast_dropout": True, "channels_last": True})
    variants["ours (fast + chan.-last)"] = build_crnn(config.model_copy(update={"model": fast_cl}))

    medians: dict[str, float] = {}
    for name, model in variants.items():
        times = time_steps(model, config, args.batch_size, args.steps, device=device)
        medians[name] = statistics.median(times)
        print(f"{name:<24} {medians[name] * 1000:9.1f} ms/step  {args.batch_size / medians[name]:7.2f} clips/s")
    if "upstream" in medians:
        for name, value in medians.items():
            if name != "upstream":
                print(f"speed-up {name:<24} {medians['upstream'] / value:5.2f}x vs upstream")
    print(f"train_step_ms={medians['ours (as configured)'] * 1000:.1f}")


if __name__ == "__main__":
    main()
