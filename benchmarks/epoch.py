"""Time whole training epochs (training + validation), ours against an upstream-structured pipeline, and what
tracking and energy measurement add to an epoch.

- ours: sedwatt's real ``Trainer`` (src/sedwatt/training/loop.py) on the real data pipeline — ``load_clips``,
  ``build_training_data`` (ClipDataset + mel cache in a fresh folder), ``HeterogeneousBatchSampler``. It is
  timed from outside, without changing what it does: the trainer's DataLoader is wrapped to time every
  ``next()`` (the data wait), its validator to time validation, its callbacks to time their hooks, and two
  probe callbacks at the ends of the list mark the epoch's start, the end of its hooks, and the next start
  (between them: the checkpoints the loop writes).
- upstream: the DCASE recipe's structure on the same clips — every item read from its WAV at every access,
  the mel computed in the step from the waveform, no cache; the upstream-structured CRNN of
  upstream_reference.py, the same batches (same sampler and seed), the same mean-teacher step; validation the
  recipe's way (mel from the waveform, per-clip scipy median filter and contiguous regions, one psds_eval
  ``PSDSEval`` per F1 criterion, NaN classes as 0). It writes no checkpoints and has no callbacks.

Order: one epoch of ours with a cold mel cache (reported, not in the medians), then ``--rounds`` rounds of
[upstream, ours without callbacks, ours through ``sedwatt.runner.train_run`` with its real callbacks:
thread share, EnergyCallback (CodeCarbon), early stopping, MLflowCallback on a temporary SQLite store],
rotated each round, each a run of ``--epochs`` epochs. Every run is a process of its own, after one untimed
warm-up step of its architecture (kernel set-up, heap growth): the allocator and OpenMP's wait policy are set
per process and cannot be put back, so upstream runs as upstream does (glibc's allocator as it comes,
``OMP_WAIT_POLICY`` as the caller's environment has it) and ours as the ``sedwatt`` command does (freed memory
kept when ``train.reuse_freed_memory``; ``OMP_WAIT_POLICY=PASSIVE`` when other processes keep the machine busy
as the run starts, unless the environment sets it: src/sedwatt/threads.py). Per epoch it prints the data wait (blocked in
``next()`` of the loader), the step time (training phase minus data wait), validation, time inside callback
hooks, checkpoint writing and the epoch's wall time; then medians, ratios ours/upstream, the tracking
overhead (time in the hooks, and the wall-time difference of the two ours variants, which also holds what
background threads cost), per-run costs of train_run, and as its last line
``epoch_ratio_vs_upstream=<ours without callbacks / upstream, median epoch wall time>``.

The data are ``sedwatt make-data DIR --preset P --seed 1`` in a cache folder, made once and reused;
``--fraction F`` uses DESED's counts × F (``make-data --scale F``) to keep a desed-size epoch short.

    python benchmarks/epoch.py --preset desed-size --fraction 0.05
    python benchmarks/epoch.py --preset small --rounds 2 --config configs/dcase2022_fast.yaml
    python benchmarks/epoch.py --preset tiny --batch-size 8       # seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream_reference import UpstreamCRNN  # noqa: E402

from sedwatt import names  # noqa: E402
from sedwatt.config import SedwattConfig, load_config  # noqa: E402
from sedwatt.data.audio import fit_length, read_audio  # noqa: E402
from sedwatt.data.encoder import LabelEncoder  # noqa: E402
from sedwatt.data.sampler import HeterogeneousBatchSampler  # noqa: E402
from sedwatt.data.scan import Clip, DatasetScan  # noqa: E402
from sedwatt.features import MelExtractor, log_normalise  # noqa: E402
from sedwatt.threads import worker_init  # noqa: E402
from sedwatt.training.callbacks import Callback, RunState  # noqa: E402
from sedwatt.training.mean_teacher import MeanTeacherStep, autocast  # noqa: E402

now = time.perf_counter


# -- what one epoch is made of ------------------------------------------------------------------------
@dataclass
class EpochTimes:
    variant: str
    run: int
    epoch: int
    steps: int = 0
    data_wait: float = 0.0  # blocked in next() of the training loader (worker start-up included)
    train: float = 0.0  # first next() → validation start: steps + data wait
    validation: float = 0.0
    callbacks: float = 0.0  # inside the callbacks' epoch hooks
    checkpoint: float = 0.0  # after the last on_epoch_end hook until the next epoch starts (the loop's saves)
    wall: float = 0.0  # epoch start → next epoch start (or the end of training)

    @property
    def step(self) -> float:
        return self.train - self.data_wait


@dataclass
class Timeline:
    """Collects EpochTimes; the probes and wrappers below call it at each boundary."""

    device: torch.device
    variant: str = ""
    run: int = 0
    epochs: list[EpochTimes] = field(default_factory=list)
    current: EpochTimes | None = None
    run_hooks: float = 0.0  # on_train_start / on_train_end of the wrapped callbacks
    first_start: float | None = None
    last_close: float | None = None
    _t0: float = 0.0
    _train_start: float | None = None
    _hooks_end: float | None = None

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def begin_run(self, variant: str, run: int) -> None:
        self.variant, self.run = variant, run
        self.run_hooks, self.first_start, self.last_close = 0.0, None, None

    def epoch_start(self, epoch: int) -> None:
        t = now()
        self.close(t)
        if self.first_start is None:
            self.first_start = t
        self.current = EpochTimes(self.variant, self.run, epoch)
        self._t0, self._hooks_end, self._train_start = t, None, None

    def train_start(self) -> None:
        """The first ``iter()`` of the training loader in this epoch (a progress bar may call it twice)."""
        if self._train_start is None:
            self._train_start = now()

    def add_wait(self, seconds: float, got_batch: bool) -> None:
        if self.current is not None:
            self.current.data_wait += seconds
            self.current.steps += int(got_batch)

    def validate(self, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
        self.sync()
        start = now()
        if self.current is not None:
            self.current.train = start - (self._train_start or start)
        result = fn()
        self.sync()
        if self.current is not None:
            self.current.validation = now() - start
        return result

    def add_hook(self, seconds: float) -> None:
        if self.current is not None:
            self.current.callbacks += seconds
        else:
            self.run_hooks += seconds

    def hooks_done(self) -> None:
        self._hooks_end = now()

    def close(self, t: float | None = None) -> None:
        """End the open epoch at ``t``: what followed its last hook was the loop writing checkpoints."""
        if self.current is None:
            return
        t = now() if t is None else t
        if self._hooks_end is not None:
            self.current.checkpoint = t - self._hooks_end
        self.current.wall = t - self._t0
        self.epochs.append(self.current)
        self.current, self.last_close = None, t


class StartProbe(Callback):
    """First in the list: its on_epoch_start opens the epoch (and closes the previous one)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def on_epoch_start(self, state: RunState) -> None:
        self.timeline.epoch_start(state.epoch)

    def on_train_end(self, state: RunState) -> None:
        self.timeline.close()


