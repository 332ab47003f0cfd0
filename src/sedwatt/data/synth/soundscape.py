"""Scaper-like mixing: a varying background plus 0–3 events at exact, millisecond-grid times and drawn SNRs.

Two domains stand for DESED's two kinds of audio. ``SYNTHETIC`` (synth train/validation) is clean
Scaper-style mixing: coloured noise, 1–3 events 6–30 dB above it, balanced classes, 4 % empty clips. ``RECORDED`` (weak,
unlabelled, dev-test: real YouTube clips in DESED) adds room reverb, mains hum and rumble, lower
SNRs and DESED's dev-test class imbalance, so there is a domain gap as with the real data.
Times live on a millisecond grid (16 samples at 16 kHz), so the 3-decimal labels are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sedwatt.config import DESED_CLASSES
from sedwatt.data.synth import dsp
from sedwatt.data.synth.dsp import FloatArray, Rng
from sedwatt.data.synth.sounds import CLASS_SOUNDS, log_uniform, synthesise_event

# Events of one class in one clip keep at least this far apart: they never overlap, and stay two
# events after the recipe's 64 ms frames and 7-frame median filter.
SAME_CLASS_GAP_MS = 500
PLACEMENT_TRIES = 20

# DESED dev-test label counts (docs/recipe.md §6); the recorded domain draws classes ∝ their square root.
DEVTEST_LABEL_COUNTS = {
    "Speech": 1752, "Dog": 570, "Dishes": 559, "Alarm_bell_ringing": 420, "Cat": 341, "Running_water": 237,
    "Blender": 94, "Frying": 94, "Vacuum_cleaner": 92, "Electric_shaver_toothbrush": 65,
}


@dataclass(frozen=True)
class Domain:
    """What a set's clips are like: background, SNR, room, class balance, how many events."""

    name: str
    snr_db: tuple[float, float]
    background_slope_db_oct: tuple[float, float]
    empty_fraction: float  # share of clips without any event (exact per set, as DESED's 15 of 1168)
    event_count_probs: tuple[float, float, float]  # P(1), P(2), P(3) events in a clip that has events
    class_weights: tuple[float, ...]  # aligned with DESED_CLASSES
    reverb_prob: float = 0.0
    rt60_s: tuple[float, float] = (0.2, 0.6)
    hum_prob: float = 0.0
    short_clip_prob: float = 0.0  # some real clips are shorter than 10 s (dev-test: min 2.4 s)


SYNTHETIC = Domain(
    name="synthetic",
    snr_db=(6.0, 30.0),
    background_slope_db_oct=(-4.0, 0.0),
    empty_fraction=0.04,
    event_count_probs=(0.35, 0.38, 0.27),
    class_weights=tuple(1.0 for _ in DESED_CLASSES),
)
RECORDED = Domain(
    name="recorded",
    snr_db=(3.0, 25.0),
    background_slope_db_oct=(-7.0, -2.0),
    empty_fraction=0.015,
    event_count_probs=(0.38, 0.37, 0.25),
    class_weights=tuple(float(np.sqrt(DEVTEST_LABEL_COUNTS[c])) for c in DESED_CLASSES),
    reverb_prob=0.75,
    rt60_s=(0.15, 0.7),
    hum_prob=0.35,
)


@dataclass(frozen=True)
class Event:
    onset_ms: int
    offset_ms: int
    label: str

    @property
    def onset(self) -> float:
        return self.onset_ms / 1000.0

    @property
    def offset(self) -> float:
        return self.offset_ms / 1000.0


