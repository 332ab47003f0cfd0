"""Where each DESED set lives under a dataset root, exactly as the DCASE 2022 recipe expects it.

The recipe reads ``*_16k`` folders it resamples from the downloaded 44.1 kHz ones. sedwatt resamples
on load, so an audio folder resolves to ``<name>_16k`` when present and to ``<name>`` otherwise:
a fresh DESED download and a recipe-prepared tree both work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SetSpec:
    """One set of the layout: its audio folder, and its label/durations TSVs (None when it has none)."""

    name: str
    audio: str
    labels: str | None
    kind: str  # "strong" | "weak" | "unlabelled"
    durations: str | None = None


SYNTH_TRAIN = SetSpec(
    "synth_train",
    "audio/train/synthetic21_train/soundscapes",
    "metadata/train/synthetic21_train/soundscapes.tsv",
    "strong",
)
WEAK = SetSpec("weak", "audio/train/weak", "metadata/train/weak.tsv", "weak")
UNLABELLED = SetSpec("unlabelled", "audio/train/unlabel_in_domain", None, "unlabelled")
SYNTH_VAL = SetSpec(
    "synth_val",
    "audio/validation/synthetic21_validation/soundscapes",
    "metadata/validation/synthetic21_validation/soundscapes.tsv",
    "strong",
    "metadata/validation/synthetic21_validation/durations.tsv",
)
DEVTEST = SetSpec(
    "devtest",
    "audio/validation/validation",
    "metadata/validation/validation.tsv",
    "strong",
    "metadata/validation/validation_durations.tsv",
)

ALL_SETS: tuple[SetSpec, ...] = (SYNTH_TRAIN, WEAK, UNLABELLED, SYNTH_VAL, DEVTEST)
SETS_BY_NAME = {s.name: s for s in ALL_SETS}


@dataclass(frozen=True)
class DesedLayout:
    """A dataset root with the recipe's relative paths."""

    root: Path

    def audio_dir(self, spec: SetSpec) -> Path:
        resampled = self.root / f"{spec.audio}_16k"
        return resampled if resampled.is_dir() else self.root / spec.audio

    def audio_dir_for_writing(self, spec: SetSpec) -> Path:
        """Generated data is written at 16 kHz, into the recipe's ``_16k`` folder."""
        return self.root / f"{spec.audio}_16k"

    def labels(self, spec: SetSpec) -> Path | None:
        return self.root / spec.labels if spec.labels else None

    def durations(self, spec: SetSpec) -> Path | None:
        return self.root / spec.durations if spec.durations else None