class EndProbe(Callback):
    """Last in the list: marks the end of the epoch's hooks (checkpoints come after)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        self.timeline.hooks_done()


class TimedCallback(Callback):
    """Forwards every hook to a real callback and adds its duration to the epoch (or to the run)."""

    def __init__(self, inner: Callback, timeline: Timeline) -> None:
        self.inner, self.timeline, self.key = inner, timeline, inner.key

    def _call(self, name: str, *args: Any) -> None:
        start = now()
        try:
            getattr(self.inner, name)(*args)
        finally:
            self.timeline.add_hook(now() - start)

    def on_train_start(self, state: RunState) -> None:
        self._call("on_train_start", state)

    def on_epoch_start(self, state: RunState) -> None:
        self._call("on_epoch_start", state)

    def on_validation_end(self, state: RunState, metrics: dict[str, float]) -> None:
        self._call("on_validation_end", state, metrics)

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        self._call("on_epoch_end", state, metrics)

    def on_train_end(self, state: RunState) -> None:
        self._call("on_train_end", state)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


class TimedLoader:
    """Stands in for a DataLoader: every ``iter()`` makes a loader iterator at once, as DataLoader does, and
    the time blocked in each ``next()`` (and in making the iterator: worker start-up) is the data wait.

    Eager like DataLoader, because callers may rely on it: tqdm.auto's bar calls ``iter()`` when it is
    built and again when the loop starts, and each loader iterator draws a seed from torch's generator,
    so a lazy wrapper would shift the dropout stream and train differently.
    """

    def __init__(self, loader: DataLoader, timeline: Timeline) -> None:
        self.loader, self.timeline = loader, timeline

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.timeline.train_start()
        start = now()
        iterator = iter(self.loader)
        self.timeline.add_wait(now() - start, got_batch=False)
        return TimedIterator(iterator, self.timeline)


class TimedIterator:
    def __init__(self, iterator: Iterator[Any], timeline: Timeline) -> None:
        self.iterator, self.timeline = iterator, timeline

    def __iter__(self) -> TimedIterator:
        return self

    def __next__(self) -> Any:
        start = now()
        try:
            batch = next(self.iterator)
        except StopIteration:
            self.timeline.add_wait(now() - start, got_batch=False)
            raise
        self.timeline.add_wait(now() - start, got_batch=True)
        return batch


class TimedValidator:
    def __init__(self, validator: Callable[..., dict[str, float]], timeline: Timeline) -> None:
        self.validator, self.timeline = validator, timeline

    def __call__(self, student: torch.nn.Module, teacher: torch.nn.Module) -> dict[str, float]:
        return self.timeline.validate(lambda: self.validator(student, teacher))


def instrument(trainer: Any, timeline: Timeline) -> Any:
    """Wrap a built Trainer's loader, validator and (when attached) callbacks; its behaviour is unchanged."""
    trainer.loader = TimedLoader(trainer.loader, timeline)
    trainer.validator = TimedValidator(trainer.validator, timeline)
    attach = trainer.attach

    def timed_attach(out_dir: Path, callbacks: list[Callback]) -> None:
        wrapped = [TimedCallback(cb, timeline) for cb in callbacks]
        attach(out_dir, [StartProbe(timeline), *wrapped, EndProbe(timeline)])

    trainer.attach = timed_attach
    return trainer


