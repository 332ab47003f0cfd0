"""A hand-made miniature in the real DESED layout: 44.1 kHz stereo clips, DESED-style TSV rows.

It stands for a fresh DESED download (no ``_16k`` folders), so loader tests cover resampling,
down-mixing, an empty-label row and comma-separated weak labels exactly as the real files have them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100

SYNTH = {
    "0.wav": [("0.213", "2.540", "Dog"), ("1.000", "9.971", "Vacuum_cleaner")],
    "1.wav": [("", "", "")],  # a clip without events
    "2.wav": [("3.125", "4.500", "Speech"), ("5.000", "6.250", "Speech")],
    "3.wav": [("0.000", "10.000", "Running_water")],
}
WEAK = {
    "Y-BJNMHMZDcU_50.000_60.000.wav": "Alarm_bell_ringing,Dog",
    "Y00pbt6aJV8Y_350.000_360.000.wav": "Vacuum_cleaner",
    "Y0a9wDhBFXwo_30.000_40.000.wav": "Speech,Dishes,Cat",
    "Y1TnQ8aJVL7g_0.000_10.000.wav": "Blender",
}
UNLABELLED = ["Yabc_0.000_10.000.wav", "Ydef_10.000_20.000.wav", "Yghi_0.000_10.000.wav", "Yjkl_5.000_15.000.wav"]
DEVTEST = {
    "Y00pbt6aJV8Y_350.000_360.000.wav": [("0.000", "9.971", "Vacuum_cleaner")],
    "Y0Rq2MXRdG4E_30.000_40.000.wav": [("", "", "")],
    "Y0a9wDhBFXwo_30.000_40.000.wav": [("1.000", "2.000", "Frying"), ("1.500", "3.000", "Speech")],
}


def _wav(path: Path, seconds: float, seed: int, sr: int = SR, channels: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = (0.1 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)
    sf.write(path, data, sr, subtype="PCM_16")


def _strong_tsv(path: Path, rows: dict[str, list[tuple[str, str, str]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["filename\tonset\toffset\tevent_label"]
    lines += [f"{name}\t{on}\t{off}\t{lab}" for name, events in rows.items() for on, off, lab in events]
    path.write_text("\n".join(lines) + "\n")


def make_mini_desed(root: Path, seconds: float = 10.0) -> Path:
    a = root / "audio"
    m = root / "metadata"
    for i, name in enumerate(SYNTH):
        _wav(a / "train/synthetic21_train/soundscapes" / name, seconds, i)
        _wav(a / "validation/synthetic21_validation/soundscapes" / name, seconds, 100 + i)
    _strong_tsv(m / "train/synthetic21_train/soundscapes.tsv", SYNTH)
    _strong_tsv(m / "validation/synthetic21_validation/soundscapes.tsv", SYNTH)
    (m / "validation/synthetic21_validation/durations.tsv").write_text(
        "filename\tduration\n" + "".join(f"{n}\t{seconds:.1f}\n" for n in SYNTH)
    )
    for i, name in enumerate(WEAK):
        _wav(a / "train/weak" / name, seconds, 200 + i)
    (m / "train/weak.tsv").write_text("filename\tevent_labels\n" + "".join(f"{n}\t{lab}\n" for n, lab in WEAK.items()))
    for i, name in enumerate(UNLABELLED):
        _wav(a / "train/unlabel_in_domain" / name, seconds, 300 + i)
    for i, name in enumerate(DEVTEST):
        _wav(a / "validation/validation" / name, seconds, 400 + i)
    _strong_tsv(m / "validation/validation.tsv", DEVTEST)
    (m / "validation/validation_durations.tsv").write_text(
        "filename\tduration\n" + "".join(f"{n}\t{seconds:.1f}\n" for n in DEVTEST)
    )
    return root