def background(rng: Rng, n: int, sr: int, domain: Domain) -> FloatArray:
    """Room tone: coloured noise with a random smooth spectral colouring, unit RMS, per clip different."""
    slope = rng.uniform(*domain.background_slope_db_oct)
    bumps = [(log_uniform(rng, 150.0, 6000.0), rng.uniform(0.4, 1.5), rng.uniform(-6.0, 6.0)) for _ in range(3)]

    def colour(freqs: FloatArray) -> FloatArray:
        shape_db = sum(gain * dsp.band_shape(freqs, centre, width) for centre, width, gain in bumps)
        return dsp.tilt(freqs, slope) * dsp.db_to_gain(shape_db) * (freqs > 20)

    noise = dsp.shaped_noise(rng, n, sr, colour)
    noise *= np.exp(0.15 * dsp.smooth_random(rng, n, sr, 0.5))  # room tone breathes slowly
    if rng.uniform() < domain.hum_prob:
        mains = 50.0 if rng.uniform() < 0.5 else 60.0
        hum = dsp.harmonic_tone(np.full(n, mains, np.float32), sr, lambda f: (f < 1000).astype(float), rng, rolloff=1.2)
        noise += dsp.db_to_gain(rng.uniform(-15.0, -3.0)) * hum / max(dsp.rms(hum), 1e-9)
    return noise / max(dsp.rms(noise), 1e-9)


def draw_events(rng: Rng, clip_ms: int, domain: Domain) -> list[Event]:
    """1–3 events: class-typical durations, same-class events apart, sorted by onset.

    The first event always fits; a later one that finds no room next to its own class is dropped.
    """
    probs = np.array(domain.event_count_probs, dtype=np.float64)
    n_events = 1 + int(rng.choice(len(probs), p=probs / probs.sum()))
    weights = np.array(domain.class_weights, dtype=np.float64)
    events: list[Event] = []
    for _ in range(n_events):
        label = DESED_CLASSES[int(rng.choice(len(weights), p=weights / weights.sum()))]
        sound = CLASS_SOUNDS[label]
        for _try in range(PLACEMENT_TRIES):
            if rng.uniform() < sound.whole_clip_prob:
                duration_ms = clip_ms
            else:
                duration_ms = min(clip_ms, max(50, int(round(1000 * log_uniform(rng, sound.min_s, sound.max_s)))))
            onset_ms = int(rng.integers(0, clip_ms - duration_ms + 1))
            candidate = Event(onset_ms, onset_ms + duration_ms, label)
            if all(
                e.label != label
                or candidate.onset_ms >= e.offset_ms + SAME_CLASS_GAP_MS
                or e.onset_ms >= candidate.offset_ms + SAME_CLASS_GAP_MS
                for e in events
            ):
                events.append(candidate)
                break
    return sorted(events, key=lambda e: (e.onset_ms, e.offset_ms, e.label))


def mix_clip(rng: Rng, n: int, sr: int, domain: Domain, events: list[Event]) -> FloatArray:
    """Background plus each event at its SNR (event RMS over its span vs background RMS), peak-normalised."""
    mix = background(rng, n, sr, domain)
    samples_per_ms = sr / 1000.0
    for event in events:
        start = int(round(event.onset_ms * samples_per_ms))
        stop = min(n, int(round(event.offset_ms * samples_per_ms)))
        wave = synthesise_event(event.label, rng, stop - start, sr)
        wave *= dsp.fades(wave.size, sr, 0.003, 0.003)
        wave *= dsp.db_to_gain(rng.uniform(*domain.snr_db))  # background has unit RMS
        if rng.uniform() < domain.reverb_prob:
            ir = dsp.room_ir(rng, sr, rng.uniform(*domain.rt60_s), rng.uniform(0.0, 10.0))
            tail = min(n - start, wave.size + ir.size)  # reverb rings past the offset, as in a room
            padded = np.zeros(tail, np.float32)
            padded[: wave.size] = wave
            wave = dsp.convolve(padded, ir)
        mix[start : start + wave.size] += wave
    peak = float(np.max(np.abs(mix))) or 1.0
    return (mix * (dsp.db_to_gain(rng.uniform(-12.0, -1.0)) / peak)).astype(np.float32)


def make_clip(rng: Rng, clip_ms: int, sr: int, domain: Domain, empty: bool = False) -> tuple[FloatArray, list[Event]]:
    """One soundscape of ``clip_ms`` milliseconds and its exact event list (background only if ``empty``)."""
    events = [] if empty else draw_events(rng, clip_ms, domain)
    n = int(round(clip_ms * sr / 1000.0))
    return mix_clip(rng, n, sr, domain, events), events