@contextlib.contextmanager
def instrumented_train_runs(timeline: Timeline) -> Iterator[None]:
    """Inside: ``train_run`` builds instrumented trainers (it calls ``runner.build_checked_trainer``)."""
    import sedwatt.runner as runner

    original = runner.build_checked_trainer
    runner.build_checked_trainer = lambda config, data: instrument(original(config, data), timeline)
    try:
        yield
    finally:
        runner.build_checked_trainer = original


# -- the upstream-structured pipeline -----------------------------------------------------------------
class WaveDataset(Dataset):
    """The recipe's item: the waveform read from its WAV at every access (no cache), and the labels.

    Crops and labels follow ClipDataset's rules (same crop start for (seed, epoch, index)), so both
    pipelines train on the same examples; only where the mel is computed differs.
    """

    def __init__(self, clips: list[Clip], config: SedwattConfig, *, random_crop: bool, seed: int) -> None:
        self.clips = clips
        self.encoder = LabelEncoder.from_config(config)
        self.sample_rate = config.data.sample_rate
        self.n_samples = config.n_samples
        self.random_crop = random_crop and config.data.random_crop
        self.seed, self.epoch = seed, 0
        self.n_classes = len(self.encoder.classes)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        clip = self.clips[index]
        wave = read_audio(clip.path, self.sample_rate)
        start = 0
        if self.random_crop and wave.shape[0] > self.n_samples:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            start = int(rng.integers(0, wave.shape[0] - self.n_samples + 1))
        wave = fit_length(wave, self.n_samples, start)
        shift = start / self.sample_rate
        strong = np.zeros((self.n_classes, self.encoder.n_frames), dtype=np.float32)
        weak = np.zeros(self.n_classes, dtype=np.float32)
        if clip.events is not None:
            events = [(on - shift, off - shift, lab) for on, off, lab in clip.events if off - shift > 0]
            strong = self.encoder.encode_strong(events)
            weak = (strong.max(axis=1) > 0).astype(np.float32)
        elif clip.labels is not None:
            weak = self.encoder.encode_weak(clip.labels)
        return torch.from_numpy(wave), torch.from_numpy(strong), torch.from_numpy(weak), index


def recipe_decode(scores: np.ndarray, names: list[str], config: SedwattConfig) -> pd.DataFrame:
    """The recipe's decoding at one threshold, clip by clip: scipy median filter, dcase_util's regions."""
    import scipy.ndimage
    from dcase_util.data import DecisionEncoder

    encoder, v, classes = DecisionEncoder(), config.validation, tuple(config.data.classes)
    frame, clip_s = config.frame_seconds, config.data.clip_seconds
    frames = []
    for clip_scores, name in zip(scores, names, strict=True):
        frame_major = clip_scores.transpose()  # [T, C], as the recipe filters it
        mask = scipy.ndimage.median_filter(frame_major > v.threshold, (v.median_filter, 1))
        events = [
            [label, float(np.clip(start * frame, 0, clip_s)), float(np.clip(stop * frame, 0, clip_s))]
            for k, label in enumerate(classes)
            for start, stop in encoder.find_contiguous_regions(mask[:, k])
        ]
        if events:
            table = pd.DataFrame(events, columns=["event_label", "onset", "offset"])
            table["filename"] = name
            frames.append(table)
    if not frames:
        return pd.DataFrame(columns=["event_label", "onset", "offset", "filename"])
    return pd.concat(frames, ignore_index=True)


