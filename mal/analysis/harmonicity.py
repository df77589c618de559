"""Harmonicity of speech in the voiced frames of a clean reference: harmonics-to-noise ratio and spectral flatness.

The MAL paper claims that MAL keeps the harmonic structure of voiced speech where other losses smear it. To track
that across repeated enhancement we need a number that drops when harmonics are smeared, measured on the *same*
frames for every estimate. So voiced frames are chosen once, on the clean reference, and each estimate is measured
on those frames only.

Definitions (all at the signal's sample rate, frames of ``frame_ms`` with hop ``hop_ms``, no window):

* Normalised autocorrelation of a frame ``x[0..N)`` at lag τ (a normalised cross-correlation between the frame's
  head and its shifted tail, so it is 1 for any exactly periodic frame whatever its level)::

      r(τ) = Σ_{t<N-τ} x[t]·x[t+τ] / sqrt( Σ_{t<N-τ} x[t]² · Σ_{t<N-τ} x[t+τ]² )

* Pitch-lag peak: ``r_max = max r(τ)`` over lags for fundamentals from ``f0_max`` down to ``f0_min``
  (default 60–400 Hz, i.e. 2.5–16.7 ms).
* Voiced frame (decided on the clean reference): ``r_max ≥ voicing_threshold`` (default 0.6) and frame energy
  within ``energy_floor_db`` (default 40 dB) of the loudest frame.
* HNR of a frame (Boersma 1993): ``10·log10(r_max / (1 − r_max))`` dB, with ``r_max`` clipped to
  [1e-6, 1 − 1e-6] so that the value stays within ±60 dB. A clean vowel scores 10–30 dB, white noise below 0 dB.
* Spectral flatness of a frame (Hann window, power spectrum in ``flatness_band``, default 60–4000 Hz): geometric
  mean / arithmetic mean of the power spectrum, in [0, 1]; low for harmonic frames, near 0.56 for white noise
  (the expected value of exp(E log P)/E P for exponentially distributed bin powers).

The reported value is the mean over the reference's voiced frames; NaN (with a reason) when it has none.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class HarmonicityResult:
    """Mean harmonicity over the reference's voiced frames.

    Attributes:
        hnr_db: mean harmonics-to-noise ratio (dB) of the measured signal; NaN when no frame is voiced.
        spectral_flatness: mean spectral flatness in [0, 1] of the measured signal; NaN when no frame is voiced.
        n_voiced: number of voiced frames (decided on the reference).
        n_frames: number of frames.
        reason: why the values are NaN (empty when they are not).
    """

    hnr_db: float
    spectral_flatness: float
    n_voiced: int
    n_frames: int
    reason: str = ""


def _as_mono(x: np.ndarray | object, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    arr = np.squeeze(arr)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected mono audio (T,), (1, T) or (1, 1, T); got shape {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return arr


def frame_signal(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Cut ``x`` (T,) into frames ``(F, frame)``, dropping a tail shorter than a frame; ``(0, frame)`` if T < frame."""
    if len(x) < frame:
        return np.zeros((0, frame))
    n = 1 + (len(x) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def normalised_autocorrelation(frames: np.ndarray, min_lag: int, max_lag: int) -> np.ndarray:
    """``r(τ)`` of every frame for lags ``min_lag..max_lag`` (inclusive), see the module docstring.

    Shape:
        frames ``(F, N)`` → ``(F, max_lag - min_lag + 1)``.
    """
    n = frames.shape[-1]
    if max_lag >= n:
        raise ValueError(f"max_lag {max_lag} must be shorter than the frame ({n} samples)")
    nfft = 1 << int(math.ceil(math.log2(2 * n)))
    spec = np.fft.rfft(frames, nfft, axis=-1)
    acf = np.fft.irfft(spec * np.conj(spec), nfft, axis=-1)[:, : max_lag + 1]
    csum = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=-1)], axis=-1)
    lags = np.arange(min_lag, max_lag + 1)
    head = csum[:, n - lags]  # Σ_{t<N-τ} x[t]²
    tail = csum[:, n : n + 1] - csum[:, lags]  # Σ_{t≥τ} x[t]²
    denom = np.sqrt(head * tail)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, acf[:, lags] / np.where(denom > 0, denom, 1.0), 0.0)
    return r


