"""Which settings change a training run's numbers? Same config and seed, different threads and CPU kernels.

Runs the quick study's warm-up for a few steps several times, each in a fresh process with one setting changed,
and prints a hash of the final weights, the largest weight difference to the reference run and the step time.
A run that matches the reference bit for bit shares its hash.

The settings are the ones that differ between two machines "of the same kind" without anyone choosing them:

- ``ATEN_CPU_CAPABILITY``: PyTorch's own vectorised kernels (AVX512 vs AVX2 builds of the same op);
- ``MKL_CBWR``: the code path MKL picks for the CPU it finds (BLAS: linear layers, GRU matmuls);
- ``ONEDNN_MAX_CPU_ISA``: oneDNN's convolution kernels;
- the number of torch threads (how a reduction is split).

    python -m benchmarks.reproducibility [--steps 30] [--corpus data/corpora/quick]

The corpus must exist (``python -m mal corpus build --profile quick``). docs/reproducibility.md has the results.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# The ISA pins that make the numbers the same on any x86-64 CPU with AVX2 (mal.device.PINNED_ISA's values).
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# label → (environment over the inherited one, torch threads).
ARMS: dict[str, tuple[dict[str, str], int]] = {
    "reference (1 thread, the CPU's own kernels)": ({}, 1),
    "the same again": ({}, 1),
    "ATEN_CPU_CAPABILITY=avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, 1),
    "MKL_CBWR=AVX2,STRICT": ({"MKL_CBWR": "AVX2,STRICT"}, 1),
    "ONEDNN_MAX_CPU_ISA=AVX2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 1),
    "2 threads": ({}, 2),
    "all three pins": (PINNED, 1),
    "all three pins, again": (PINNED, 1),
}
ENV_KEYS = tuple(PINNED)


def weights_digest(checkpoint: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """SHA-256 (first 12 hex digits) over the model's tensors in name order, and the tensors."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model_state"]
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].contiguous().numpy().tobytes())
    return h.hexdigest()[:12], state


def train_once(run_dir: Path, env: dict[str, str], threads: int, steps: int, corpus: str) -> float:
    """One warm-up of ``steps`` steps in a fresh process; returns its wall seconds."""
    clean_env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    cmd = [sys.executable, "-m", "mal", "train", "--study", "quick", "--run", "warmup-bandcrn", "--no-progress"]
    for key, value in {
        "run_dir": run_dir,
        "steps": steps,
        "threads": threads,
        "valid_every": 0,
        "data.valid_files": 0,
        "data.root": corpus,
    }.items():
        cmd += ["--set", f"{key}={value}"]
    start = time.perf_counter()
    subprocess.run(cmd, env={**clean_env, **env}, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="training steps per run")
    parser.add_argument("--corpus", default="data/corpora/quick", help="the quick corpus root")
    args = parser.parse_args([] if argv is None else argv)
    if not Path(args.corpus, "corpus.json").is_file():
        print(f"no corpus at {args.corpus}: python -m mal corpus build --profile quick", file=sys.stderr)
        return 2
    print(
        f"quick warm-up, {args.steps} steps per run, each in a fresh process; CPU capability of this machine: "
        f"{torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"{'setting':<46}{'weights':>14}{'max |Δw|':>12}{'s':>7}")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, (env, threads)) in enumerate(ARMS.items()):
            run_dir = Path(tmp) / f"r{i}"
            seconds = train_once(run_dir, env, threads, args.steps, args.corpus)
            digest, state = weights_digest(run_dir / "checkpoints" / "last.pt")
            reference = reference or state
            diff = max(float((state[k] - reference[k]).abs().max()) for k in state)
            print(f"{label:<46}{digest:>14}{diff:>12.2e}{seconds:>7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
