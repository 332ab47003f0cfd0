"""Audio on disk → 16 kHz mono float32 of the configured length.

soundfile reads any rate and channel count (torchaudio 2.11's ``load`` needs torchcodec); channels
are averaged as the recipe does, torchaudio's resampler converts the rate, and clips are right-padded
with zeros or cropped. Cropping returns its offset so strong labels can be shifted with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from sedwatt.errors import SedwattError


def _reason(exc: Exception) -> str:
    """libsndfile says "Error opening '<path>': Format not recognised." — keep the reason only."""
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text.rsplit("': ", 1)[-1].rstrip(".")


def audio_info(path: Path) -> tuple[int, int]:
    """(sample rate, frames) from the header; SedwattError if unreadable."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise SedwattError(f"{path}: unreadable audio ({_reason(exc)})") from None
    return int(info.samplerate), int(info.frames)


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Whole file as mono float32 at ``sample_rate``."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise SedwattError(f"{path}: unreadable audio ({_reason(exc)})") from None
    if data.shape[0] == 0:
        raise SedwattError(f"{path}: empty audio (0 samples)")
    mono = data.mean(axis=1)
    if sr != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), sr, sample_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def fit_length(wave: np.ndarray, n_samples: int, crop_start: int = 0) -> np.ndarray:
    """Right-pad with zeros, or crop ``n_samples`` starting at ``crop_start``."""
    if wave.shape[0] >= n_samples:
        return wave[crop_start : crop_start + n_samples]
    out = np.zeros(n_samples, dtype=np.float32)
    out[: wave.shape[0]] = wave
    return out