def harmonicity(
    estimate: np.ndarray,
    reference: np.ndarray,
    sample_rate: int = 16000,
    f0_min: float = 60.0,
    f0_max: float = 400.0,
    frame_ms: float = 50.0,
    hop_ms: float = 10.0,
    voicing_threshold: float = 0.6,
    energy_floor_db: float = 40.0,
    flatness_band: tuple[float, float] = (60.0, 4000.0),
) -> HarmonicityResult:
    """HNR and spectral flatness of ``estimate`` over the voiced frames of ``reference`` (module docstring).

    Args:
        estimate: the signal measured, ``(T,)`` or ``(1, T)`` (numpy or torch).
        reference: the clean reference that decides which frames are voiced; same length as ``estimate``.
        sample_rate: Hz.
        f0_min, f0_max: pitch search range in Hz (lags ``sr/f0_max .. sr/f0_min``).
        frame_ms, hop_ms: analysis frame and hop in ms; a frame must hold more than one period of ``f0_min``.
        voicing_threshold: minimum pitch-lag correlation of the reference for a frame to count as voiced.
        energy_floor_db: frames quieter than the loudest reference frame by more than this are unvoiced.
        flatness_band: (low, high) Hz band of the spectral flatness.

    Returns:
        :class:`HarmonicityResult`; NaN values with a reason when the reference has no voiced frame.
    """
    est = _as_mono(estimate, "estimate")
    ref = _as_mono(reference, "reference")
    if est.shape != ref.shape:
        raise ValueError(f"estimate and reference lengths differ: {est.shape[0]} vs {ref.shape[0]} samples")
    frame = int(round(frame_ms * sample_rate / 1000))
    hop = int(round(hop_ms * sample_rate / 1000))
    min_lag = int(math.floor(sample_rate / f0_max))
    max_lag = int(math.ceil(sample_rate / f0_min))
    if max_lag >= frame:
        raise ValueError(f"frame_ms={frame_ms} is too short for f0_min={f0_min} Hz (needs > {1000 / f0_min:.1f} ms)")

    ref_frames = frame_signal(ref, frame, hop)
    if len(ref_frames) == 0:
        return HarmonicityResult(math.nan, math.nan, 0, 0, f"signal shorter than one {frame_ms:g} ms frame")
    energy = np.sum(ref_frames**2, axis=-1)
    if energy.max() <= 0:
        return HarmonicityResult(math.nan, math.nan, 0, len(ref_frames), "silent reference")
    loud = energy >= energy.max() * 10 ** (-energy_floor_db / 10)
    voiced = loud & (normalised_autocorrelation(ref_frames, min_lag, max_lag).max(axis=-1) >= voicing_threshold)
    if not voiced.any():
        return HarmonicityResult(math.nan, math.nan, 0, len(ref_frames), "no voiced frame in the reference")

    est_frames = frame_signal(est, frame, hop)[voiced]
    r_max = np.clip(normalised_autocorrelation(est_frames, min_lag, max_lag).max(axis=-1), 1e-6, 1 - 1e-6)
    hnr = 10 * np.log10(r_max / (1 - r_max))

    power = np.abs(np.fft.rfft(est_frames * np.hanning(frame)[None], axis=-1)) ** 2
    freqs = np.fft.rfftfreq(frame, 1 / sample_rate)
    band = (freqs >= flatness_band[0]) & (freqs <= flatness_band[1])
    p = power[:, band] + 1e-12  # the floor keeps log finite on digital silence (flatness → 1 there)
    flatness = np.exp(np.mean(np.log(p), axis=-1)) / np.mean(p, axis=-1)
    return HarmonicityResult(float(np.mean(hnr)), float(np.mean(flatness)), int(voiced.sum()), len(ref_frames))
