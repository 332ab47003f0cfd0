"""Audio files → frame scores → DCASE events, with the code training and evaluation use.

Each file is read by ``read_audio`` (any sample rate, channels averaged, resampled to the config's
rate), cut into consecutive windows of the configured clip length (the last one right-padded with
zeros by ``fit_length``, as a short clip is), turned into a linear mel per window exactly as
``ClipDataset`` does, and run through ``sedwatt.training.validation.predict`` (log-mel
normalisation per window, the run's precision, ``val_batch_size`` batches). A file no longer than
one clip is therefore processed exactly as ``sedwatt evaluate`` processes a dev-test clip.

Decoding is the recipe's: ``scores > threshold`` then a binary median filter per window
(``sedwatt.metrics.decode.binarise``), each window decoded as a clip of its own. An event still
active at the last frame of a window that goes on at the first frame of the next one is one event.
Times are seconds from the start of the file; no event goes past the file's end (the recipe's
decoder clips at the clip length, which is the file's length for a full clip).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sedwatt.config import SedwattConfig
from sedwatt.errors import SedwattError

CHUNK_WINDOWS = 256  # windows held in memory at once (a 10 s log-mel window is 0.3 MB)


@dataclass
class FileScores:
    """The frame scores of one file: ``scores`` [windows, classes, frames]; ``duration`` in seconds."""

    filename: str
    scores: np.ndarray
    duration: float


def audio_windows(path: Path | str, config: SedwattConfig) -> tuple[list[np.ndarray], float]:
    """The file as clip-length windows of mono samples at the config's rate, and its duration (s)."""
    from sedwatt.data.audio import fit_length, read_audio

    path = Path(path)
    if not path.is_file():
        raise SedwattError(f"{path}: audio file not found")
    wave = read_audio(path, config.data.sample_rate)
    n = config.n_samples
    count = max(1, math.ceil(wave.shape[0] / n))
    windows = [fit_length(wave[i * n : (i + 1) * n], n) for i in range(count)]
    return windows, wave.shape[0] / config.data.sample_rate


