"""Mixing speech and noise: levels, SNR, the shared peak guard, and assembling noise of a given length.

Conventions (also in data/README.md):

* Levels and SNRs use the mean power over the whole signal: ``SNR = 10·log10(P_speech / P_noise)``, with
  ``P_speech`` the power of the speech component in the mixture (the reverberant speech in ``test_reverb``).
  Utterances are trimmed of leading and trailing silence, so this is close to an active-speech level.
* The clean reference and the mixture are scaled *together* so that the larger of their peaks stays below the
  peak limit: the SNR and the clean/noisy relation are untouched by the guard.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mal.data.errors import DataError

# Joins and cuts inside assembled noise get raised-cosine fades of this length, so no clicks are added.
FADE_SECONDS = 0.01
# Assembled noise quieter than this (RMS, dBFS) is redrawn: an SNR relative to near-silence is meaningless.
MIN_NOISE_DBFS = -70.0


def power(x: np.ndarray) -> float:
    """Mean power (float64 accumulation)."""
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def rms_dbfs(x: np.ndarray) -> float:
    p = power(x)
    return 10.0 * np.log10(p) if p > 0 else float("-inf")


def set_level(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scale ``x`` to an RMS level in dBFS. Raises for silent input."""
    p = power(x)
    if p <= 0:
        raise DataError("cannot set the level of a silent signal")
    return (x * (10 ** (level_dbfs / 20.0) / np.sqrt(p))).astype(np.float32)


def scale_noise_to_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Return ``noise`` scaled so that ``10·log10(P_speech / P_noise) == snr_db``.

    Shape: speech and noise ``(T,)`` of equal length.
    """
    if speech.shape != noise.shape:
        raise DataError(f"speech {speech.shape} and noise {noise.shape} differ in shape")
    ps, pn = power(speech), power(noise)
    if ps <= 0 or pn <= 0:
        raise DataError(f"cannot mix at an SNR: speech power {ps:.3g}, noise power {pn:.3g}")
    gain = np.sqrt(ps / (pn * 10 ** (snr_db / 10.0)))
    return (noise * gain).astype(np.float32)


def peak_guard(*signals: np.ndarray, peak: float) -> tuple[float, list[np.ndarray]]:
    """Scale all signals by one gain so that the largest absolute sample is at most ``peak``.

    Returns ``(gain, scaled)``; gain is 1 when nothing exceeds the limit.
    """
    m = max(float(np.max(np.abs(s))) for s in signals)
    gain = min(1.0, peak / m) if m > 0 else 1.0
    return gain, [(s * gain).astype(np.float32) for s in signals]


def _fade(x: np.ndarray, n_fade: int, start: bool, end: bool) -> np.ndarray:
    n = min(n_fade, x.size // 2)
    if n <= 0:
        return x
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float64))
    x = x.astype(np.float32, copy=True)
    if start:
        x[:n] *= ramp
    if end:
        x[-n:] *= ramp[::-1]
    return x


@dataclasses.dataclass(frozen=True)
class NoiseClip:
    """A stretch of decoded noise (already restricted to one split's share of its file)."""

    key: str  # provenance: "<package>:<member>"
    wav: np.ndarray  # float32 (T,) at 16 kHz
    offset_s: float = 0.0  # where this stretch starts inside the original file


def assemble_noise(
    pool: list[NoiseClip],
    n: int,
    rng: np.random.Generator,
    gap_seconds: tuple[float, float] = (0.0, 0.0),
    sample_rate: int = 16000,
) -> tuple[np.ndarray, str]:
    """Fill ``n`` samples with noise from ``pool``.

    The first clip starts at a random offset; further clips (drawn at random) follow after a gap drawn from
    ``gap_seconds`` (0 for continuous beds such as music; tens of ms for events such as key clicks). Cuts and
    joins are faded. Returns ``(noise (n,), description)``, the description naming the first clip and offset.
    """
    if not pool:
        raise DataError("empty noise pool")
    if any(c.wav.size == 0 for c in pool):
        raise DataError("noise pool holds an empty clip")
    if n <= 0:
        raise DataError(f"noise length must be positive, got {n}")
    n_fade = int(FADE_SECONDS * sample_rate)
    out = np.zeros(n, dtype=np.float32)
    first = pool[int(rng.integers(len(pool)))]
    start = int(rng.integers(0, max(1, first.wav.size - min(n, first.wav.size) + 1)))
    description = f"{first.key}@{first.offset_s + start / sample_rate:.2f}s"
    # Continuous beds are faded at every join; events (clicks, hits) keep their natural attack and are faded only
    # where this function cuts them.
    is_bed = gap_seconds[1] <= 0
    clip, count = first.wav[start:], 0
    pos = 0 if is_bed else int(round(rng.uniform(*gap_seconds) * sample_rate))  # events start after a pause
    while pos < n:
        piece = clip[: n - pos]
        truncated = piece.size < clip.size
        fade_start = is_bed or (count == 0 and start > 0)
        out[pos : pos + piece.size] = _fade(piece, n_fade, start=fade_start, end=is_bed or truncated)
        pos += piece.size
        count += 1
        if pos >= n:
            break
        pos += int(round(rng.uniform(*gap_seconds) * sample_rate)) if not is_bed else 0
        clip = pool[int(rng.integers(len(pool)))].wav
    if count > 1:
        description += f" +{count - 1} more"
    return out, description


def check_noise_level(noise: np.ndarray) -> bool:
    """True when the noise is loud enough to define an SNR against."""
    return rms_dbfs(noise) > MIN_NOISE_DBFS
