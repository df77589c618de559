"""Enhancing audio with a trained model: tensors, files and folders, short or hours long.

Long inputs are processed in chunks of ``chunk_seconds`` that overlap by ``overlap_seconds``; consecutive chunk
outputs are joined with an equal-power-sum (sin² / cos²) cross-fade over their overlap, so the weights sum to one
everywhere and no seam is audible. The last chunk is moved back to end exactly at the input's end (so every
chunk the model sees has the full length; it just overlaps its neighbour more). The model's working memory is
bounded by one chunk; :func:`enhance_path` also streams 16 kHz files from disk to disk, so a file of any length
is enhanced with memory that does not grow with its length.

    model = mal.models.load("ckpt.pt")
    out = mal.enhance.enhance(model, wav, chunk_seconds=10.0)              # (1, T)
    mal.enhance.enhance_path("noisy/", "enhanced/", "ckpt.pt")             # folder → folder

Every output is checked to be finite before it is written: a model that produces NaN/inf raises
:class:`ModelDivergedError` and leaves no file. A folder run enhances every file it can, records each one that
failed with its reason in ``enhance_summary.json`` next to the outputs, and reports them.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mal.audio import SAMPLE_RATE, SUBTYPES, AudioError, output_format, read_audio, write_audio
from mal.config import ConfigBase, ConfigError
from mal.device import resolve_device
from mal.io import atomic_path, atomic_write_json

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
SUMMARY_NAME = "enhance_summary.json"  # written into the output folder of a folder run


class ModelDivergedError(FloatingPointError):
    """The model's output holds NaN/inf samples: its weights are unusable (nothing was written)."""


def check_finite_output(out: torch.Tensor, source: str) -> torch.Tensor:
    """Return ``out`` unchanged, or raise :class:`ModelDivergedError` naming ``source`` when it is not finite."""
    finite = torch.isfinite(out)
    if not bool(finite.all()):
        bad = int(finite.numel() - finite.sum())
        raise ModelDivergedError(
            f"{source}: model diverged: it produced {bad} NaN/inf output sample(s); use an earlier checkpoint"
        )
    return out


@dataclasses.dataclass
class EnhanceResult:
    """What :func:`enhance_path` did.

    Attributes:
        written: output files written.
        failed: input file → why it was not enhanced (folder runs only; a single file raises instead).
        summary: the ``enhance_summary.json`` of a folder run, else None.
    """

    written: list[Path]
    failed: dict[Path, str]
    summary: Path | None


@dataclasses.dataclass
class EnhanceConfig(ConfigBase):
    """How ``python -m mal enhance`` and :func:`enhance_path` process audio."""

    checkpoint: str = ""  # mal checkpoint (mal.models.save / training output)
    subtype: str = "PCM_16"  # output sample format: PCM_16 (clipped to [-1, 1]) or FLOAT
    chunk_seconds: float = 10.0  # model input length for long files; <= 0 processes whole files at once
    overlap_seconds: float = 0.5  # overlap between chunks, joined with a cross-fade
    device: str = ""  # "" = CUDA when available, else CPU

    def validate(self) -> None:
        if self.subtype not in SUBTYPES:
            raise ConfigError(f"EnhanceConfig.subtype must be one of {SUBTYPES}, got {self.subtype!r}")
        if self.chunk_seconds > 0 and not 0 <= self.overlap_seconds < self.chunk_seconds:
            raise ConfigError(
                f"EnhanceConfig.overlap_seconds must be in [0, chunk_seconds={self.chunk_seconds}), "
                f"got {self.overlap_seconds}"
            )


