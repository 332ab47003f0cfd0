"""Scan a DESED-layout folder into clip lists, collecting every problem before any training starts.

``scan_dataset`` reads the TSVs, checks that each referenced audio file exists and is readable and
non-empty, that labels are known and events lie inside their clip, and that evaluation sets have
durations for every clip. It returns what it found plus all problems; ``load_clips`` raises them
as one ``DataProblems`` error, ``sedwatt check-data`` prints them all. Findings that do not stop
training (exactly repeated strong-label rows) are ``warnings``: listed, never raised.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from sedwatt.config import SedwattConfig
from sedwatt.data import tsv
from sedwatt.data.audio import audio_info
from sedwatt.data.layout import (
    ALL_SETS,
    DEVTEST,
    SYNTH_TRAIN,
    SYNTH_VAL,
    UNLABELLED,
    WEAK,
    DesedLayout,
    SetSpec,
)
from sedwatt.errors import DataProblems, SedwattError

logger = logging.getLogger(__name__)

TRAINING_SETS: tuple[SetSpec, ...] = (SYNTH_TRAIN, WEAK, UNLABELLED, SYNTH_VAL)


@dataclass(frozen=True)
class Clip:
    path: Path
    duration: float  # seconds on disk
    events: tuple[tuple[float, float, str], ...] | None = None  # strong sets
    labels: tuple[str, ...] | None = None  # weak set

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class ClipSet:
    spec: SetSpec
    clips: list[Clip] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)  # evaluated clips (strong sets)

    def ground_truth(self) -> pd.DataFrame:
        records = [(c.name, on, off, lab) for c in self.clips for on, off, lab in (c.events or ())]
        return pd.DataFrame.from_records(records, columns=list(tsv.STRONG_COLUMNS))

    def durations_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"filename": list(self.durations), "duration": list(self.durations.values())})


@dataclass
class DatasetScan:
    root: Path
    sets: dict[str, ClipSet]
    problems: list[str]
    fingerprint: str
    warnings: list[str] = field(default_factory=list)  # not problems: they never stop training


def _probe(paths: list[Path], desc: str, progress: bool) -> dict[Path, tuple[int, int] | str]:
    def one(p: Path) -> tuple[int, int] | str:
        if not p.is_file():
            return "audio file not found"
        try:
            sr, frames = audio_info(p)
        except SedwattError as exc:
            return str(exc).split(": ", 1)[-1]
        return "empty audio (0 samples)" if frames == 0 else (sr, frames)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(tqdm(pool.map(one, paths), total=len(paths), desc=desc, disable=None if progress else True, leave=False))
    return dict(zip(paths, results, strict=True))


def _scan_set(
    layout: DesedLayout,
    spec: SetSpec,
    config: SedwattConfig,
    problems: list[str],
    progress: bool,
    warnings: list[str] | None = None,
) -> ClipSet:
    """One set: its labels, its audio files probed, their durations checked; problems collected, not raised."""
    out = ClipSet(spec)
    audio_dir = layout.audio_dir(spec)
    if not audio_dir.is_dir():
        problems.append(f"{audio_dir}: audio folder of the {spec.name} set not found")
        return out
    label_path = layout.labels(spec)
    strong, weak, names = _read_labels(spec, label_path, audio_dir, tuple(config.data.classes), problems, warnings)
    durations_path = layout.durations(spec)
    listed = tsv.read_durations(durations_path, problems) if durations_path is not None else {}

    probes = _probe([audio_dir / n for n in names], f"checking {spec.name}", progress)
    first_line = strong.first_line if strong is not None else weak.rows if weak is not None else {}
    on_disk: dict[str, float] = {}
    for name in names:
        probe = probes[audio_dir / name]
        if isinstance(probe, str):
            where = f"{label_path}:{first_line[name]}: {name}: " if name in first_line else ""
            problems.append(f"{where}{audio_dir / name}: {probe}")
            continue
        sr, frames = probe
        on_disk[name] = frames / sr

    if durations_path is not None and listed:
        for name in names:
            if name not in listed:
                problems.append(f"{durations_path}: {name} (labelled in {label_path}) has no duration row")
        for name in listed:
            if name not in on_disk and name not in names and not (audio_dir / name).is_file():
                problems.append(f"{durations_path}: {name}: audio file not found ({audio_dir / name})")
    if strong is not None and label_path is not None:
        tsv.check_event_bounds(label_path, strong, {**on_disk, **listed}, problems)

    out.clips = _clips(audio_dir, on_disk, strong, weak, config.data.drop_no_event_clips)
    out.durations = {n: listed.get(n, on_disk.get(n, 0.0)) for n in (listed or on_disk)}
    return out


def _read_labels(
    spec: SetSpec, label_path: Path | None, audio_dir: Path, classes: tuple[str, ...], problems: list[str],
    warnings: list[str] | None,
) -> tuple[tsv.StrongLabels | None, tsv.WeakLabels | None, list[str]]:  # fmt: skip
    """(strong labels, weak labels, clip names) of a set: from its TSV, or the folder's WAVs when unlabelled."""
    if spec.kind == "strong":
        assert label_path is not None
        strong = tsv.read_strong(label_path, classes, problems, warnings)
        return strong, None, list(strong.events)
    if spec.kind == "weak":
        assert label_path is not None
        weak = tsv.read_weak(label_path, classes, problems)
        return None, weak, list(weak.labels)
    names = sorted(p.name for p in audio_dir.glob("*.wav"))
    if not names:
        problems.append(f"{audio_dir}: no .wav files in the {spec.name} set")
    return None, None, names


