"""One procedural synthesiser per DESED class, each with its own spectro-temporal signature.

Real DESED cannot be downloaded everywhere, so sedwatt makes stand-ins that a small CRNN can tell
apart in a log-mel (different spectral shapes, pitch ranges and time patterns) yet that vary from
event to event (pitch, duration, level, envelope, timbre) so the task is not trivial.
A synthesiser fills exactly ``n`` samples with sound from the first to the last one, so the
annotated onset/offset are where the sound really starts and stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sedwatt.config import DESED_CLASSES
from sedwatt.data.synth import dsp
from sedwatt.data.synth.dsp import FloatArray, Rng

Synthesiser = Callable[[Rng, int, int], FloatArray]


@dataclass(frozen=True)
class ClassSound:
    """How one class sounds and how long its events last (class-typical, as in DESED)."""

    label: str
    min_s: float
    max_s: float
    whole_clip_prob: float  # long stationary sounds sometimes span the whole clip
    synthesise: Synthesiser


def log_uniform(rng: Rng, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _split_into_units(rng: Rng, n: int, sr: int, unit_s: tuple[float, float], gap_s: tuple[float, float],
                      max_units: int) -> list[tuple[int, int]]:
    """Cut ``n`` samples into sound units separated by gaps; the first starts at 0 and the last ends at n."""
    units: list[float] = []
    gaps: list[float] = []
    total = 0.0
    while total < n / sr and len(units) < max_units:
        if units:
            gaps.append(rng.uniform(*gap_s))
        units.append(rng.uniform(*unit_s))
        total = sum(units) + sum(gaps)
    scale = n / (total * sr)
    spans = []
    cursor = 0.0
    for i, unit in enumerate(units):
        start = int(round(cursor * scale * sr))
        cursor += unit
        stop = n if i == len(units) - 1 else int(round(cursor * scale * sr))
        spans.append((start, max(stop, start + 1)))
        if i < len(gaps):
            cursor += gaps[i]
    return spans


def alarm(rng: Rng, n: int, sr: int) -> FloatArray:
    """Tonal beeps (steady or two-tone) or a trilling bell: high, narrow spectral lines switched on and off."""
    time = np.arange(n, dtype=np.float32) / sr
    f0 = log_uniform(rng, 600.0, 3200.0)
    if rng.uniform() < 0.3:  # bell: inharmonic partials with a fast tremolo
        ratios = np.array([1.0, 2.0, 2.76, 5.40])
        ratios = ratios[ratios * f0 < 0.45 * sr]
        amps = np.array([1.0, 0.5, 0.35, 0.2])[: ratios.size] * rng.uniform(0.5, 1.0, ratios.size)
        phases = rng.uniform(0, 2 * np.pi, ratios.size)
        tone = np.zeros(n, np.float32)
        for ratio, amp, phase in zip(ratios, amps, phases, strict=True):
            tone += amp * np.sin(2 * np.pi * f0 * ratio * time + phase).astype(np.float32)
        trill = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(12.0, 25.0) * time)
        return tone * trill.astype(np.float32) ** 2
    beep_s = rng.uniform(0.06, 0.35)
    pause_s = rng.uniform(0.05, 0.3)
    duration = n / sr
    n_beeps = max(1, int(round((duration + pause_s) / (beep_s + pause_s))))
    if n_beeps == 1:
        beep_s, period = duration, duration
    else:
        period = (duration - beep_s) / (n_beeps - 1)  # the last beep ends exactly at the offset
        beep_s = min(beep_s, 0.7 * period)
    index = np.minimum(np.floor(time / period), n_beeps - 1)
    position = time - index * period
    ramp = 0.005
    gate = np.clip(position / ramp, 0, 1) * np.clip((beep_s - position) / ramp, 0, 1)
    if n_beeps == 1:
        gate = np.ones(n, np.float32)
    two_tone = rng.uniform() < 0.35
    pitch = f0 * np.where((index % 2 == 1) & two_tone, rng.uniform(1.15, 1.5), 1.0)
    amps = np.array([1.0, rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.3)])
    amps = amps[: dsp.n_harmonics(float(pitch.max()), sr, cap=3)]
    tone = dsp.read_table(dsp.wavetable(amps, rng), dsp.phase_of(pitch, sr))
    return tone * gate.astype(np.float32)


def blender(rng: Rng, n: int, sr: int) -> FloatArray:
    """A loaded motor: low harmonics whose pitch sags and recovers, plus fluctuating chopping noise."""
    f0 = rng.uniform(110.0, 380.0)
    spin_up = dsp.envelope(n, [(0.0, rng.uniform(0.6, 0.9)), (min(1.0, 0.4 * sr / n), 1.0), (1.0, 1.0)])
    track = f0 * spin_up * (1.0 + 0.05 * dsp.smooth_random(rng, n, sr, rng.uniform(1.5, 5.0)))
    body = rng.uniform(500.0, 2000.0)
    motor = dsp.harmonic_tone(track, sr, lambda f: 0.3 + dsp.band_shape(f, body, 1.2), rng, rolloff=0.6)
    chop_centre = rng.uniform(1500.0, 4000.0)
    chop = dsp.shaped_noise(rng, n, sr, lambda f: dsp.band_shape(f, chop_centre, rng.uniform(1.0, 1.6)))
    chop *= np.clip(1.0 + 0.6 * dsp.smooth_random(rng, n, sr, rng.uniform(3.0, 10.0)), 0.15, None)
    noise_gain = dsp.db_to_gain(rng.uniform(-9.0, -1.0))  # the motor's harmonic lines stay visible
    return (motor / max(dsp.rms(motor), 1e-9) + noise_gain * chop) * dsp.fades(n, sr, 0.15, 0.1)


def cat(rng: Rng, n: int, sr: int) -> FloatArray:
    """A meow: a harmonic glide up then down, its timbre opening and closing (two crossfaded spectra)."""
    start = rng.uniform(350.0, 650.0)
    peak_at = rng.uniform(0.25, 0.6)
    contour = dsp.envelope(n, [(0.0, start), (peak_at, start * rng.uniform(1.3, 1.9)),
                               (1.0, start * rng.uniform(0.7, 1.1))])
    time = np.arange(n, dtype=np.float32) / sr
    vibrato = 1.0 + rng.uniform(0.0, 0.02) * np.sin(2 * np.pi * rng.uniform(4.0, 8.0) * time)
    track = contour * vibrato
    phase = dsp.phase_of(track, sr)
    k_max = dsp.n_harmonics(float(track.max()), sr, cap=14)
    k = np.arange(1, k_max + 1)
    mean_f0 = float(track.mean())
    closed = dsp.wavetable(k**-1.5 * (0.2 + dsp.band_shape(k * mean_f0, 2 * mean_f0, 0.6)), rng)
    open_ = dsp.wavetable(k**-0.8 * (0.2 + dsp.band_shape(k * mean_f0, rng.uniform(1500.0, 3000.0), 0.7)), rng)
    opening = np.abs(np.sin(np.pi * np.linspace(0.0, 1.0, n, dtype=np.float32))) ** 0.7
    voice = dsp.read_table(closed, phase) * (1 - opening) + dsp.read_table(open_, phase) * opening
    return voice * dsp.fades(n, sr, rng.uniform(0.03, 0.12), rng.uniform(0.08, 0.3))


def dishes(rng: Rng, n: int, sr: int) -> FloatArray:
    """Clinks: a sharp click followed by a few high inharmonic partials ringing down fast."""
    clink_len = min(n, int(rng.uniform(0.08, 0.25) * sr))
    n_clinks = max(1, int(round(rng.uniform(3.0, 9.0) * n / sr)))  # a clatter: several clinks a second
    starts = np.sort(rng.integers(0, max(1, n - clink_len), n_clinks))
    starts[0] = 0
    starts[-1] = n - clink_len if n_clinks > 1 else 0
    n_partials = int(rng.integers(3, 7))
    freqs = rng.uniform(1800.0, 7400.0, (n_clinks, n_partials))
    taus = rng.uniform(0.015, 0.12, (n_clinks, n_partials))
    amps = rng.lognormal(0.0, 0.5, (n_clinks, n_partials)) * rng.uniform(0.4, 1.0, (n_clinks, 1))
    grains = dsp.decaying_partials(clink_len, sr, freqs, taus, amps, rng)
    click = min(clink_len, int(0.002 * sr))
    grains[:, :click] += rng.standard_normal((n_clinks, click)).astype(np.float32) * amps.sum(1, keepdims=True) * 0.3
    out = dsp.add_grains(np.zeros(n, np.float32), starts, grains)
    return out * dsp.fades(n, sr, 0.0, 0.01)


def dog(rng: Rng, n: int, sr: int) -> FloatArray:
    """Barks: short, harsh harmonic bursts whose pitch falls, with a noisy breath in them."""
    out = np.zeros(n, np.float32)
    pitch = rng.uniform(280.0, 700.0)
    mouth = rng.uniform(700.0, 1600.0)
    for start, stop in _split_into_units(rng, n, sr, (0.1, 0.25), (0.08, 0.35), max_units=4):
        length = stop - start
        track = dsp.envelope(length, [(0.0, pitch * rng.uniform(0.9, 1.1)), (0.3, pitch * rng.uniform(1.0, 1.2)),
                                      (1.0, pitch * rng.uniform(0.55, 0.8))])
        voiced = dsp.harmonic_tone(track, sr, lambda f, m=mouth: 0.15 + dsp.band_shape(f, m, 0.8), rng, rolloff=0.5)
        breath = dsp.shaped_noise(rng, length, sr, lambda f, m=mouth: dsp.band_shape(f, 1.5 * m, 1.0))
        burst = voiced / max(dsp.rms(voiced), 1e-9) + dsp.db_to_gain(rng.uniform(-12.0, -4.0)) * breath
        decay = np.exp(-np.linspace(0.0, rng.uniform(1.5, 4.0), length, dtype=np.float32))
        out[start:stop] = burst * decay * dsp.fades(length, sr, 0.006, 0.02) * rng.uniform(0.6, 1.0)
    return out


def electric_shaver(rng: Rng, n: int, sr: int) -> FloatArray:
    """A steady buzz: a zero-phase pulse train rich in (mostly odd) harmonics up to 8 kHz, with a body resonance."""
    f0 = rng.uniform(90.0, 260.0)
    track = f0 * (1.0 + 0.004 * dsp.smooth_random(rng, n, sr, 2.0))
    k = np.arange(1, dsp.n_harmonics(float(track.max()), sr) + 1)
    resonance = rng.uniform(1500.0, 4500.0)
    amps = k**-0.7 * np.where(k % 2 == 0, rng.uniform(0.15, 0.7), 1.0) * (1 + rng.uniform(2, 6) * dsp.band_shape(k * f0, resonance, 0.5))
    buzz = dsp.read_table(dsp.wavetable(amps), dsp.phase_of(track, sr))
    pressure = np.clip(1.0 + 0.25 * dsp.smooth_random(rng, n, sr, rng.uniform(1.0, 4.0)), 0.4, None)
    return buzz * pressure * dsp.fades(n, sr, rng.uniform(0.02, 0.1), rng.uniform(0.02, 0.1))


def frying(rng: Rng, n: int, sr: int) -> FloatArray:
    """Crackle over hiss: dense random high-passed clicks with heavy-tailed sizes on top of high band noise."""
    hiss_centre = rng.uniform(3000.0, 6000.0)
    hiss = dsp.shaped_noise(rng, n, sr, lambda f: dsp.band_shape(f, hiss_centre, 0.9))
    rate = rng.uniform(40.0, 300.0)
    n_clicks = int(rng.poisson(rate * n / sr)) + 1
    starts = np.sort(rng.integers(0, n, n_clicks))
    starts[0] = 0
    length = 64
    t = np.arange(length, dtype=np.float32) / sr
    taus = rng.uniform(0.0005, 0.003, (n_clicks, 1))
    grains = rng.standard_normal((n_clicks, length)).astype(np.float32) * np.exp(-t / taus).astype(np.float32)
    grains = np.diff(grains, axis=1, prepend=0.0)  # high-pass: clicks are bright
    grains *= rng.lognormal(0.0, 0.9, (n_clicks, 1)).astype(np.float32)
    crackle = dsp.add_grains(np.zeros(n, np.float32), starts, grains)
    crackle /= max(dsp.rms(crackle), 1e-9)
    return (crackle + dsp.db_to_gain(rng.uniform(-12.0, -3.0)) * hiss) * dsp.fades(n, sr, 0.05, 0.05)


def running_water(rng: Rng, n: int, sr: int) -> FloatArray:
    """Burbling band noise (fast random loudness modulation) with rising bubble chirps."""
    centre = rng.uniform(400.0, 1800.0)
    width = rng.uniform(0.6, 1.2)
    stream = dsp.shaped_noise(rng, n, sr, lambda f: dsp.band_shape(f, centre, width))
    stream *= np.exp(0.6 * dsp.smooth_random(rng, n, sr, rng.uniform(10.0, 30.0)))
    rate = rng.uniform(40.0, 150.0)
    n_bubbles = int(rng.poisson(rate * n / sr)) + 1
    starts = rng.integers(0, n, n_bubbles)
    length = int(0.015 * sr)
    t = np.arange(length, dtype=np.float32) / sr
    f_start = rng.uniform(0.6 * centre, 2.0 * centre, (n_bubbles, 1))
    sweep = rng.uniform(0.3, 1.0, (n_bubbles, 1)) * f_start / t[-1]  # Hz per second: rises by 30–100 %
    chirps = np.sin(2 * np.pi * (f_start * t + 0.5 * sweep * t**2)) * np.hanning(length)
    chirps *= rng.lognormal(0.0, 0.6, (n_bubbles, 1))
    bubbles = dsp.add_grains(np.zeros(n, np.float32), starts, chirps.astype(np.float32))
    bubbles /= max(dsp.rms(bubbles), 1e-9)
    mix = stream + dsp.db_to_gain(rng.uniform(-6.0, 3.0)) * bubbles
    return mix * dsp.fades(n, sr, rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3))


# Vowel formants (F1, F2, F3 in Hz) of an adult voice.
VOWELS = np.array([(730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410),
                   (300, 870, 2240), (660, 1720, 2410), (490, 1350, 1690)], dtype=np.float64)


def speech(rng: Rng, n: int, sr: int) -> FloatArray:
    """Syllables at ~4 Hz: a low glottal buzz shaped by changing vowel formants, some with a fricative onset."""
    out = np.zeros(n, np.float32)
    base = rng.uniform(85.0, 240.0)
    tract = rng.uniform(0.9, 1.15) * (1.0 + (base - 85.0) / 800.0)  # higher voices: shorter tracts
    spans = _split_into_units(rng, n, sr, (0.12, 0.32), (0.0, 0.12), max_units=40)
    for i, (start, stop) in enumerate(spans):
        length = stop - start
        declination = 1.0 - 0.15 * i / max(1, len(spans) - 1)
        f0 = base * declination * rng.uniform(0.92, 1.1)
        track = dsp.envelope(length, [(0.0, f0), (1.0, f0 * rng.uniform(0.85, 1.15))])
        centres = list(VOWELS[rng.integers(len(VOWELS))] * tract * rng.uniform(0.95, 1.05, 3))
        envelope_of = lambda f, c=centres: dsp.formants(f, c, [80.0, 110.0, 160.0], [1.0, 0.6, 0.3])  # noqa: E731
        voiced = dsp.harmonic_tone(track, sr, envelope_of, rng, rolloff=1.0)
        syllable = voiced / max(dsp.rms(voiced), 1e-9) * np.abs(np.sin(np.linspace(0, np.pi, length, dtype=np.float32))) ** 0.6
        if rng.uniform() < 0.5:  # a consonant: a short burst of fricative noise at the syllable's start
            burst = min(length, int(rng.uniform(0.03, 0.08) * sr))
            centre = rng.uniform(2500.0, 6500.0)
            noise = dsp.shaped_noise(rng, burst, sr, lambda f, c=centre: dsp.band_shape(f, c, 0.6))
            syllable[:burst] += noise * np.hanning(burst).astype(np.float32) * rng.uniform(0.3, 0.8)
        out[start:stop] = syllable * rng.uniform(0.6, 1.0)
    return out


def vacuum_cleaner(rng: Rng, n: int, sr: int) -> FloatArray:
    """Loud broadband airflow noise with a high tonal whine and a motor hum, spinning up at the start."""
    cutoff = rng.uniform(2500.0, 6000.0)
    slope = rng.uniform(-4.0, -1.0)
    airflow_peak = rng.uniform(800.0, 2500.0)
    airflow = dsp.shaped_noise(rng, n, sr, lambda f: dsp.tilt(f, slope) / (1 + (f / cutoff) ** 4)
                               * (1 + 1.5 * dsp.band_shape(f, airflow_peak, 0.7)) * (f > 60))
    spin_up = dsp.envelope(n, [(0.0, rng.uniform(0.5, 0.9)), (min(1.0, 0.6 * sr / n), 1.0), (1.0, 1.0)])
    whine_f0 = rng.uniform(700.0, 2600.0) * spin_up * (1.0 + 0.01 * dsp.smooth_random(rng, n, sr, 1.0))
    whine = dsp.read_table(dsp.wavetable(np.array([1.0, rng.uniform(0, 0.5)])[: dsp.n_harmonics(
        float(whine_f0.max()), sr, cap=2)], rng), dsp.phase_of(whine_f0, sr))
    hum = dsp.harmonic_tone(rng.uniform(80.0, 200.0) * spin_up, sr, lambda f: dsp.band_shape(f, 300.0, 1.0), rng)
    mix = (airflow + dsp.db_to_gain(rng.uniform(-14.0, -5.0)) * whine / max(dsp.rms(whine), 1e-9)
           + dsp.db_to_gain(rng.uniform(-20.0, -10.0)) * hum / max(dsp.rms(hum), 1e-9))
    return mix * dsp.fades(n, sr, rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.5))


CLASS_SOUNDS: dict[str, ClassSound] = {
    sound.label: sound
    for sound in (
        ClassSound("Alarm_bell_ringing", 0.6, 5.0, 0.03, alarm),
        ClassSound("Blender", 2.0, 9.0, 0.2, blender),
        ClassSound("Cat", 0.4, 1.6, 0.0, cat),
        ClassSound("Dishes", 0.3, 1.2, 0.0, dishes),
        ClassSound("Dog", 0.2, 1.2, 0.0, dog),
        ClassSound("Electric_shaver_toothbrush", 1.5, 8.0, 0.15, electric_shaver),
        ClassSound("Frying", 3.0, 10.0, 0.4, frying),
        ClassSound("Running_water", 2.0, 10.0, 0.3, running_water),
        ClassSound("Speech", 0.4, 3.5, 0.0, speech),
        ClassSound("Vacuum_cleaner", 3.0, 10.0, 0.4, vacuum_cleaner),
    )
}
assert tuple(sorted(CLASS_SOUNDS)) == tuple(sorted(DESED_CLASSES)), "one synthesiser per DESED class"


def synthesise_event(label: str, rng: Rng, n: int, sr: int) -> FloatArray:
    """``n`` samples of one ``label`` event, unit RMS (the mixer sets its level)."""
    if n <= 0:
        return np.zeros(0, np.float32)
    wave = CLASS_SOUNDS[label].synthesise(rng, n, sr).astype(np.float32, copy=False)
    level = dsp.rms(wave)
    return wave / level if level > 0 else wave
