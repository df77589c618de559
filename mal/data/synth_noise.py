"""Generated noises: white, pink and brown (coloured Gaussian noise) and mains hum.

All generators take a numpy ``Generator`` so that a corpus rebuilds byte-identically from its seed, and return
float32 arrays of unit RMS (the mixer sets the level from the SNR).
"""

from __future__ import annotations

import numpy as np

from mal.audio import SAMPLE_RATE

COLOURS = ("white", "pink", "brown")
# Below this frequency the 1/f and 1/f^2 shapes are held flat: otherwise brown noise is mostly sub-audible drift.
LOW_CUT_HZ = 20.0


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x / rms).astype(np.float32) if rms > 0 else x.astype(np.float32)


def coloured_noise(n: int, colour: str, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Gaussian noise with power spectrum ∝ 1/f^α (white α=0, pink α=1, brown α=2), unit RMS.

    Args:
        n: number of samples.
        colour: "white", "pink" or "brown".
    Returns:
        float32 array of shape ``(n,)``.
    """
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    white = rng.standard_normal(n)
    if colour == "white":
        return _unit_rms(white)
    alpha = 1.0 if colour == "pink" else 2.0
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate)
    # Amplitude ∝ f^(-α/2) gives power ∝ f^-α.
    shape = np.maximum(freqs, LOW_CUT_HZ) ** (-alpha / 2.0)
    shape[0] = 0.0  # no DC
    return _unit_rms(np.fft.irfft(spectrum * shape, n=n))


def mains_hum(n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mains hum: a 50 or 60 Hz fundamental with odd-heavy harmonics up to ~1 kHz, slow drift, and a faint hiss.

    Harmonic amplitudes fall off randomly (transformer buzz is rich in odd harmonics); a -30 dB white floor
    keeps the noise from being perfectly predictable. Returns float32 ``(n,)`` with unit RMS.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    f0 = float(rng.choice([50.0, 60.0])) * (1.0 + rng.uniform(-0.002, 0.002))
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    n_harm = int(1000 // f0)
    # Harmonic k is Im(c_k · z^k) with z = exp(i·2π·f0·t): one complex product per harmonic instead of a sine.
    z = np.exp(1j * 2 * np.pi * f0 * t)
    zk = np.ones(n, dtype=np.complex128)
    for k in range(1, n_harm + 1):
        amp = rng.uniform(0.3, 1.0) / k ** (0.6 if k % 2 else 1.2)
        zk *= z
        out += (amp * np.exp(1j * rng.uniform(0, 2 * np.pi)) * zk).imag
    # Slow amplitude wobble (0.1-0.5 Hz, ±10 %) as in real recordings.
    out *= 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi))
    out = _unit_rms(out).astype(np.float64)
    out += 10 ** (-30 / 20) * rng.standard_normal(n)
    return _unit_rms(out)