class RecipeValidator:
    """The recipe's per-epoch validation: the four intersection F1s and the weak F1 that ours computes."""

    def __init__(
        self,
        config: SedwattConfig,
        synth_val: WaveDataset,
        weak_val: WaveDataset,
        truth: pd.DataFrame,
        durations: pd.DataFrame,
        extractor: MelExtractor,
        device: torch.device,
    ) -> None:
        self.config, self.synth_val, self.weak_val = config, synth_val, weak_val
        self.truth, self.durations, self.extractor, self.device = truth, durations, extractor, device
        self.names = [c.name for c in synth_val.clips]
        encode = synth_val.encoder.encode_weak
        self.weak_truth = (
            np.stack([encode(c.labels or ()) for c in weak_val.clips]) if len(weak_val) else None
        )

    @torch.no_grad()
    def _outputs(self, dataset: WaveDataset, models: list[torch.nn.Module]) -> list[tuple[np.ndarray, ...]]:
        loader = DataLoader(
            dataset,
            batch_size=self.config.train.val_batch_size,
            shuffle=False,
            num_workers=self.config.data.num_workers,
            worker_init_fn=worker_init,
        )
        found: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in models]
        for wave, _strong, _weak, _idx in loader:
            x = log_normalise(self.extractor(wave.to(self.device)), self.config.features)
            with autocast(self.device, self.config.train.precision):
                for (strongs, weaks), model in zip(found, models, strict=True):
                    s, w = model(x)
                    strongs.append(s.float().cpu().numpy())
                    weaks.append(w.float().cpu().numpy())
        return [(np.concatenate(s), np.concatenate(w)) for s, w in found]

    def _f1(self, events: pd.DataFrame, criterion: float) -> float:
        from sedwatt.metrics.reference import psds_eval_object

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pe = psds_eval_object(self.truth, self.durations, dtc=criterion, gtc=criterion, cttc=0.3)
            if events.empty:  # psds_eval needs at least one detection; the F1 of none is 0
                return 0.0
            _, per_class = pe.compute_macro_f_score(events)
        return float(np.mean([0.0 if np.isnan(v) else v for v in per_class.values()]))

    def __call__(self, student: torch.nn.Module, teacher: torch.nn.Module) -> dict[str, float]:
        from sedwatt.metrics import weak_f1

        v = self.config.validation
        models = [student, teacher]
        for m in models:
            m.eval()
        try:
            (s_strong, _), (t_strong, _) = self._outputs(self.synth_val, models)
            s_events = recipe_decode(s_strong, self.names, self.config)
            t_events = recipe_decode(t_strong, self.names, self.config)
            metrics = {
                names.VAL_F1: self._f1(t_events, v.dtc),
                names.VAL_F1_STUDENT: self._f1(s_events, v.dtc),
                names.VAL_F1_05_STUDENT: self._f1(s_events, v.checkpoint_dtc),
                names.VAL_F1_05_TEACHER: self._f1(t_events, v.checkpoint_dtc),
                names.VAL_WEAK_F1_STUDENT: 0.0,
            }
            if self.weak_truth is not None:
                (_, s_weak), (_, t_weak) = self._outputs(self.weak_val, models)
                for key, probs in ((names.VAL_WEAK_F1_STUDENT, s_weak), (names.VAL_WEAK_F1_TEACHER, t_weak)):
                    metrics[key] = float(weak_f1(probs, self.weak_truth, threshold=v.threshold)[0])
            metrics[names.OBJ_METRIC] = metrics[names.VAL_WEAK_F1_STUDENT] + metrics[names.VAL_F1_05_STUDENT]
        finally:
            for m in models:
                m.train()
        return metrics


def run_upstream(config: SedwattConfig, scan: DatasetScan, device: torch.device, timeline: Timeline) -> None:
    from sedwatt.data.datasets import split_weak
    from sedwatt.training.loop import epoch_seed, seed_everything

    train_cfg, seed = config.train, config.train.seed
    seed_everything(seed)
    student = UpstreamCRNN.from_config(config).to(device)
    teacher = copy.deepcopy(student)
    d = config.data
    weak_train, weak_val = split_weak(scan.sets["weak"].clips, d.weak_val_fraction, d.weak_split_seed)
    train_sets = [
        WaveDataset(clips, config, random_crop=True, seed=seed)
        for clips in (scan.sets["synth_train"].clips, weak_train, scan.sets["unlabelled"].clips)
    ]
    sampler = HeterogeneousBatchSampler([len(d) for d in train_sets], train_cfg.batch_split, seed=seed)
    loader = DataLoader(
        ConcatDataset(train_sets),
        batch_sampler=sampler,
        num_workers=config.data.num_workers,
        worker_init_fn=worker_init,
        pin_memory=device.type == "cuda",
    )
    timed = TimedLoader(loader, timeline)
    step = MeanTeacherStep(student, teacher, config, len(sampler), device)
    extractor = MelExtractor(config.features, config.data.sample_rate).to(device)
    synth_val = scan.sets["synth_val"]
    validator = RecipeValidator(
        config,
        WaveDataset(synth_val.clips, config, random_crop=False, seed=seed),
        WaveDataset(weak_val, config, random_crop=False, seed=seed),
        synth_val.ground_truth(),
        synth_val.durations_frame(),
        extractor,
        device,
    )
    for epoch in range(1, train_cfg.epochs + 1):
        timeline.epoch_start(epoch)
        seed_everything(epoch_seed(seed, epoch))
        sampler.set_epoch(epoch)
        for dataset in train_sets:
            dataset.set_epoch(epoch)
        rng = np.random.default_rng(epoch_seed(seed, epoch))
        student.train()
        teacher.train()
        for wave, strong, weak, _idx in timed:
            with torch.no_grad():
                mel = extractor(wave.to(device, non_blocking=True))
            step(mel, strong, weak, rng)
        timeline.validate(lambda: validator(student, teacher))
        timeline.hooks_done()
    timeline.close()


