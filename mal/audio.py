"""Audio I/O with explicit checks: every problem names the file and says what to do.

All of ``mal`` works on mono float32 waveforms at 16 kHz in [-1, 1]. Reading goes through soundfile
(torchaudio's own loader needs torchcodec, which is not installed here); resampling goes through
``torchaudio.functional.resample``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mal.io import atomic_path

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """An audio file or array cannot be used as it is; the message names the file and the problem."""


def resample(wav: torch.Tensor, orig_sr: int, target_sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Resample along the last axis (band-limited sinc, torchaudio's default)."""
    if orig_sr == target_sr:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_sr, target_sr)


def check_waveform(wav: np.ndarray | torch.Tensor, name: str = "waveform", allow_silent: bool = True) -> None:
    """Raise :class:`AudioError` for empty, NaN/inf or (optionally) all-zero audio."""
    arr = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if arr.size == 0:
        raise AudioError(f"{name}: empty audio (0 samples)")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise AudioError(f"{name}: {bad} NaN/inf samples; the file is corrupt or was written from a diverged model")
    if not allow_silent and not np.any(arr):
        raise AudioError(f"{name}: audio is all zeros (silent)")


def read_audio(
    path: str | Path,
    sample_rate: int | None = SAMPLE_RATE,
    mono: str = "mix",
    allow_silent: bool = True,
) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 ``(1, T)``.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, ...).
        sample_rate: resample to this rate (with a warning naming the file); ``None`` keeps the file's rate.
        mono: ``"mix"`` averages channels (with a warning), ``"error"`` refuses multi-channel files.
        allow_silent: when False an all-zero file is an error.

    Returns:
        ``(wav, sr)`` with ``wav`` of shape ``(1, T)`` and values as stored (int formats scaled to [-1, 1]).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{path}: cannot decode audio ({err}); the file is corrupt or not audio") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if data.shape[1] > 1:
        if mono == "error":
            raise AudioError(f"{path}: {data.shape[1]} channels; mal expects mono (pass mono='mix' to average)")
        warnings.warn(f"{path}: {data.shape[1]} channels averaged to mono", stacklevel=2)
        data = data.mean(axis=1, keepdims=True)
    check_waveform(data, str(path), allow_silent=allow_silent)
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if sample_rate is not None and sr != sample_rate:
        warnings.warn(f"{path}: resampled {sr} Hz -> {sample_rate} Hz", stacklevel=2)
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    return wav, sr


def write_audio(
    path: str | Path, wav: torch.Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16"
) -> Path:
    """Write mono audio atomically. ``wav`` is ``(T,)`` or ``(1, T)``; ``subtype`` ``"PCM_16"`` or ``"FLOAT"``.

    PCM_16 output is clipped to [-1, 1] first (a warning says how many samples clipped).
    """
    arr = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    arr = np.asarray(arr, dtype=np.float32).reshape(-1) if arr.ndim == 1 or arr.shape[0] == 1 else None
    if arr is None:
        raise AudioError(f"{path}: expected mono audio of shape (T,) or (1, T)")
    check_waveform(arr, str(path))
    if subtype.startswith("PCM"):
        clipped = int(np.count_nonzero(np.abs(arr) > 1.0))
        if clipped:
            warnings.warn(f"{path}: {clipped} samples clipped to [-1, 1]", stacklevel=2)
            arr = np.clip(arr, -1.0, 1.0)
    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), arr, sample_rate, subtype=subtype, format=_format_for(path))
    return path


def wav_bytes(wav: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono audio (any shape with one channel) as a 16-bit WAV file in memory, for a player.

    Samples are clipped to [-1, 1], never normalised, so players of different versions keep their relative level.
    """
    data = np.asarray(wav.detach().cpu() if isinstance(wav, torch.Tensor) else wav, dtype=np.float32).reshape(-1)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(data, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}.get(ext, "WAV")