def chunk_bounds(length: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, end), …]`` covering ``[0, length)`` with chunks of ``chunk`` samples overlapping by at least
    ``overlap``; the last chunk ends at ``length`` (a single chunk when ``length <= chunk``)."""
    if chunk <= 0 or not 0 <= overlap < chunk:
        raise ValueError(f"need chunk > 0 and 0 <= overlap < chunk, got chunk={chunk}, overlap={overlap}")
    if length <= chunk:
        return [(0, length)]
    hop = chunk - overlap
    starts = list(range(0, length - chunk, hop)) + [length - chunk]
    return [(s, s + chunk) for s in dict.fromkeys(starts)]


def _fade_in(n: int, device: torch.device) -> torch.Tensor:
    """sin² ramp from ~0 to ~1 over n samples (its complement cos² fades the previous chunk out)."""
    t = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n
    return torch.sin(0.5 * math.pi * t) ** 2


def _model_device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def overlap_add(
    read: Callable[[int, int], torch.Tensor],
    length: int,
    process: Callable[[torch.Tensor], torch.Tensor],
    chunk: int,
    overlap: int,
) -> Iterator[torch.Tensor]:
    """Yield the processed signal in order, one finished piece per chunk (cross-faded where chunks overlap).

    Args:
        read: ``read(start, end)`` → input samples ``(1, end - start)``.
        process: model call, ``(1, n)`` → ``(1, n)``.
    Yields:
        ``(1, n_k)`` pieces whose concatenation has ``length`` samples. Only one chunk's tail is held between
        steps, so memory does not depend on ``length``.
    """
    bounds = chunk_bounds(length, chunk, overlap)
    tail: torch.Tensor | None = None  # output of the previous chunk over [next start, previous end)
    for k, (start, end) in enumerate(bounds):
        out = process(read(start, end))
        if tail is not None:
            n = tail.shape[-1]
            w = _fade_in(n, out.device)
            out = out.clone()
            out[..., :n] = tail * (1.0 - w) + out[..., :n] * w
        next_start = bounds[k + 1][0] if k + 1 < len(bounds) else end
        yield out[..., : next_start - start]
        tail = out[..., next_start - start :]


def enhance(
    model: torch.nn.Module,
    wav: torch.Tensor | np.ndarray,
    chunk_seconds: float | None = None,
    overlap_seconds: float = 0.5,
    device: torch.device | str | None = None,
    source: str = "model",
) -> torch.Tensor:
    """Enhance one mono waveform.

    Args:
        model: an :class:`~mal.models.SEModel` (any ``(B, 1, T) → (B, 1, T)`` module works).
        wav: ``(T,)`` or ``(1, T)`` at the model's sample rate (16 kHz).
        chunk_seconds: process in overlapping chunks of this length (``None`` or ``<= 0``: whole input).
        overlap_seconds: overlap between chunks, joined with a sin²/cos² cross-fade.
        device: where the model runs (``None``: where its parameters are). Chunks move there one at a time.
        source: what the model is (e.g. its checkpoint path), named when its output is not finite.

    Returns:
        ``(1, T)`` float32 tensor on the device ``wav`` was on (numpy input: CPU).

    Raises:
        ModelDivergedError: the model produced NaN/inf samples.

    The model runs in eval mode under ``torch.inference_mode``; its previous train/eval mode is restored.
    """
    x = torch.as_tensor(wav)
    if x.dim() == 2 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 1:
        raise ValueError(f"enhance: expected mono audio shaped (T,) or (1, T), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise AudioError("enhance: empty input (0 samples)")
    out_device = x.device
    run_device = torch.device(device) if device is not None else _model_device(model)
    sr = getattr(model, "sample_rate", SAMPLE_RATE)
    length = x.numel()
    chunk = int(round(chunk_seconds * sr)) if chunk_seconds and chunk_seconds > 0 else length
    overlap = min(int(round(overlap_seconds * sr)), chunk - 1) if chunk < length else 0
    x = x.float()
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            pieces = overlap_add(
                lambda s, e: x[s:e][None],
                length,
                lambda seg: check_finite_output(model(seg.to(run_device)[None]), source).reshape(1, -1).to(out_device),
                chunk,
                overlap,
            )
            return torch.cat(list(pieces), dim=-1)
    finally:
        model.train(was_training)


def _enhance_stream(
    model: torch.nn.Module,
    src: Path,
    dst: Path,
    subtype: str,
    chunk: int,
    overlap: int,
    device: torch.device,
    source: str,
) -> None:
    """Disk-to-disk chunked enhancement of a 16 kHz file: memory bounded by one chunk; no file on error."""
    with sf.SoundFile(str(src)) as fin, atomic_path(dst) as tmp:
        length = fin.frames
        if length == 0:
            raise AudioError(f"{src}: empty audio (0 samples)")

        def read(start: int, end: int) -> torch.Tensor:
            fin.seek(start)
            block = fin.read(end - start, dtype="float32", always_2d=True).mean(axis=1)
            if not np.all(np.isfinite(block)):
                raise AudioError(f"{src}: NaN/inf samples; the file is corrupt")
            return torch.from_numpy(block)[None]

        def process(seg: torch.Tensor) -> torch.Tensor:
            return check_finite_output(model(seg.to(device)[None]), source).reshape(1, -1).cpu()

        clipped = 0
        container, stored = output_format(dst, subtype)
        with sf.SoundFile(str(tmp), "w", SAMPLE_RATE, 1, subtype=stored, format=container) as fout:
            for piece in overlap_add(read, length, process, chunk, overlap):
                arr = piece[0].numpy()
                if subtype.startswith("PCM"):
                    clipped += int(np.count_nonzero(np.abs(arr) > 1.0))
                    arr = np.clip(arr, -1.0, 1.0)
                fout.write(arr)
    if clipped:
        warnings.warn(f"{dst}: {clipped} samples clipped to [-1, 1]", stacklevel=3)


def _plan(in_path: Path, out_path: Path) -> list[tuple[Path, Path]]:
    """(input, output) file pairs for a file or a folder (recursive; folder structure mirrored)."""
    if not in_path.exists():
        raise AudioError(f"{in_path}: no such file or folder")
    if in_path.is_dir():
        files = sorted(p for p in in_path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise AudioError(f"{in_path}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
        if out_path.exists() and not out_path.is_dir():
            raise AudioError(f"{out_path}: input is a folder, so the output must be a folder too")
        return [(f, out_path / f.relative_to(in_path)) for f in files]
    if out_path.is_dir():
        return [(in_path, out_path / in_path.name)]
    return [(in_path, out_path)]


def enhance_path(
    in_path: str | Path,
    out_path: str | Path,
    checkpoint: str | Path | torch.nn.Module,
    subtype: str = "PCM_16",
    chunk_seconds: float | None = 10.0,
    overlap_seconds: float = 0.5,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> EnhanceResult:
    """Enhance a file or every audio file under a folder, writing 16 kHz mono files.

    Args:
        in_path: an audio file, or a folder (searched recursively for .wav/.flac/.ogg).
        out_path: the output file (.wav, .flac, .ogg or .mp3), or a folder (created; the input's sub-folders are
            mirrored). An existing folder given for a single input file receives a file of the same name.
        checkpoint: path of a mal checkpoint (or an already loaded model).
        subtype: ``"PCM_16"`` (clipped to [-1, 1], with a warning) or ``"FLOAT"`` (.wav only).
        chunk_seconds, overlap_seconds: chunked processing (see :func:`enhance`); 16 kHz inputs are streamed
            from disk to disk chunk by chunk, other rates are read whole, resampled to 16 kHz and chunked.
        device: ``None`` → CUDA when available, else CPU.

    Returns:
        :class:`EnhanceResult`. Outputs are written atomically. A folder run goes on past a file that cannot
        be enhanced, records why in ``failed`` and in ``<out_path>/enhance_summary.json``, and warns.

    Raises:
        AudioError: missing input, no audio in the folder, an output that would overwrite an input or that its
            format cannot hold, or (single file) a corrupt file; the message names it.
        ConfigError: an unknown or unavailable device.
        ModelDivergedError: (single file) the model's output is not finite.
    """
    from tqdm.auto import tqdm

    from mal.models import load

    in_path, out_path = Path(in_path), Path(out_path)
    plan = _plan(in_path, out_path)
    inputs = {src.resolve() for src, _ in plan}
    for _, dst in plan:
        if dst.resolve() in inputs:
            raise AudioError(f"{dst}: refusing to overwrite an input file; choose another output path")
        output_format(dst, subtype)
    if in_path.is_dir() and out_path.resolve() == in_path.resolve():
        raise AudioError(f"{out_path}: output folder is the input folder; choose another output path")
    run_device = resolve_device(str(device) if device is not None else "")
    if isinstance(checkpoint, torch.nn.Module):
        model, source = checkpoint, type(checkpoint).__name__
    else:
        model, source = load(checkpoint, map_location=run_device), str(checkpoint)
    model = model.to(run_device).eval()
    folder_run = in_path.is_dir()
    written: list[Path] = []
    failed: dict[Path, str] = {}
    for src, dst in tqdm(plan, desc="enhancing", unit="file", disable=not progress or len(plan) < 2):
        try:
            _enhance_file(model, src, dst, subtype, chunk_seconds, overlap_seconds, run_device, source)
        except Exception as err:  # in a folder run one bad file fails alone (recorded below), as in evaluate
            if not folder_run:
                raise
            failed[src] = f"{type(err).__name__}: {err}"
            continue
        written.append(dst)
    summary = None
    if folder_run:
        summary = atomic_write_json(
            out_path / SUMMARY_NAME,
            {
                "input": str(in_path),
                "checkpoint": source,
                "done": [str(dst.relative_to(out_path)) for dst in written],
                "failed": [{"input": str(src.relative_to(in_path)), "reason": why} for src, why in failed.items()],
            },
        )
        if failed:
            warnings.warn(f"{len(failed)} of {len(plan)} file(s) failed; see {summary}", stacklevel=2)
    return EnhanceResult(written=written, failed=failed, summary=summary)


def _enhance_file(
    model: torch.nn.Module,
    src: Path,
    dst: Path,
    subtype: str,
    chunk_seconds: float | None,
    overlap_seconds: float,
    device: torch.device,
    source: str,
) -> None:
    sr = getattr(model, "sample_rate", SAMPLE_RATE)
    try:
        info = sf.info(str(src))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{src}: cannot decode audio ({err}); the file is corrupt or not audio") from err
    if info.samplerate == sr and chunk_seconds is not None and chunk_seconds > 0:
        chunk = int(round(chunk_seconds * sr))
        overlap = min(int(round(overlap_seconds * sr)), chunk - 1)
        with torch.inference_mode():
            _enhance_stream(model, src, dst, subtype, chunk, overlap, device, source)
    else:
        wav, _ = read_audio(src, sample_rate=sr)
        out = enhance(model, wav, chunk_seconds, overlap_seconds, device, source=source)
        write_audio(dst, out, sr, subtype=subtype)
