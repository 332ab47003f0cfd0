"""Log-mel features exactly as the DCASE 2022 recipe, split where mixup needs it.

``linear_mel`` gives the magnitude mel spectrogram (torchaudio, n_fft 2048, hop 256, 128 mels,
Hamming periodic=False, power 1, center/reflect); mixup acts on it, as in the recipe. ``log_normalise``
then takes 20·log10(max(x, 1e-5)), clamps to [-50, 80] dB and min-max scales each clip over (mel, time).
``MelCache`` keeps linear mels on disk keyed by file content + feature parameters, so multi-epoch
training does not recompute the STFT of the same clip every epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF

from sedwatt.atomic import atomic_path, write_atomic
from sedwatt.config import FeatureConfig


class MelExtractor(torch.nn.Module):
    """Waveform [B, samples] (or [samples]) → linear mel magnitudes [B, n_mels, frames]."""

    def __init__(self, features: FeatureConfig, sample_rate: int) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=features.n_fft,
            win_length=features.win_length,
            hop_length=features.hop_length,
            f_min=features.f_min,
            f_max=features.f_max,
            n_mels=features.n_mels,
            window_fn=torch.hamming_window,
            wkwargs={"periodic": False},
            power=1,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.mel(wave)


def log_normalise(mel: torch.Tensor, features: FeatureConfig) -> torch.Tensor:
    """Linear mel [B, M, T] → dB, clamped, min-max scaled per clip: the model's input."""
    db = AF.amplitude_to_DB(mel, multiplier=20.0, amin=features.amin, db_multiplier=0.0, top_db=None)
    db = db.clamp(min=features.db_min, max=features.db_max)
    flat = db.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1)
    return (db - lo) / (hi - lo + 1e-8)


def feature_fingerprint(features: FeatureConfig, sample_rate: int, n_samples: int) -> str:
    """Changes whenever anything that shapes the linear mel changes (and with the mel code's version)."""
    params = {"v": 1, "sr": sample_rate, "n": n_samples, **features.model_dump(mode="json")}
    for key in ("amin", "db_min", "db_max"):  # applied after the cache, so not part of its key
        params.pop(key)
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sedwatt" / "mel"


def content_hash(path: Path) -> str:
    """SHA1 of a file's bytes: the mel cache's key, so a copied or renamed clip still hits."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MelCache:
    """On-disk ``.npy`` cache of linear mels: ``<dir>/<feature fingerprint>/<content sha1>.npy``.

    Hashing a clip costs a full read of it, which on a cache hit is the whole cost of the item: so the
    content hash is remembered per (path, size, mtime) — in memory, and in a tiny file under
    ``<dir>/stat/`` that DataLoader workers (new processes each epoch), later runs and every feature
    config share (the hash is of the clip, not of its features). A clip is hashed again only when its
    size or mtime changes. (Caches from before kept the memo under ``<fingerprint>/stat/``; there it is
    simply not found, and each clip is hashed once more.)
    """

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = Path(directory) / fingerprint
        self.stat_dir = Path(directory) / "stat"  # not a fingerprint: those are 16 hex digits
        self.stat_dir.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._known: dict[tuple[str, int, int], str] = {}

    def content_key(self, path: Path) -> str:
        """The clip's content hash, computed only when its path, size or mtime are new."""
        resolved = str(Path(path).resolve())
        st = os.stat(resolved)
        stat_key = (resolved, st.st_size, st.st_mtime_ns)
        known = self._known.get(stat_key)
        if known is not None:
            return known
        memo = self.stat_dir / hashlib.sha1(repr(stat_key).encode()).hexdigest()
        try:
            known = memo.read_text().strip()
        except OSError:
            known = ""
        if len(known) != 40:  # missing or torn: hash the content and remember it
            known = content_hash(Path(resolved))
            write_atomic(memo, known)
        self._known[stat_key] = known
        return known

    def get(self, key: str) -> np.ndarray | None:
        file = self.directory / f"{key}.npy"
        try:
            return np.load(file)
        except (FileNotFoundError, ValueError, OSError, EOFError):
            return None  # missing or torn: recompute

    def put(self, key: str, mel: np.ndarray) -> None:
        # write-then-rename: concurrent workers and killed runs never leave a torn file behind
        with atomic_path(self.directory / f"{key}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, mel)
