"""Time full mean-teacher training steps on random 10 s clips, ours against the upstream-structured CRNN.

A step is everything the trainer does per batch: linear mel of the waveforms, mixup, log + min-max,
student forward/backward, teacher forward (train mode, no grad), EMA, Adam. The variants are timed in
turn, round after round (``--rounds``), so a machine that slows down mid-run slows them all alike: each
variant's first step of a round is a warm-up (allocators, kernels, the allocator switch) and is not timed.
Variants: the upstream-structured reference with glibc's default allocator (as upstream runs) and with
freed memory kept (sedwatt/memory.py), ours with the recipe's dropout stream (contiguous and channels-last
maps), ours with fast dropout and channels-last maps, and ours as configured with and without freed memory kept (CPU only: the allocator
setting is about CPU memory). Prints the median ms per step and clips per second of each, the ratio to
upstream, and as its last line ``train_step_ms=<median of ours as configured>``. ``--device cuda`` runs
it on a GPU (clips drawn on the CPU and moved over, every timing closed by ``torch.cuda.synchronize``);
``--set`` overrides config fields, e.g. ``--set train.precision=bf16`` for autocast.

    python benchmarks/train_step.py --config configs/dcase2022.yaml --batch-size 48 --rounds 3 --steps 2
    python benchmarks/train_step.py --device cuda --set train.precision=bf16
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sedwatt.threads import choose_wait_policy

WAIT_POLICY = "not chosen here"
if __name__ == "__main__":  # wait_policy.py imports this module under the policy it is timing
    WAIT_POLICY = choose_wait_policy()  # as the sedwatt command would for a job starting now, for every variant

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sedwatt.config import SedwattConfig, load_config  # noqa: E402
from sedwatt.features import MelExtractor  # noqa: E402
from sedwatt.memory import set_allocator  # noqa: E402
from sedwatt.model import build_crnn  # noqa: E402
from sedwatt.training.mean_teacher import MeanTeacherStep  # noqa: E402


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a wall-clock interval holds the kernels it launched."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Variant:
    """One model in its own mean-teacher step, with the allocator setting it runs under."""

    name: str
    student: torch.nn.Module
    reuse_memory: bool
    times: list[float] = field(default_factory=list)


class StepTimer:
    """Times whole steps of one variant on fresh random clips (seeded per variant)."""

    def __init__(self, variant: Variant, config: SedwattConfig, batch: int, device: torch.device, seed: int = 0):
        torch.manual_seed(seed)
        student = variant.student.to(device)
        self.step = MeanTeacherStep(student, copy.deepcopy(student), config, steps_per_epoch=118, device=device)
        self.extractor = MelExtractor(config.features, config.data.sample_rate).to(device)
        self.rng = np.random.default_rng(seed)
        self.config, self.batch, self.device = config, batch, device

    def __call__(self) -> float:
        config, batch = self.config, self.batch
        wave = torch.randn(batch, config.n_samples) * 0.1
        strong = (torch.rand(batch, config.model.n_classes, config.n_label_frames) > 0.8).float()
        weak = (strong.amax(-1) > 0).float()
        synchronize(self.device)
        start = time.perf_counter()
        with torch.no_grad():
            mel = self.extractor(wave.to(self.device))
        self.step(mel, strong, weak, self.rng)
        synchronize(self.device)
        return time.perf_counter() - start


def variants_for(
    config: SedwattConfig, device: torch.device, upstream: bool, configured_only: bool = False
) -> tuple[list[Variant], str]:
    """The models to compare (see the module docstring) and the name of the config's own; allocator variants
    only where the CPU allocates."""
    cpu = device.type == "cpu"
    reuse = config.train.reuse_freed_memory
    out: list[Variant] = []
    if upstream:
        from upstream_reference import UpstreamCRNN

        out.append(Variant("upstream", UpstreamCRNN.from_config(config), reuse_memory=False))
        if cpu and not configured_only:
            out.append(Variant("upstream (freed memory kept)", UpstreamCRNN.from_config(config), reuse_memory=True))

    def ours(**model_fields: bool) -> torch.nn.Module:
        return build_crnn(config.model_copy(update={"model": config.model.model_copy(update=model_fields)}))

    recipe_stream = {"fast_dropout": False, "channels_last": False}
    fast = {"fast_dropout": True, "channels_last": True}
    configured = {"fast_dropout": config.model.fast_dropout, "channels_last": config.model.channels_last}
    recipe_stream_cl = {"fast_dropout": False, "channels_last": True}
    names = {
        "ours (recipe dropout stream)": recipe_stream,
        "ours (recipe stream + chan.-last)": recipe_stream_cl,
        "ours (fast + chan.-last)": fast,
    }
    if configured not in names.values():
        names["ours (as configured)"] = configured
    if configured_only:
        names = {name: fields for name, fields in names.items() if fields == configured}
    out += [Variant(name, ours(**fields), reuse) for name, fields in names.items()]
    if cpu and not configured_only:
        out.append(Variant("ours (as configured, glibc default)", ours(**configured), reuse_memory=False))
    return out, next(name for name, fields in names.items() if fields == configured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/dcase2022.yaml")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant in each round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all variants in turn")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-upstream", action="store_true", help="skip the upstream reference")
    parser.add_argument(
        "--configured-only", action="store_true", help="time only the upstream reference and the config's own model"
    )
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
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, "
        f"{args.rounds} rounds × {args.steps} timed steps per variant, in turn{where}; OMP_WAIT_POLICY {WAIT_POLICY}"
    )

    variants, configured = variants_for(config, device, not args.no_upstream, args.configured_only)
    timers = [StepTimer(v, config, args.batch_size, device) for v in variants]
    for _ in range(args.rounds):
        for variant, timer in zip(variants, timers, strict=True):
            if device.type == "cpu":
                set_allocator(variant.reuse_memory)
            timer()  # warm-up: the allocator switch, kernels
            variant.times.extend(timer() for _ in range(args.steps))
    medians = {v.name: statistics.median(v.times) for v in variants}
    for name, value in medians.items():
        print(f"{name:<36} {value * 1000:9.1f} ms/step  {args.batch_size / value:7.2f} clips/s")
    if "upstream" in medians:
        for name, value in medians.items():
            if name != "upstream":
                print(f"speed-up {name:<36} {medians['upstream'] / value:5.2f}x vs upstream")
    print(f"train_step_ms={medians[configured] * 1000:.1f}")


if __name__ == "__main__":
    main()
