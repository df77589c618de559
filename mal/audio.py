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
SUBTYPES = ("PCM_16", "FLOAT")  # the sample formats a caller asks for: 16-bit (clipped to [-1, 1]) or float
# Output file extension → (libsndfile container, {requested sample format: what that container stores}).
# FLAC holds integers only; Vorbis and MP3 are lossy codecs with no sample format of their own to choose.
OUTPUT_FORMATS: dict[str, tuple[str, dict[str, str]]] = {
    ".wav": ("WAV", {"PCM_16": "PCM_16", "FLOAT": "FLOAT"}),
    ".flac": ("FLAC", {"PCM_16": "PCM_16"}),
    ".ogg": ("OGG", {"PCM_16": "VORBIS"}),
    ".mp3": ("MP3", {"PCM_16": "MPEG_LAYER_III"}),
}


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


def output_format(path: str | Path, subtype: str = "PCM_16") -> tuple[str, str]:
    """``(format, subtype)`` for soundfile to write ``path`` (container from its extension) as ``subtype``.

    Args:
        path: an output file ending in .wav, .flac, .ogg (Vorbis) or .mp3.
        subtype: ``"PCM_16"`` (16-bit, or the codec's own format for .ogg/.mp3) or ``"FLOAT"`` (.wav only).

    Raises:
        AudioError: an extension mal does not write, or a sample format that container cannot hold.
    """
    suffix = Path(path).suffix.lower()
    if subtype not in SUBTYPES:
        raise AudioError(f"{path}: sample format must be one of {SUBTYPES}, got {subtype!r}")
    if suffix not in OUTPUT_FORMATS:
        raise AudioError(
            f"{path}: cannot write {suffix or 'files without an extension'}; use {', '.join(OUTPUT_FORMATS)}"
        )
    container, stored = OUTPUT_FORMATS[suffix]
    if subtype not in stored:
        wants_float = [s for s, (_, sub) in OUTPUT_FORMATS.items() if "FLOAT" in sub]
        raise AudioError(
            f"{path}: {suffix} files cannot hold {subtype} samples; write {', '.join(wants_float)} for that"
        )
    return container, stored[subtype]


def write_audio(
    path: str | Path, wav: torch.Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16"
) -> Path:
    """Write mono audio atomically. ``wav`` is ``(T,)`` or ``(1, T)``; ``subtype`` ``"PCM_16"`` or ``"FLOAT"``.

    The container follows the extension (see :func:`output_format`). PCM_16 output is clipped to [-1, 1]
    first (a warning says how many samples clipped).
    """
    container, stored = output_format(path, subtype)
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
        sf.write(str(tmp), arr, sample_rate, subtype=stored, format=container)
    return path


def wav_bytes(wav: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono audio (any shape with one channel) as a 16-bit WAV file in memory, for a player.

    Samples are clipped to [-1, 1], never normalised, so players of different versions keep their relative level.
    """
    data = np.asarray(wav.detach().cpu() if isinstance(wav, torch.Tensor) else wav, dtype=np.float32).reshape(-1)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(data, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
