"""Training segments: the cost of remixing and of each augmentation, side by side in one run.

One :class:`mal.data.SegmentDataset` per arm reads the same decoded pairs (synthetic speech-like clean signals
plus noise, written once to a temporary folder and cached in memory); the arms take turns item by item, so load
bursts hit them alike. Printed: the median time per 2 s segment, its ratio to plain remixing, and what a batch
of 8 such segments adds to the quick warm-up's 0.52 s training step.

    python -m benchmarks.bench_segments [--items 400] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from mal.data import SegmentDataset, open_dataset

# (label, SegmentDataset keywords): plain remixing first; every other row is relative to it.
ARMS: list[tuple[str, dict[str, Any]]] = [
    ("remix", {}),
    ("+ speech speed 0.1, tilt 0.5", {"speed_perturb": 0.1, "tilt": 0.5}),
    ("+ noise speed 0.3, tilt 0.9", {"noise_speed_perturb": 0.3, "noise_tilt": 0.9}),
    ("+ noise speed, tilt, second noise 0.5", {"noise_speed_perturb": 0.3, "noise_tilt": 0.9, "noise_mix": 0.5}),
    (
        "+ everything",
        {"speed_perturb": 0.1, "tilt": 0.5, "noise_speed_perturb": 0.3, "noise_tilt": 0.9, "noise_mix": 0.5},
    ),
]
QUICK_STEP_SECONDS = 0.52  # the quick warm-up's training step, batch 8 x 2 s, one thread (docs/model_quality.md)


def write_pairs(folder: Path, n: int = 64) -> None:
    """``n`` pairs of 3-5 s: a harmonic, syllable-modulated tone as speech, plus white noise."""
    rng = np.random.default_rng(0)
    for sub in ("clean", "noisy"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        t = np.arange(int(rng.uniform(3, 5) * 16000)) / 16000
        f0 = rng.uniform(100, 250)
        clean = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
        clean = 0.05 * clean / np.abs(clean).max()
        noisy = clean + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / "clean" / f"u{i:03d}.wav", clean.astype(np.float32), 16000, subtype="FLOAT")
        sf.write(folder / "noisy" / f"u{i:03d}.wav", noisy.astype(np.float32), 16000, subtype="FLOAT")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400, help="segments per arm")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args([] if argv is None else argv)  # the benchmarks runner calls main() with defaults
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        write_pairs(Path(tmp))
        pairs = open_dataset("folders", tmp, "")
        arms = [SegmentDataset(pairs, 2.0, seed=0, remix=True, **kw) for _, kw in ARMS]
        for arm in arms:  # decode and cache every pair, and warm the resampling kernels
            for i in range(len(arm)):
                arm[i]
        times: list[list[float]] = [[] for _ in arms]
        for k in range(args.items):
            index = k % len(pairs)
            for arm, bucket in zip(arms, times, strict=True):
                arm.set_epoch(1 + k // len(pairs))
                start = time.perf_counter()
                arm[index]
                bucket.append(time.perf_counter() - start)
    base = statistics.median(times[0])
    print(f"{'segments (2 s, one thread)':40s} {'ms/item':>8s} {'ratio':>6s} {'+ per quick step':>17s}")
    for (label, _), bucket in zip(ARMS, times, strict=True):
        med = statistics.median(bucket)
        share = 8 * med / QUICK_STEP_SECONDS
        print(f"{label:40s} {1e3 * med:8.2f} {med / base:6.2f} {100 * share:16.2f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
