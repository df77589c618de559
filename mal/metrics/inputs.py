"""Turning what callers pass into the arrays the metrics need, with every rule written down.

Rules (they apply to every metric in :mod:`mal.metrics`):

* **Shape.** 1-D ``(T,)`` or ``(1, T)`` numpy arrays or torch tensors. Anything with more than one channel is
  refused (average or pick a channel first).
* **Scale.** Integer PCM is mapped to [-1, 1] by its full-scale value (int16 / 32768, int32 / 2**31, uint8
  centred on 128). Floats are taken as they are. The two inputs may mix kinds (an int16 reference and a float
  estimate).
* **Length.** Both signals are trimmed to the shorter one. A difference above ``length_tolerance_s`` (0.1 s by
  default) is not trimmed: it usually means the files are mispaired, so every metric of that pair is NaN with
  a reason.
* **Validity.** Empty input, NaN/inf samples and more than one channel make every metric NaN with a reason.
  A silent reference (peak below ``SILENCE_PEAK``) makes the intrusive metrics NaN; a silent estimate makes
  every metric NaN (quality or intelligibility of silence is undefined, and scoring it 0 would bias means).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# -140 dBFS: far below the 16-bit quantisation step (3e-5), so any real recording clears it.
SILENCE_PEAK = 1e-7


class MetricUndefined(Exception):
    """A metric cannot be computed for this input; the message is the reason recorded next to the NaN."""


@dataclass(frozen=True)
class Pair:
    """A checked (reference, estimate) pair: float64 1-D arrays of equal length at ``sample_rate``."""

    clean: np.ndarray
    estimate: np.ndarray
    sample_rate: int
    trimmed: int  # samples dropped from the longer signal by the length rule
    clean_silent: bool
    estimate_silent: bool

    @property
    def seconds(self) -> float:
        return self.clean.size / self.sample_rate


def to_float_mono(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """Return ``x`` as a float64 1-D array in the [-1, 1] convention (see the module's scale rule).

    Raises:
        MetricUndefined: empty, multi-channel, non-numeric or non-finite input.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise MetricUndefined(f"{name}: expected mono audio shaped (T,) or (1, T), got shape {arr.shape}")
    if arr.size == 0:
        raise MetricUndefined(f"{name}: empty input (0 samples)")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise MetricUndefined(f"{name}: expected numeric audio samples, got dtype {arr.dtype}")
    out = _aligned_empty(arr.size)
    if arr.dtype.kind == "i":
        np.divide(arr, float(2 ** (8 * arr.dtype.itemsize - 1)), out=out)
    elif arr.dtype.kind == "u":
        half = float(2 ** (8 * arr.dtype.itemsize - 1))
        np.divide(arr.astype(np.float64) - half, half, out=out)
    else:
        out[:] = arr
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        if bad:
            raise MetricUndefined(f"{name}: {bad} NaN/inf samples")
    return out


def _aligned_empty(n: int, alignment: int = 64) -> np.ndarray:
    """float64 array whose data starts on a 64-byte boundary.

    numpy's SIMD reductions round differently depending on where an array starts in memory, and the allocator
    places arrays differently in each process; a fixed alignment keeps scores bit-identical between serial and
    multi-process runs.
    """
    buf = np.empty(n + alignment // 8, dtype=np.float64)
    offset = (-buf.ctypes.data % alignment) // 8
    return buf[offset : offset + n]


def prepare_pair(
    clean: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    sample_rate: int,
    length_tolerance_s: float = 0.1,
) -> Pair:
    """Check and align a (reference, estimate) pair by the module's rules.

    Raises:
        MetricUndefined: the pair cannot be scored at all (reason in the message).
    """
    ref = to_float_mono(clean, "reference")
    est = to_float_mono(estimate, "estimate")
    diff = abs(ref.size - est.size)
    if diff > length_tolerance_s * sample_rate:
        raise MetricUndefined(
            f"length mismatch: reference {ref.size} vs estimate {est.size} samples "
            f"({diff / sample_rate:.3f} s > tolerance {length_tolerance_s} s); are the files paired correctly?"
        )
    n = min(ref.size, est.size)
    ref, est = ref[:n], est[:n]
    return Pair(
        clean=ref,
        estimate=est,
        sample_rate=sample_rate,
        trimmed=diff,
        clean_silent=bool(np.max(np.abs(ref)) < SILENCE_PEAK),
        estimate_silent=bool(np.max(np.abs(est)) < SILENCE_PEAK),
    )


def check_sample_rate(sample_rate: int) -> int:
    """Metrics are defined at 8 or 16 kHz only (docs/method.md); anything else is a caller error, not a file's."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(f"sample_rate must be an integer in Hz, got {sample_rate!r}")
    if int(sample_rate) not in (8000, 16000):
        raise ValueError(
            f"sample_rate={sample_rate}: mal's metrics run at 16000 Hz (or 8000 Hz for narrow-band PESQ); "
            "resample first with mal.audio.resample"
        )
    return int(sample_rate)
