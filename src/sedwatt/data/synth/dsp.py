"""Vectorised signal primitives the class synthesisers and the soundscape mixer are built from.

Everything works on whole arrays (no per-sample Python loops) and returns float32, so a 10 s clip
costs a few milliseconds: shaped noise is drawn directly in the frequency domain (one inverse FFT),
harmonic tones come from a one-period wavetable read at an accumulated phase, and swarms of short
grains (clicks, bubbles, clinks) are summed with one ``np.bincount``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import fft as sp_fft
from scipy.signal import oaconvolve

Rng = np.random.Generator
FloatArray = np.ndarray

TABLE_SIZE = 4096


def rms(x: FloatArray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def db_to_gain(db: float | FloatArray) -> float | FloatArray:
    return 10.0 ** (np.asarray(db) / 20.0)


def shaped_noise(rng: Rng, n: int, sr: int, magnitude: Callable[[FloatArray], FloatArray]) -> FloatArray:
    """Gaussian noise of ``n`` samples whose amplitude spectrum follows ``magnitude(freqs_hz)``, unit RMS."""
    if n <= 0:
        return np.zeros(0, np.float32)
    size = sp_fft.next_fast_len(n, real=True)  # noise is noise: draw a fast FFT length and cut it
    freqs = sp_fft.rfftfreq(size, 1.0 / sr).astype(np.float32)
    gains = np.asarray(magnitude(freqs), dtype=np.float32)
    spectrum = np.empty(freqs.size, np.complex64)
    spectrum.real = rng.standard_normal(freqs.size, dtype=np.float32)
    spectrum.imag = rng.standard_normal(freqs.size, dtype=np.float32)
    out = sp_fft.irfft(spectrum * gains, size)[:n].astype(np.float32, copy=False)
    level = rms(out)
    return out / level if level > 0 else out


def band_shape(freqs: FloatArray, centre_hz: float, octaves: float) -> FloatArray:
    """Gaussian bump on a log-frequency axis, ``octaves`` wide (one standard deviation)."""
    log_ratio = np.log2(np.maximum(freqs, 1.0) / centre_hz)
    return np.exp(-0.5 * np.square(log_ratio / octaves))


def tilt(freqs: FloatArray, db_per_octave: float, ref_hz: float = 1000.0) -> FloatArray:
    """Spectral slope: 0 is white, -3 pink, -6 brown (in amplitude per octave)."""
    return np.power(np.maximum(freqs, 20.0) / ref_hz, db_per_octave / 6.0206)


def smooth_random(rng: Rng, n: int, sr: int, rate_hz: float, depth: float = 1.0) -> FloatArray:
    """A slowly wandering curve around 0 (std ≈ depth), with new control values ``rate_hz`` times a second."""
    n_points = max(2, int(np.ceil(n / sr * rate_hz)) + 2)
    control = rng.standard_normal(n_points).astype(np.float32) * depth
    positions = np.linspace(0.0, n_points - 1, n, dtype=np.float32)
    return np.interp(positions, np.arange(n_points, dtype=np.float32), control).astype(np.float32)


def envelope(n: int, points: list[tuple[float, float]]) -> FloatArray:
    """Piecewise-linear envelope through (fraction of length, level) points."""
    times, levels = zip(*points, strict=True)
    return np.interp(np.linspace(0.0, 1.0, n, dtype=np.float32), times, levels).astype(np.float32)


def fades(n: int, sr: int, attack_s: float, release_s: float) -> FloatArray:
    """Linear attack and release ramps (capped so they never overlap) over a flat 1."""
    env = np.ones(n, np.float32)
    attack = min(int(attack_s * sr), n // 2)
    release = min(int(release_s * sr), n - attack)
    if attack > 0:
        env[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False, dtype=np.float32)
    if release > 0:
        env[n - release :] *= np.linspace(1.0, 0.0, release, dtype=np.float32)
    return env


def wavetable(harmonic_amps: FloatArray, rng: Rng | None = None) -> FloatArray:
    """One period holding harmonics 1..K with the given amplitudes: zero phase (a peaky buzz) or random phases."""
    amps = np.asarray(harmonic_amps, dtype=np.float64)
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, np.complex128)
    phases = rng.uniform(0, 2 * np.pi, amps.size) if rng is not None else np.zeros(amps.size)
    spectrum[1 : amps.size + 1] = amps * np.exp(1j * phases)
    table = np.fft.irfft(spectrum, TABLE_SIZE)
    peak = np.max(np.abs(table))
    return (table / peak if peak > 0 else table).astype(np.float32)


def phase_of(f0: FloatArray, sr: int, start: float = 0.0) -> FloatArray:
    """Cycle position in [0, 1) of a tone whose frequency follows ``f0`` (Hz per sample)."""
    cycles = np.cumsum(np.asarray(f0, dtype=np.float64) / sr) + start
    return np.mod(cycles, 1.0)


def read_table(table: FloatArray, phase: FloatArray) -> FloatArray:
    """Linear-interpolated wavetable lookup at phases in [0, 1)."""
    pos = phase * TABLE_SIZE
    idx = pos.astype(np.int64)
    frac = (pos - idx).astype(np.float32)
    idx %= TABLE_SIZE
    nxt = (idx + 1) % TABLE_SIZE
    return table[idx] * (1.0 - frac) + table[nxt] * frac


def n_harmonics(max_f0: float, sr: int, cap: int = 200) -> int:
    """How many harmonics stay below Nyquist at the tone's highest pitch (band-limited, no aliasing)."""
    return int(max(1, min(cap, TABLE_SIZE // 2 - 1, np.floor(0.48 * sr / max(max_f0, 1.0)))))


def harmonic_tone(f0: FloatArray, sr: int, amps_of_freq: Callable[[FloatArray], FloatArray], rng: Rng | None = None,
                  rolloff: float = 1.0) -> FloatArray:
    """A harmonic tone following ``f0``; harmonic k has amplitude k^-rolloff · amps_of_freq(k · mean f0)."""
    k = np.arange(1, n_harmonics(float(np.max(f0)), sr) + 1, dtype=np.float64)
    amps = np.power(k, -rolloff) * amps_of_freq(k * float(np.mean(f0)))
    return read_table(wavetable(amps, rng), phase_of(f0, sr, rng.uniform() if rng is not None else 0.0))


def formants(freqs: FloatArray, centres: list[float], widths: list[float], gains: list[float]) -> FloatArray:
    """Sum of resonance peaks (Lorentzian bumps) plus a small floor: a vocal-tract-like envelope."""
    out = np.full(np.shape(freqs), 0.02, dtype=np.float64)
    for centre, width, gain in zip(centres, widths, gains, strict=True):
        out = out + gain / (1.0 + np.square((np.asarray(freqs) - centre) / width))
    return out


def add_grains(out: FloatArray, starts: np.ndarray, grains: FloatArray) -> FloatArray:
    """Add grains [G, L] at sample offsets ``starts`` [G] into ``out`` (grains running off the end are cut)."""
    if len(starts) == 0:
        return out
    idx = starts[:, None] + np.arange(grains.shape[1])[None, :]
    keep = idx < out.size
    summed = np.bincount(idx[keep], weights=grains[keep].astype(np.float64), minlength=out.size)
    out += summed[: out.size].astype(np.float32)
    return out


def decaying_partials(length: int, sr: int, freqs: FloatArray, taus_s: FloatArray, amps: FloatArray,
                      rng: Rng) -> FloatArray:
    """Grains [G, length]: each a sum of P exponentially decaying sinusoids (freqs/taus/amps are [G, P])."""
    t = (np.arange(length, dtype=np.float32) / sr)[None, None, :]
    phase0 = rng.uniform(0, 2 * np.pi, freqs.shape)[..., None]
    ringing = np.sin(2 * np.pi * freqs[..., None] * t + phase0) * np.exp(-t / taus_s[..., None])
    return (amps[..., None] * ringing).sum(axis=1).astype(np.float32)


def convolve(x: FloatArray, ir: FloatArray) -> FloatArray:
    """Linear convolution, same length as ``x`` (the tail past its end is dropped)."""
    return oaconvolve(x, ir, mode="full")[: x.size].astype(np.float32)


def room_ir(rng: Rng, sr: int, rt60_s: float, direct_to_reverb_db: float) -> FloatArray:
    """A crude room impulse response: a direct path plus an exponentially decaying, slightly dulled noise tail."""
    length = max(16, int(rt60_s * sr))
    t = np.arange(length, dtype=np.float32) / sr
    tail = rng.standard_normal(length).astype(np.float32) * np.exp(-6.9 * t / rt60_s)
    # Walls absorb highs: a 4-tap moving average takes the edge off the tail.
    tail = np.convolve(tail, np.ones(4, np.float32) / 4, mode="same")
    tail *= db_to_gain(-direct_to_reverb_db) / max(rms(tail) * np.sqrt(length), 1e-9)
    ir = tail
    ir[0] = 1.0
    return ir
