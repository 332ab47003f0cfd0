"""`sedwatt make-data`: DESED layout and formats, exact labels, determinism, safety, distinct class sounds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sedwatt.cli import main
from sedwatt.config import DESED_CLASSES, SedwattConfig
from sedwatt.data.layout import ALL_SETS, DEVTEST, SYNTH_TRAIN, SYNTH_VAL, UNLABELLED, WEAK, DesedLayout
from sedwatt.data.scan import scan_dataset
from sedwatt.data.synth import MANIFEST_NAME, generate_dataset, summary_table
from sedwatt.data.synth import generate as generate_module
from sedwatt.data.synth.sounds import CLASS_SOUNDS, synthesise_event
from sedwatt.errors import SedwattError

SR = 16000
CLIP_SECONDS = 2.0
STRONG_SETS = (SYNTH_TRAIN, SYNTH_VAL, DEVTEST)
THREE_DECIMALS = re.compile(r"^\d+\.\d{3}$")


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    return generate_dataset(out, preset="tiny", seed=1, clip_seconds=CLIP_SECONDS, workers=1, progress=False)


def _durations(root: Path, spec) -> dict[str, float]:
    """Clip lengths: the durations TSV where the set has one, else the generated clip length."""
    layout = DesedLayout(root)
    if layout.durations(spec) is not None:
        table = _read(layout.durations(spec))
        return dict(zip(table.filename, table.duration.astype(float), strict=True))
    names = {p.name for p in layout.audio_dir(spec).glob("*.wav")}
    return dict.fromkeys(names, CLIP_SECONDS)


def test_layout_headers_and_counts(tiny: Path) -> None:
    layout = DesedLayout(tiny)
    manifest = json.loads((tiny / MANIFEST_NAME).read_text())
    for spec in ALL_SETS:
        audio = sorted(p.name for p in layout.audio_dir_for_writing(spec).glob("*"))
        assert len(audio) == manifest["counts"][spec.name], spec.name
        assert all(name.endswith(".wav") for name in audio)
    assert layout.labels(UNLABELLED) is None
    first_lines = {
        layout.labels(SYNTH_TRAIN): "filename\tonset\toffset\tevent_label",
        layout.labels(SYNTH_VAL): "filename\tonset\toffset\tevent_label",
        layout.labels(DEVTEST): "filename\tonset\toffset\tevent_label",
        layout.labels(WEAK): "filename\tevent_labels",
        layout.durations(SYNTH_VAL): "filename\tduration",
        layout.durations(DEVTEST): "filename\tduration",
    }
    for path, header in first_lines.items():
        assert path.read_text().splitlines()[0] == header, path
    # Every TSV row names an audio file that exists, and every audio file is listed.
    for spec in (*STRONG_SETS, WEAK):
        listed = set(_read(layout.labels(spec)).filename)
        assert listed == {p.name for p in layout.audio_dir(spec).glob("*.wav")}, spec.name


def test_strong_rows_exact_and_inside_clips(tiny: Path) -> None:
    layout = DesedLayout(tiny)
    empty_rows = 0
    for spec in STRONG_SETS:
        durations = _durations(tiny, spec)
        lines = layout.labels(spec).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split("\t")
            assert len(fields) == 4, line
            name, onset, offset, label = fields
            if not label:
                assert onset == offset == "", line  # a clip without events: one row, empty fields
                empty_rows += 1
                continue
            assert label in DESED_CLASSES, line
            assert THREE_DECIMALS.match(onset) and THREE_DECIMALS.match(offset), line
            assert 0.0 <= float(onset) < float(offset) <= durations[name] + 1e-9, line
    assert empty_rows > 0


def test_no_same_class_overlap_within_a_clip(tiny: Path) -> None:
    layout = DesedLayout(tiny)
    n_events = 0
    for spec in STRONG_SETS:
        table = _read(layout.labels(spec))
        table = table[table.event_label != ""].astype({"onset": float, "offset": float})
        n_events += len(table)
        for (_, _), group in table.groupby(["filename", "event_label"]):
            spans = group.sort_values("onset")[["onset", "offset"]].to_numpy()
            assert np.all(spans[1:, 0] >= spans[:-1, 1]), group
    assert n_events > 0


def test_weak_labels_comma_separated_known_and_never_empty(tiny: Path) -> None:
    table = _read(DesedLayout(tiny).labels(WEAK))
    assert len(table) > 0
    for labels in table.event_labels:
        assert labels and " " not in labels
        parts = labels.split(",")
        assert set(parts) <= set(DESED_CLASSES) and len(parts) == len(set(parts)), labels


def test_audio_is_16k_mono_pcm16_of_the_listed_length(tiny: Path) -> None:
    layout = DesedLayout(tiny)
    for spec in ALL_SETS:
        durations = _durations(tiny, spec)
        for name, seconds in durations.items():
            info = sf.info(layout.audio_dir(spec) / name)
            assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16"), name
            assert info.frames == round(seconds * SR), name
    wave, _ = sf.read(next(layout.audio_dir(SYNTH_TRAIN).glob("*.wav")), dtype="float32")
    assert 0.0 < np.abs(wave).max() < 1.0  # neither silent nor clipped


def test_the_dataset_loader_accepts_it(tiny: Path) -> None:
    scan = scan_dataset(tiny, SedwattConfig(), progress=False)
    assert scan.problems == []
    assert {name: len(s.clips) for name, s in scan.sets.items()} == dict(summary_table(tiny).loc["clips"])


def test_summary_counts_match_the_tsvs(tiny: Path) -> None:
    table = summary_table(tiny)
    synth = _read(DesedLayout(tiny).labels(SYNTH_TRAIN))
    labelled = synth[synth.event_label != ""]
    assert table.loc["events", "synth_train"] == len(labelled)
    assert table.loc["Dog", "synth_train"] == int((labelled.event_label == "Dog").sum())
    assert table.loc["clips without events", "weak"] == 0


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_and_independent_of_worker_count(tmp_path: Path) -> None:
    small = {"synth_train": 6, "weak": 4, "unlabelled": 3, "synth_val": 3, "devtest": 4}
    one = generate_dataset(tmp_path / "a", counts=small, seed=7, clip_seconds=1.0, workers=1, progress=False)
    two = generate_dataset(tmp_path / "b", counts=small, seed=7, clip_seconds=1.0, workers=2, progress=False)
    other = generate_dataset(tmp_path / "c", counts=small, seed=8, clip_seconds=1.0, workers=1, progress=False)
    first, second = _all_bytes(one), _all_bytes(two)
    assert len(first) == sum(small.values()) + 7  # audio + 4 label TSVs + 2 durations TSVs + the manifest
    assert first == second
    assert _all_bytes(other) != first  # the seed matters


def test_cli_twice_gives_identical_tsvs_and_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--preset", "tiny", "--seed", "1", "--clip-seconds", "0.5", "--workers", "1"]
    assert main(["make-data", str(tmp_path / "x"), *args]) == 0
    printed = capsys.readouterr().out
    assert main(["make-data", str(tmp_path / "y"), *args]) == 0
    for name in DESED_CLASSES:
        assert name in printed
    assert re.search(r"^clips\s+16\s+24\s+32\s+12\s+12\s*$", printed, re.MULTILINE), printed
    tsvs = sorted(p.relative_to(tmp_path / "x") for p in (tmp_path / "x").rglob("*.tsv"))
    assert len(tsvs) == 6
    for rel in tsvs:
        assert (tmp_path / "x" / rel).read_bytes() == (tmp_path / "y" / rel).read_bytes(), rel


def test_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    counts = {"synth_train": 2, "weak": 2, "unlabelled": 2, "synth_val": 2, "devtest": 2}
    out = generate_dataset(tmp_path / "d", counts=counts, seed=1, clip_seconds=0.5, workers=1, progress=False)
    before = _all_bytes(out)
    with pytest.raises(SedwattError, match="not empty"):
        generate_dataset(out, counts=counts, seed=2, clip_seconds=0.5, workers=1, progress=False)
    assert _all_bytes(out) == before
    assert main(["make-data", str(out), "--preset", "tiny", "--clip-seconds", "0.5"]) == 2
    assert "--force" in capsys.readouterr().err
    generate_dataset(out, counts=counts, seed=2, clip_seconds=0.5, workers=1, force=True, progress=False)
    assert _all_bytes(out) != before
    # --force only replaces a generated dataset, never an arbitrary folder.
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(SedwattError, match=MANIFEST_NAME):
        generate_dataset(precious, counts=counts, clip_seconds=0.5, workers=1, force=True, progress=False)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_an_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = generate_module.render_clip

    def failing(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(generate_module, "render_clip", failing)
    counts = {"synth_train": 2, "weak": 2, "unlabelled": 2, "synth_val": 2, "devtest": 2}
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "out", counts=counts, clip_seconds=0.5, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clip_seconds": 0.0}, "--clip-seconds"),
        ({"clip_seconds": 1.0005}, "--clip-seconds"),
        ({"seed": -1}, "--seed"),
        ({"workers": 0}, "--workers"),
        ({"preset": "huge", "counts": None}, "--preset"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"counts": {"synth_train": 1, "weak": 1, "unlabelled": 1, "synth_val": 1, "devtest": 1}, **kwargs}
    with pytest.raises(SedwattError, match=message):
        generate_dataset(tmp_path / "out", progress=False, **args)
    assert list(tmp_path.iterdir()) == []


def _signature(wave: np.ndarray, mel) -> np.ndarray:
    """Per coarse band: mean level, its spread over time and its frame-to-frame change (dB)."""
    import torch

    db = 20 * torch.log10(mel(torch.from_numpy(wave * 0.1)) + 1e-5).numpy()
    db = np.maximum(db - db.max(), -80.0)
    bands = db.reshape(16, 4, -1).mean(axis=1)
    return np.concatenate([bands.mean(1), bands.std(1), np.abs(np.diff(bands, axis=1)).mean(1)])


def test_every_class_has_its_own_signature() -> None:
    """Isolated 1 s events in a 64-band log-mel: classes form separate clusters (a broken or duplicated
    synthesiser brings two centroids within the within-class spread and fails this)."""
    from sedwatt.config import FeatureConfig
    from sedwatt.features import MelExtractor

    mel = MelExtractor(FeatureConfig(n_mels=64), SR)
    per_class = 8
    features, labels = [], []
    for ci, label in enumerate(DESED_CLASSES):
        for k in range(per_class):
            wave = synthesise_event(label, np.random.default_rng([3, ci, k]), SR, SR)
            assert wave.dtype == np.float32 and np.isfinite(wave).all()
            assert np.sqrt(np.mean(wave.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3), label
            features.append(_signature(wave, mel))
            labels.append(ci)
    x = np.array(features)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = np.array(labels)
    centroids = np.array([x[y == c].mean(0) for c in range(len(DESED_CLASSES))])
    spread = np.array([np.linalg.norm(x[y == c] - centroids[c], axis=1).mean() for c in range(len(DESED_CLASSES))])
    distance = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    ratio = distance / np.sqrt(spread[:, None] * spread[None])
    np.fill_diagonal(ratio, np.inf)
    worst = np.unravel_index(np.argmin(ratio), ratio.shape)
    assert ratio.min() > 0.9, f"{DESED_CLASSES[worst[0]]} and {DESED_CLASSES[worst[1]]} sound alike"
    # Leave-one-out nearest centroid recognises most events.
    hits = 0
    for i in range(len(x)):
        others = np.arange(len(x)) != i
        loo = np.array([x[others & (y == c)].mean(0) for c in range(len(DESED_CLASSES))])
        hits += int(np.argmin(np.linalg.norm(loo - x[i], axis=1)) == y[i])
    assert hits / len(x) >= 0.8


def test_event_durations_are_class_typical() -> None:
    short = [CLASS_SOUNDS[c].max_s for c in ("Dishes", "Dog", "Cat")]
    long = [CLASS_SOUNDS[c].min_s for c in ("Vacuum_cleaner", "Running_water", "Frying", "Blender")]
    assert max(short) < min(long)
    assert all(CLASS_SOUNDS[c].whole_clip_prob > 0 for c in ("Vacuum_cleaner", "Running_water", "Frying"))