# -- ours ---------------------------------------------------------------------------------------------
def run_ours_bare(config: SedwattConfig, data: Any, out_dir: Path, timeline: Timeline) -> None:
    from sedwatt.training.loop import Trainer

    trainer = instrument(Trainer(config, data, out_dir), timeline)
    trainer.attach(out_dir, [])
    trainer.fit()


def run_ours_tracked(config: SedwattConfig, data_dir: Path, timeline: Timeline, name: str) -> None:
    """One train_run: the real callbacks, an MLflow run in the temporary store, the model logged at the end."""
    from sedwatt.runner import train_run

    with instrumented_train_runs(timeline):
        train_run(config, data_dir, run_name=name)


# -- data ---------------------------------------------------------------------------------------------
def default_data_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sedwatt" / "bench-data"


def ensure_data(preset: str, fraction: float, clip_seconds: float, cache: Path, seed: int = 1) -> Path:
    """The generated dataset for (preset, fraction, clip length, seed), made on first use."""
    from sedwatt.cli import main as sedwatt_main
    from sedwatt.data.synth import MANIFEST_NAME

    name = preset if fraction == 1.0 else f"{preset}-x{fraction:g}"
    root = cache / f"{name}-{clip_seconds:g}s-seed{seed}"
    if (root / MANIFEST_NAME).is_file():
        print(f"data: {root} (reused)", flush=True)
        return root
    size = ["--preset", preset] if fraction == 1.0 else ["--scale", f"{fraction:g}"]
    print(f"data: generating {root} (sedwatt make-data {' '.join(size)} --seed {seed})", flush=True)
    start = now()
    command = ["make-data", str(root), *size, "--seed", str(seed), "--clip-seconds", f"{clip_seconds:g}"]
    if sedwatt_main(command) != 0:
        raise SystemExit(f"epoch.py: sedwatt make-data {root} failed")
    print(f"data: generated in {now() - start:.0f} s", flush=True)
    return root


# -- report -------------------------------------------------------------------------------------------
COLUMNS = {
    "data_wait": "data_wait_s",
    "step": "step_s",
    "validation": "val_s",
    "callbacks": "callbacks_s",
    "checkpoint": "ckpt_s",
    "wall": "epoch_s",
}
UPSTREAM, BARE, TRACKED, COLD = "upstream", "ours", "ours+tracking", "ours, cold cache"
NO_RATIO = ("callbacks", "checkpoint")  # upstream has neither


def print_epoch(e: EpochTimes) -> None:
    values = "".join(f"{getattr(e, c):>12.3f}" for c in COLUMNS)
    print(f"{e.variant:<17}{e.run:>4}{e.epoch:>6}{e.steps:>7}{values}", flush=True)


