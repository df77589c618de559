"""Intrusive metrics (need the clean reference): PESQ, STOI/ESTOI and SI-SDR.

Each function takes float arrays of equal length (see :mod:`mal.metrics.inputs`) and returns a float, or
raises :class:`~mal.metrics.inputs.MetricUndefined` with the reason. None of them ever returns a placeholder
value: pystoi's "return 1e-5 when too short" and pesq's exceptions both become ``MetricUndefined``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pesq as _pesq
from pystoi import stoi as _stoi

from mal.metrics.inputs import MetricUndefined

# pystoi needs 30 frames of 256 samples at 10 kHz (hop 128) after silent frames are removed.
_STOI_MIN_FRAMES = 30


def pesq(clean: np.ndarray, estimate: np.ndarray, sample_rate: int, mode: str) -> float:
    """ITU-T P.862 PESQ through the ``pesq`` package: ``mode`` ``"wb"`` (16 kHz) or ``"nb"`` (8 kHz).

    Returns:
        MOS-LQO: 1.04 … 4.64 wide band, 1.02 … 4.55 narrow band.
    """
    if mode == "wb" and sample_rate != 16000:
        raise MetricUndefined(f"wide-band PESQ needs 16 kHz input, got {sample_rate} Hz")
    if mode == "nb" and sample_rate != 8000:
        raise MetricUndefined(f"narrow-band PESQ is reported only for 8 kHz input (got {sample_rate} Hz)")
    try:
        return float(_pesq.pesq(sample_rate, clean, estimate, mode))
    except _pesq.NoUtterancesError as err:
        raise MetricUndefined("PESQ found no utterance in the reference (silent or near-silent)") from err
    except _pesq.BufferTooShortError as err:
        raise MetricUndefined(f"too short for PESQ ({clean.size / sample_rate:.3f} s < 0.25 s)") from err
    except _pesq.InvalidSampleRateError as err:
        raise MetricUndefined(f"PESQ rejected the sample rate {sample_rate} Hz") from err
    except _pesq.PesqError as err:  # OutOfMemoryError and any future subclass
        raise MetricUndefined(f"PESQ failed: {type(err).__name__}: {err}") from err


def stoi(clean: np.ndarray, estimate: np.ndarray, sample_rate: int, extended: bool = False) -> float:
    """STOI (``extended=False``) or ESTOI (``extended=True``) through pystoi.

    pystoi returns 1e-5 with a warning when fewer than 30 frames remain after it drops silent frames; that
    case is raised here instead, so it never enters an average.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(clean, estimate, sample_rate, extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        label = "ESTOI" if extended else "STOI"
        raise MetricUndefined(
            f"too short for {label}: fewer than {_STOI_MIN_FRAMES} frames (~0.4 s) of speech after silent frames "
            "are removed"
        )
    return value


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), both signals made zero-mean first.

    SI-SDR = 10·log10(‖α s‖² / ‖α s − ŝ‖²) with α = ⟨ŝ, s⟩ / ‖s‖².

    Note the argument order: (estimate, reference), as in :mod:`mal.losses`.
    """
    s = np.asarray(reference, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    if s.shape != e.shape:
        raise ValueError(f"si_sdr: shapes differ: estimate {e.shape} vs reference {s.shape}")
    s = s - s.mean()
    e = e - e.mean()
    ref_energy = float(np.dot(s, s))
    if ref_energy <= 0.0:
        raise MetricUndefined("SI-SDR undefined: the reference is constant (zero energy after removing the mean)")
    if float(np.dot(e, e)) <= 0.0:
        raise MetricUndefined("SI-SDR undefined: the estimate is constant (zero energy after removing the mean)")
    alpha = float(np.dot(e, s)) / ref_energy
    target = alpha * s
    noise = e - target
    noise_energy = float(np.dot(noise, noise))
    target_energy = float(np.dot(target, target))
    if noise_energy <= 0.0:
        raise MetricUndefined("SI-SDR is +inf: the estimate is an exact scaled copy of the reference")
    if target_energy <= 0.0:
        raise MetricUndefined("SI-SDR is -inf: the estimate is orthogonal to the reference")
    return 10.0 * float(np.log10(target_energy / noise_energy))
