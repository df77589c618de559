"""Inference speed and memory of enhancement on one CPU thread.

1. Real-time factor (processing seconds per audio second) of each default model (``mal.models.build(name)``) on
   10 s of audio, whole-input and chunked (target ≤ 0.01).
2. Chunked disk-to-disk enhancement (:func:`mal.enhance.enhance_path`) of a 1-minute and a 10-minute 16 kHz file,
   each in a fresh process: real-time factor, and peak resident memory above the process's level after the model
   is loaded. The 10-minute file must not need more memory than the 1-minute one.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import mal.models
from mal.enhance import enhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from speech_signals import speech_like  # noqa: E402

SR = 16000


def rtf(model: torch.nn.Module, wav: torch.Tensor, chunk_seconds: float | None, repeats: int) -> float:
    enhance(model, wav[:SR], chunk_seconds)  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        enhance(model, wav, chunk_seconds)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / (wav.numel() / SR)


def write_long_file(path: Path, minutes: float, seed: int = 0) -> None:
    """Speech-like audio with white noise at ~10 dB, written block by block (never whole in memory)."""
    rng = np.random.default_rng(seed)
    block = speech_like(30.0, SR, seed=seed)
    total = int(minutes * 60 * SR)
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16") as fh:
        written = 0
        while written < total:
            n = min(block.size, total - written)
            noisy = block[:n] + 0.05 * rng.standard_normal(n)
            fh.write((0.8 * noisy / np.max(np.abs(noisy))).astype(np.float32))
            written += n


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _long_file_child(checkpoint: str, src: str, dst: str, chunk_seconds: float, queue) -> None:
    torch.set_num_threads(1)
    from mal.enhance import enhance_path

    model = mal.models.load(checkpoint)
    enhance(model, torch.zeros(int(chunk_seconds * SR)), chunk_seconds)  # allocate one chunk's working set
    base = _max_rss_mb()
    start = time.perf_counter()
    enhance_path(src, dst, model, chunk_seconds=chunk_seconds, progress=False)
    queue.put((time.perf_counter() - start, base, _max_rss_mb()))


def long_file(checkpoint: str, src: Path, dst: Path, chunk_seconds: float) -> tuple[float, float, float]:
    """(seconds, RSS after model load MB, peak RSS MB), measured in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_long_file_child, args=(checkpoint, str(src), str(dst), chunk_seconds, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length for the RTF table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0], help="long-file lengths")
    args = parser.parse_args(argv if argv is not None else [])
    torch.set_num_threads(1)

    wav = torch.from_numpy(speech_like(args.seconds, SR, seed=1)).float()
    print(f"Real-time factor on 1 CPU thread, {args.seconds:g} s input (median of {args.repeats}; target <= 0.01):")
    print(f"  {'model':10s} {'params':>9s} {'whole':>8s} {'chunked':>8s}")
    for name in mal.models.REGISTRY:
        model = mal.models.build(name).eval()
        whole = rtf(model, wav, None, args.repeats)
        chunked = rtf(model, wav, args.chunk_seconds / 2, args.repeats)
        print(f"  {name:10s} {mal.models.count_parameters(model):9d} {whole:8.4f} {chunked:8.4f}")

    print(f"\nChunked disk-to-disk enhancement ({args.chunk_seconds:g} s chunks, 0.5 s overlap), fresh process each:")
    print(f"  {'model':10s} {'length':>8s} {'RTF':>8s} {'RSS after load':>15s} {'peak RSS':>9s} {'growth':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for minutes in args.minutes:
            write_long_file(tmp / f"noisy_{minutes:g}min.wav", minutes)
        for name in mal.models.REGISTRY:
            ckpt = mal.models.save(mal.models.build(name), tmp / f"{name}.pt")
            for minutes in args.minutes:
                src = tmp / f"noisy_{minutes:g}min.wav"
                secs, base, peak = long_file(str(ckpt), src, tmp / "out.wav", args.chunk_seconds)
                print(f"  {name:10s} {minutes:6.1f} m {secs / (minutes * 60):8.4f} {base:12.0f} MB {peak:6.0f} MB "
                      f"{peak - base:5.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