def _clips(
    audio_dir: Path, on_disk: dict[str, float], strong: tsv.StrongLabels | None, weak: tsv.WeakLabels | None,
    drop_no_event_clips: bool,
) -> list[Clip]:  # fmt: skip
    """The readable clips with their labels (strong events, weak labels, or none)."""
    clips = []
    for name, duration in on_disk.items():
        path = audio_dir / name
        if strong is not None:
            events = tuple(strong.events[name])
            if drop_no_event_clips and not events:
                continue  # recipe quirk: no predictions for them, yet they stay in `durations`
            clips.append(Clip(path, duration, events=events))
        elif weak is not None:
            clips.append(Clip(path, duration, labels=tuple(weak.labels[name])))
        else:
            clips.append(Clip(path, duration))
    return clips


def _fingerprint(layout: DesedLayout, specs: tuple[SetSpec, ...], sets: dict[str, ClipSet]) -> str:
    digest = hashlib.sha1()
    for spec in specs:
        for path in (layout.labels(spec), layout.durations(spec)):
            if path is not None and path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
        if spec.kind == "unlabelled" and spec.name in sets:
            digest.update("\n".join(c.name for c in sets[spec.name].clips).encode())
    return digest.hexdigest()[:16]


def scan_dataset(
    root: Path | str, config: SedwattConfig, sets: tuple[SetSpec, ...] = ALL_SETS, progress: bool = True
) -> DatasetScan:
    root = Path(root)
    problems: list[str] = []
    warnings: list[str] = []
    if not root.is_dir():
        return DatasetScan(root, {}, [f"{root}: dataset folder not found"], "")
    layout = DesedLayout(root)
    found = {spec.name: _scan_set(layout, spec, config, problems, progress, warnings) for spec in sets}
    return DatasetScan(root, found, problems, _fingerprint(layout, sets, found), warnings)


def load_clips(root: Path | str, config: SedwattConfig, sets: tuple[SetSpec, ...] = TRAINING_SETS) -> DatasetScan:
    """Scan and refuse to go on with any problem: bad data is reported before training starts."""
    scan = scan_dataset(root, config, sets, progress=config.train.progress)
    if scan.problems:
        raise DataProblems(scan.problems)
    if scan.warnings:
        logger.warning(
            "%s: %d warning(s), e.g. %s (run `sedwatt check-data` to list them)",
            scan.root, len(scan.warnings), scan.warnings[0],
        )
    return scan


__all__ = ["Clip", "ClipSet", "DatasetScan", "TRAINING_SETS", "load_clips", "scan_dataset", "DEVTEST", "WEAK"]
