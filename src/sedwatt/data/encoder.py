"""Events ↔ many-hot frame labels, with the recipe's frame arithmetic derived from the config.

10 s at 16 kHz, hop 256, time pooling 4 → int(int(160000/256)/4) = 156 frames of 0.064 s.
Onsets round down and offsets round up to frames (the recipe's ManyHotEncoder); decoding the
frames back to seconds is `sedwatt.metrics.decode`, the one decoder for training, evaluation and scoring.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sedwatt.config import SedwattConfig


@dataclass(frozen=True)
class LabelEncoder:
    classes: tuple[str, ...]
    n_frames: int
    frame_seconds: float
    clip_seconds: float

    @classmethod
    def from_config(cls, config: SedwattConfig) -> LabelEncoder:
        return cls(
            classes=tuple(config.data.classes),
            n_frames=config.n_label_frames,
            frame_seconds=config.frame_seconds,
            clip_seconds=config.data.clip_seconds,
        )

    @property
    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def _frame(self, seconds: float) -> float:
        return min(max(seconds / self.frame_seconds, 0.0), float(self.n_frames))

    def encode_strong(self, events: Iterable[tuple[float, float, str]]) -> np.ndarray:
        """[(onset, offset, label)] → float32 [n_classes, n_frames] (class-major, like the model output)."""
        y = np.zeros((len(self.classes), self.n_frames), dtype=np.float32)
        index = self.index
        for onset, offset, label in events:
            start = int(math.floor(self._frame(onset)))
            stop = int(math.ceil(self._frame(offset)))
            y[index[label], start:stop] = 1.0
        return y

    def encode_weak(self, labels: Sequence[str]) -> np.ndarray:
        """Clip labels → float32 [n_classes] many-hot."""
        y = np.zeros(len(self.classes), dtype=np.float32)
        index = self.index
        for label in labels:
            y[index[label]] = 1.0
        return y