def median(epochs: list[EpochTimes], variant: str, column: str) -> float:
    values = [getattr(e, column) for e in epochs if e.variant == variant]
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "n/a"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--preset", default="desed-size", choices=("tiny", "small", "desed-size"))
    add("--fraction", type=float, default=1.0, help="desed-size only: DESED's counts × F, 0 < F <= 1")
    add("--clip-seconds", type=float, default=10.0, help="generated clip length (default 10, DESED)")
    add("--data", type=Path, default=None, help="a DESED-layout folder to use instead of a generated one")
    add("--data-cache", type=Path, default=default_data_cache(), help="where generated sets are kept")
    add("--config", default="configs/dcase2022.yaml")
    add("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    add("--batch-size", type=int, default=None, help="default: the config's")
    add(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers of both pipelines (default: the config's)",
    )
    add("--threads", type=int, default=torch.get_num_threads())
    add("--device", default="cpu")
    add("--epochs", type=int, default=1, help="epochs per run (default 1)")
    add("--rounds", type=int, default=1, help="rounds of the variants, rotated (default 1)")
    add("--no-upstream", action="store_true")
    add("--no-tracking", action="store_true", help="skip the train_run variant")
    add(
        "--work",
        type=Path,
        default=None,
        help="mel cache, outputs and MLflow store here, kept (default: temp)",
    )
    add("--keep", action="store_true", help="keep the temporary work folder")
    add("--child", default=None, choices=(COLD, UPSTREAM, BARE, TRACKED), help=argparse.SUPPRESS)
    add("--run", type=int, default=0, help=argparse.SUPPRESS)
    add("--results", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 0.0 < args.fraction <= 1.0:
        parser.error(f"--fraction {args.fraction}: expected 0 < F <= 1")
    if args.fraction != 1.0 and args.preset != "desed-size":
        parser.error("--fraction applies to --preset desed-size only")
    if args.epochs < 1 or args.rounds < 1:
        parser.error("--epochs and --rounds must be at least 1")
    return args


def bench_overrides(args: argparse.Namespace, work: Path) -> list[str]:
    return [
        f"train.epochs={args.epochs}",
        "train.progress=false",
        f"train.out_dir={work / 'outputs'}",
        f"data.cache_dir={work / 'melcache'}",  # fresh: the first epoch of ours is really cold
        f"train.num_threads={args.threads}",
        f"train.device={args.device}",
        "tracking.experiment=bench-epoch",
        "tracking.registered_model_name=bench-epoch-crnn",
        *([f"train.batch_size={args.batch_size}"] if args.batch_size else []),
        *([f"data.num_workers={args.workers}"] if args.workers is not None else []),
        *args.overrides,
    ]


def bench_environment(work: Path) -> None:
    """Every run's tracking store is the work folder's, and the thread share counts this benchmark's jobs only."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlruns.db'}"
    os.environ.pop("MLFLOW_RUN_ID", None)
    os.environ.setdefault("SEDWATT_JOBS_DIR", str(work / "jobs"))


def warm_up(variant: str, config: SedwattConfig, device: torch.device) -> float:
    """One untimed mean-teacher step of the variant's architecture on random clips, in this fresh process: the
    kernels' first-use set-up and the heap's growth are not charged to the measured epoch. Seeded, and the runs
    seed themselves again, so what they train is the same with or without it."""
    from train_step import StepTimer, Variant

    from sedwatt.model import build_crnn

    model = UpstreamCRNN.from_config(config) if variant == UPSTREAM else build_crnn(config)
    batch = config.train.batch_size
    return StepTimer(Variant(variant, model, reuse_memory=False), config, batch, device)()


def child_main(args: argparse.Namespace) -> None:
    """One run of one variant in this process; its epochs and run costs go to ``--results`` as JSON."""
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    work = args.work
    bench_environment(work)
    overrides = bench_overrides(args, work)
    variant = args.child
    config = load_config(args.config, [*overrides, "train.epochs=1"] if variant == COLD else overrides)
    allocator = "as it comes"
    if variant != UPSTREAM and config.train.reuse_freed_memory and device.type == "cpu":
        from sedwatt.memory import keep_freed_memory

        allocator = keep_freed_memory()  # as every sedwatt training process runs (train_run's callback does too)
    warm = warm_up(variant, config, device) if variant != COLD else 0.0

    from sedwatt.data.datasets import build_training_data
    from sedwatt.data.scan import load_clips

    data_dir = args.data or ensure_data(args.preset, args.fraction, args.clip_seconds, args.data_cache)
    scan = load_clips(data_dir, config)
    timeline = Timeline(device)
    timeline.begin_run(variant, args.run)
    start = now()
    if variant == UPSTREAM:
        run_upstream(config, scan, device, timeline)
    elif variant == TRACKED:
        run_ours_tracked(config, data_dir, timeline, f"bench-epoch-{args.run}")
    else:
        run_ours_bare(config, build_training_data(scan, config), work / "bare", timeline)
    end = now()
    result = {
        "epochs": [asdict(e) for e in timeline.epochs],
        "run": [variant, (timeline.first_start or end) - start, end - (timeline.last_close or end)],
        "warm_up_s": warm,
        "pid": os.getpid(),
        "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "allocator": allocator,
    }
    args.results.write_text(json.dumps(result))


def run_child(args: argparse.Namespace, work: Path, variant: str, r: int, wait_policy: str | None) -> dict:
    """Run one variant in a fresh process: glibc's allocator and OpenMP's wait policy are per process and cannot
    be put back once set, so upstream runs as upstream does (both untouched) and ours as sedwatt runs
    (kept freed memory; ``OMP_WAIT_POLICY`` from ``threads.decide_wait_policy`` unless the caller set one)."""
    from sedwatt.threads import decide_wait_policy

    results = work / f"result-{variant.replace(' ', '_').replace(',', '')}-{r}.json"
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy is not None:
        env["OMP_WAIT_POLICY"] = wait_policy
    elif variant != UPSTREAM:
        chosen, _ = decide_wait_policy(env)  # as the sedwatt command would choose for a job starting now
        if chosen is not None:
            env["OMP_WAIT_POLICY"] = chosen
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        *sys.argv[1:],
        "--work",
        str(work),
        "--child",
        variant,
        "--run",
        str(r),
        "--results",
        str(results),
    ]
    if subprocess.run(command, env=env, check=False).returncode != 0:
        raise SystemExit(f"epoch.py: the {variant} run {r} failed (its output is above)")
    return json.loads(results.read_text())


def main() -> None:
    args = parse_args()
    if args.child:
        child_main(args)
        return
    wait_policy = os.environ.get("OMP_WAIT_POLICY")  # the caller's: every child runs under it when set
    device = torch.device(args.device)
    data_dir = args.data or ensure_data(args.preset, args.fraction, args.clip_seconds, args.data_cache)
    work = args.work or Path(tempfile.mkdtemp(prefix="sedwatt-epoch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench_environment(work)
    config = load_config(args.config, bench_overrides(args, work))

    from sedwatt.data.datasets import build_training_data
    from sedwatt.data.scan import load_clips

    start = now()
    scan = load_clips(data_dir, config)
    data = build_training_data(scan, config)
    sizes = {name: len(s.clips) for name, s in scan.sets.items()}
    steps = min(len(d) // share for d, share in zip(data.train_sets, config.train.batch_split, strict=True))
    t = config.train
    print(
        f"torch {torch.__version__}, device {device}, {args.threads} threads, {config.data.num_workers} workers, "
        f"config {config.name}, batch {t.batch_size} {t.batch_split}, precision {t.precision}; every run in its own "
        f"process after one untimed warm-up step (upstream: OMP_WAIT_POLICY {wait_policy or 'unset'}, glibc's "
        f"allocator as it comes; ours: OMP_WAIT_POLICY {wait_policy or 'as sedwatt chooses'}, freed memory kept "
        f"{'on' if t.reuse_freed_memory else 'off'})"
    )
    print(
        f"clips {sizes} (weak: {len(data.weak)} train / {len(data.weak_val)} held out): {steps} steps per epoch, "
        f"validation {len(data.synth_val)} + {len(data.weak_val)} clips; scan + datasets {now() - start:.1f} s",
        flush=True,
    )
    epochs: list[EpochTimes] = []
    runs: list[tuple[str, float, float]] = []  # (variant, start-up, finish) of each run, seconds

    def run(variant: str, r: int) -> None:
        result = run_child(args, work, variant, r, wait_policy)
        mine = [EpochTimes(**e) for e in result["epochs"]]
        runs.append(tuple(result["run"]))
        print(
            f"{variant} run {r}: process {result['pid']}, OMP_WAIT_POLICY {result['wait_policy'] or 'unset'}, "
            f"allocator {result['allocator']}, warm-up step {result['warm_up_s']:.2f} s (not counted)"
        )
        print(
            f"{'variant':<17}{'run':>4}{'epoch':>6}{'steps':>7}" + "".join(f"{c:>12}" for c in COLUMNS.values())
        )
        for e in mine:
            print_epoch(e)
        epochs.extend(mine)

    try:
        run(COLD, 0)
        skip = {UPSTREAM: args.no_upstream, BARE: False, TRACKED: args.no_tracking}
        order = [v for v in (UPSTREAM, BARE, TRACKED) if not skip[v]]
        for r in range(1, args.rounds + 1):
            k = (r - 1) % len(order)
            for variant in order[k:] + order[:k]:
                run(variant, r)
    finally:
        if args.keep or args.work:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    full = None
    if args.data is None and args.preset == "desed-size" and args.fraction < 1.0:
        full = Scale(steps, len(data.synth_val) + len(data.weak_val), *full_desed_shape(config))
    report(epochs, runs, full)


@dataclass
class Scale:
    """This run's steps and validation clips per epoch, and the full desed-size set's."""

    steps: int
    val_clips: int
    full_steps: int
    full_val_clips: int

    def estimate(self, epochs: list[EpochTimes], variant: str) -> float:
        """The variant's full-size epoch: its per-step and per-validation-clip times × the full counts."""
        wall, train, val = (median(epochs, variant, c) for c in ("wall", "train", "validation"))
        return wall + train * (self.full_steps / self.steps - 1) + val * (self.full_val_clips / self.val_clips - 1)


def full_desed_shape(config: SedwattConfig) -> tuple[int, int]:
    """(steps, validation clips) of an epoch on DESED's counts with this config's batch split and hold-out."""
    from sedwatt.data.datasets import split_weak
    from sedwatt.data.synth import DESED_COUNTS

    d = config.data
    weak_train, weak_val = split_weak(list(range(DESED_COUNTS["weak"])), d.weak_val_fraction, d.weak_split_seed)
    sizes = (DESED_COUNTS["synth_train"], len(weak_train), DESED_COUNTS["unlabelled"])
    steps = min(size // share for size, share in zip(sizes, config.train.batch_split, strict=True))
    return steps, DESED_COUNTS["synth_val"] + len(weak_val)


def report(epochs: list[EpochTimes], runs: list[tuple[str, float, float]], full: Scale | None) -> None:
    """Medians per variant, ratios ours/upstream, tracking overhead, per-run costs; last line the epoch ratio."""
    present = [v for v in (UPSTREAM, BARE, TRACKED) if any(e.variant == v for e in epochs)]
    print("\nmedian per epoch " + "".join(f"{c:>12}" for c in COLUMNS.values()))
    for variant in present:
        print(f"{variant:<17}" + "".join(f"{median(epochs, variant, c):>12.3f}" for c in COLUMNS))
    if UPSTREAM in present:
        for variant in (BARE, TRACKED):
            cells = [
                "-" if c in NO_RATIO else ratio(median(epochs, variant, c), median(epochs, UPSTREAM, c))
                for c in COLUMNS
            ]
            if variant in present:
                label = "ours/upstream" if variant == BARE else "tracked/upstream"
                print(f"{label:<17}" + "".join(f"{cell:>12}" for cell in cells))
    warm = median(epochs, BARE, "wall")
    print(
        f"ours, cold mel cache: {median(epochs, COLD, 'wall'):.2f} s, data wait "
        f"{median(epochs, COLD, 'data_wait'):.3f} s (the first epoch fills the cache, and warms up the process); "
        f"warm: {warm:.2f} s, data wait {median(epochs, BARE, 'data_wait'):.3f} s"
    )
    for variant in (BARE, TRACKED):
        mine = [(up, down) for v, up, down in runs if v == variant]
        if mine:
            up, down = statistics.median(u for u, _ in mine), statistics.median(d for _, d in mine)
            print(
                f"per run, not per epoch ({variant}): {up:.2f} s before its first epoch, {down:.2f} s after its last"
            )
    if TRACKED in present:
        hooks, ckpt = median(epochs, TRACKED, "callbacks"), median(epochs, TRACKED, "checkpoint")
        tracked = median(epochs, TRACKED, "wall")
        print(
            f"tracking + energy per epoch: {hooks * 1000:.1f} ms inside the callbacks' hooks = "
            f"{hooks / tracked * 100:.2f} % of the epoch; checkpoints {ckpt * 1000:.1f} ms "
            f"({ckpt / tracked * 100:.2f} %; written without callbacks too: "
            f"{median(epochs, BARE, 'checkpoint') * 1000:.1f} ms)"
        )
        print(
            f"epoch wall time with - without callbacks: {(tracked - warm) * 1000:+.1f} ms "
            f"({(tracked / warm - 1) * 100:+.2f} %): also holds what background threads cost (CodeCarbon's "
            "sampling, the MLflow logger), and this machine's noise"
        )
        if full is not None:
            print(
                f"at the full desed-size (estimate below; hooks per epoch as here): hooks = "
                f"{hooks / full.estimate(epochs, TRACKED) * 100:.3f} % of the epoch"
            )
        print(
            f"tracking_overhead_ms_per_epoch={hooks * 1000:.1f} tracking_overhead_pct={hooks / tracked * 100:.2f}"
        )
    if full is not None:
        estimates = ", ".join(f"{v} {full.estimate(epochs, v):.0f} s" for v in present)
        print(
            f"full desed-size epoch estimate ({full.full_steps} steps, {full.full_val_clips} validation clips, "
            f"from this run's times per step and per validation clip): {estimates}"
        )
    upstream = median(epochs, UPSTREAM, "wall") if UPSTREAM in present else float("nan")
    print(f"epoch_ratio_vs_upstream={ratio(warm, upstream)}")


if __name__ == "__main__":
    main()
