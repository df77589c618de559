"""Speech-like test signals made on the fly (no audio ships with the tests).

A glottal-like harmonic source with a gliding pitch, shaped by three formant bumps, gated into syllables and
words with pauses, plus short fricative noise bursts: enough structure for PESQ's utterance detection, STOI's
silent-frame removal and the MOS models.
"""

from __future__ import annotations

import numpy as np

FORMANTS_HZ = (550.0, 1650.0, 2600.0)


def speech_like(seconds: float = 3.0, sample_rate: int = 16000, seed: int = 0, peak: float = 0.5) -> np.ndarray:
    """Mono float64 ``(T,)`` speech-like signal with peak ``peak``."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = 110.0 + 25.0 * np.sin(2 * np.pi * 0.6 * t + rng.uniform(0, 6.28)) + 8.0 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = np.zeros(n)
    for k in range(1, 40):
        fk = k * f0
        gain = sum(np.exp(-(((fk - f) / 180.0) ** 2)) for f in FORMANTS_HZ) + 0.05
        gain = gain * (fk < 0.45 * sample_rate)
        voiced += gain * np.sin(k * phase) / np.sqrt(k)
    syllables = np.clip(np.sin(2 * np.pi * 3.7 * t + rng.uniform(0, 6.28)), 0, None) ** 0.6
    words = np.ones(n)
    pos = int(0.15 * sample_rate)
    while pos < n:  # alternate 0.4-0.9 s words with 0.1-0.3 s pauses, starting with a short lead-in pause
        words[max(0, pos - int(0.15 * sample_rate)) : pos] = 0.0
        pos += int(rng.uniform(0.4, 0.9) * sample_rate) + int(rng.uniform(0.1, 0.3) * sample_rate)
    x = voiced * syllables * words
    bursts = rng.standard_normal(n) * (np.sin(2 * np.pi * 1.3 * t) > 0.93) * words
    bursts = np.diff(bursts, prepend=0.0)  # crude high-pass: fricatives are high-frequency
    x = x / np.max(np.abs(x)) + 0.15 * bursts / max(np.max(np.abs(bursts)), 1e-9)
    x = x + 3e-4 * rng.standard_normal(n)  # a recording's noise floor (-70 dB): real files are never all-zero
    return peak * x / np.max(np.abs(x))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean + g·noise`` with g chosen for the given SNR (energy over the whole clip)."""
    noise = noise[: clean.size]
    gain = np.sqrt(np.sum(clean**2) / (np.sum(noise**2) * 10 ** (snr_db / 10)))
    return clean + gain * noise