class _Mels(torch.utils.data.Dataset):
    """Precomputed linear mels in the item layout ``predict`` reads (mel, strong, weak, index)."""

    def __init__(self, mels: list[torch.Tensor]) -> None:
        self.mels = mels
        self.empty = torch.zeros(1)

    def __len__(self) -> int:
        return len(self.mels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        return self.mels[index], self.empty, self.empty, index


def frame_scores(
    model: torch.nn.Module,
    filenames: Sequence[str],
    config: SedwattConfig,
    device: torch.device,
    extractor: torch.nn.Module | None = None,
) -> list[FileScores]:
    """Strong frame scores of every file, in input order (see the module docstring).

    ``extractor``: the config's ``MelExtractor``, built once by a caller that predicts many times (a served model).
    """
    from sedwatt.features import MelExtractor
    from sedwatt.training.validation import predict

    if extractor is None:
        extractor = MelExtractor(config.features, config.data.sample_rate)
    # The mels are already in memory: DataLoader workers would only copy them.
    in_process = config.model_copy(update={"data": config.data.model_copy(update={"num_workers": 0})})
    out: list[FileScores] = []
    pending: list[tuple[str, int, float]] = []  # (filename, windows, duration) not yet run
    mels: list[torch.Tensor] = []

    def run() -> None:
        if not pending:
            return
        ((strong, _weak),) = predict([model], _Mels(mels), in_process, device)
        start = 0
        for name, count, duration in pending:
            out.append(FileScores(name, strong[start : start + count], duration))
            start += count
        pending.clear()
        mels.clear()

    for name in filenames:
        windows, duration = audio_windows(name, config)
        with torch.no_grad():
            mels.extend(extractor(torch.from_numpy(w)) for w in windows)
        pending.append((name, len(windows), duration))
        if len(mels) >= CHUNK_WINDOWS:
            run()
    run()
    return out


def file_events(
    scores: np.ndarray,
    filename: str,
    duration: float,
    *,
    threshold: float,
    median_filter: int,
    frame_seconds: float,
    clip_seconds: float,
    classes: Sequence[str],
) -> pd.DataFrame:
    """One file's scores [windows, classes, frames] → its events (filename, onset, offset, event_label)."""
    from sedwatt.metrics.decode import binarise, mask_regions
    from sedwatt.metrics.events import empty_events

    n_windows, n_classes, n_frames = scores.shape
    mask = binarise(scores, threshold, median_filter)  # per window, as each window were a clip
    # Windows side by side: a region running over a window edge comes out as one event.
    joined = mask.transpose(1, 0, 2).reshape(n_classes, n_windows * n_frames)
    class_index, first, stop = mask_regions(joined)
    if class_index.size == 0:
        return empty_events()
    window_first, frame_first = np.divmod(first, n_frames)
    window_last, frame_last = np.divmod(stop - 1, n_frames)
    # The recipe's frame → seconds (frame × hop × pooling / sr, clipped to the clip), per window.
    onset = window_first * clip_seconds + np.clip(frame_first * frame_seconds, 0.0, clip_seconds)
    offset = window_last * clip_seconds + np.clip((frame_last + 1) * frame_seconds, 0.0, clip_seconds)
    labels = np.asarray(classes, dtype=object)
    events = pd.DataFrame(
        {"filename": np.full(class_index.size, filename, dtype=object), "onset": onset,
         "offset": np.minimum(offset, duration), "event_label": labels[class_index]}
    )  # fmt: skip
    return events.loc[events["onset"] < events["offset"]].reset_index(drop=True)


def file_score_table(
    scores: np.ndarray,
    filename: str,
    duration: float,
    *,
    frame_seconds: float,
    clip_seconds: float,
    classes: Sequence[str],
) -> pd.DataFrame:
    """One file's raw frame scores (before threshold and median filter) as rows: filename, onset, offset, one column per class."""
    n_windows, n_classes, n_frames = scores.shape
    frame = np.arange(n_frames)
    onset = (np.arange(n_windows)[:, None] * clip_seconds + frame[None, :] * frame_seconds).reshape(-1)
    offset = (np.arange(n_windows)[:, None] * clip_seconds
              + np.minimum((frame[None, :] + 1) * frame_seconds, clip_seconds)).reshape(-1)  # fmt: skip
    values = scores.transpose(0, 2, 1).reshape(-1, n_classes)
    keep = onset < duration
    table = pd.DataFrame(
        {"filename": filename, "onset": onset[keep], "offset": np.minimum(offset[keep], duration)}
    )
    for index, name in enumerate(classes):
        table[name] = values[keep, index].astype(np.float64)
    return table


def detect(
    model: torch.nn.Module,
    filenames: Sequence[str],
    config: SedwattConfig,
    device: torch.device,
    *,
    threshold: float | None = None,
    scores: bool = False,
    extractor: torch.nn.Module | None = None,
) -> pd.DataFrame:
    """Events of every file (the config's threshold and median filter unless ``threshold`` is given),
    or with ``scores`` the per-class frame scores; rows keep the input's filename strings and order."""
    from sedwatt.metrics.events import EVENT_COLUMNS, empty_events

    classes = tuple(config.data.classes)
    timing = {
        "frame_seconds": config.frame_seconds,
        "clip_seconds": config.data.clip_seconds,
        "classes": classes,
    }
    tables: list[pd.DataFrame] = []
    for item in frame_scores(model, filenames, config, device, extractor):
        if scores:
            tables.append(file_score_table(item.scores, item.filename, item.duration, **timing))
        else:
            v = config.validation
            tables.append(
                file_events(item.scores, item.filename, item.duration,
                            threshold=v.threshold if threshold is None else float(threshold),
                            median_filter=v.median_filter, **timing)
            )  # fmt: skip
    if scores:
        columns = ["filename", "onset", "offset", *classes]
        frames = [t for t in tables if not t.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in columns})
    frames = [t for t in tables if not t.empty]
    return pd.concat(frames, ignore_index=True)[list(EVENT_COLUMNS)] if frames else empty_events()
