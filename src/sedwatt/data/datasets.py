"""Torch datasets over scanned clips: every item is (linear mel, strong frames, weak clip labels, index).

One item type for all sets keeps batching trivial: unlabelled clips carry zero labels, weak clips
zero frame labels, and the batch position says which loss uses what (docs/recipe.md §3). Longer clips
are cropped at a start drawn from (seed, epoch, index) in training — the same for any worker count,
so a resumed run sees the same crops — and at 0 for validation; strong labels move with the crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from sedwatt.config import SedwattConfig
from sedwatt.data.audio import fit_length, read_audio
from sedwatt.data.encoder import LabelEncoder
from sedwatt.data.scan import Clip, DatasetScan
from sedwatt.features import MelCache, MelExtractor, default_cache_dir, feature_fingerprint


class ClipDataset(Dataset):
    def __init__(
        self,
        clips: list[Clip],
        config: SedwattConfig,
        *,
        random_crop: bool,
        cache: MelCache | None,
        seed: int = 0,
    ) -> None:
        self.clips = clips
        self.encoder = LabelEncoder.from_config(config)
        self.sample_rate = config.data.sample_rate
        self.n_samples = config.n_samples
        self.random_crop = random_crop and config.data.random_crop
        self.cache = cache
        self.extractor = MelExtractor(config.features, config.data.sample_rate)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def _crop_start(self, index: int, n: int) -> int:
        if n <= self.n_samples or not self.random_crop:
            return 0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(rng.integers(0, n - self.n_samples + 1))

    def _mel(self, clip: Clip, index: int) -> tuple[np.ndarray, float]:
        expected = int(round(clip.duration * self.sample_rate))
        fixed_crop = expected <= self.n_samples or not self.random_crop
        key = None
        if self.cache is not None and fixed_crop:
            key = self.cache.content_key(clip.path)
            cached = self.cache.get(key)
            if cached is not None:
                return cached, 0.0
        wave = read_audio(clip.path, self.sample_rate)
        start = self._crop_start(index, wave.shape[0])
        wave = fit_length(wave, self.n_samples, start)
        with torch.no_grad():
            mel = self.extractor(torch.from_numpy(wave)).numpy()
        if key is not None and self.cache is not None:
            self.cache.put(key, mel)
        return mel, start / self.sample_rate

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        clip = self.clips[index]
        mel, shift = self._mel(clip, index)
        if clip.events is not None:
            events = [(on - shift, off - shift, lab) for on, off, lab in clip.events if off - shift > 0]
            strong = self.encoder.encode_strong(events)
            weak = (strong.max(axis=1) > 0).astype(np.float32)
        elif clip.labels is not None:
            strong = np.zeros((len(self.encoder.classes), self.encoder.n_frames), dtype=np.float32)
            weak = self.encoder.encode_weak(clip.labels)
        else:
            strong = np.zeros((len(self.encoder.classes), self.encoder.n_frames), dtype=np.float32)
            weak = np.zeros(len(self.encoder.classes), dtype=np.float32)
        return torch.from_numpy(mel), torch.from_numpy(strong), torch.from_numpy(weak), index


def split_weak(clips: list[Clip], fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """The recipe's hold-out: ``weak_df.sample(frac=0.9, random_state=42)`` trains, the rest validates."""
    if fraction <= 0:
        return list(clips), []
    frame = pd.DataFrame({"i": range(len(clips))})
    train_idx = frame.sample(frac=1.0 - fraction, random_state=seed)["i"].tolist()
    held = sorted(set(range(len(clips))) - set(train_idx))
    return [clips[i] for i in train_idx], [clips[i] for i in held]


@dataclass
class TrainingData:
    """What the trainer needs: three training sets in batch order, two validation sets, and their truth."""

    synth: ClipDataset
    weak: ClipDataset
    unlabelled: ClipDataset
    synth_val: ClipDataset
    weak_val: ClipDataset
    synth_val_truth: pd.DataFrame
    synth_val_durations: pd.DataFrame
    fingerprint: str

    @property
    def train_sets(self) -> list[ClipDataset]:
        return [self.synth, self.weak, self.unlabelled]


def build_training_data(scan: DatasetScan, config: SedwattConfig) -> TrainingData:
    cache = None
    if config.data.feature_cache:
        directory = config.data.cache_dir or default_cache_dir()
        cache = MelCache(Path(directory), feature_fingerprint(config.features, config.data.sample_rate, config.n_samples))
    seed = config.train.seed
    weak_train, weak_val = split_weak(scan.sets["weak"].clips, config.data.weak_val_fraction, config.data.weak_split_seed)

    def make(clips: list[Clip], train: bool) -> ClipDataset:
        return ClipDataset(clips, config, random_crop=train, cache=cache, seed=seed)

    synth_val = scan.sets["synth_val"]
    return TrainingData(
        synth=make(scan.sets["synth_train"].clips, True),
        weak=make(weak_train, True),
        unlabelled=make(scan.sets["unlabelled"].clips, True),
        synth_val=make(synth_val.clips, False),
        weak_val=make(weak_val, False),
        synth_val_truth=synth_val.ground_truth(),
        synth_val_durations=synth_val.durations_frame(),
        fingerprint=scan.fingerprint,
    )
