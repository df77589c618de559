"""Training step time of the quick profile's model and loss candidates, side by side in one run.

Each arm (model + loss recipe) gets its own :class:`mal.training.loop.Trainer` (the code path of ``mal train``),
and the arms take turns on the same synthetic batch in every round, so load bursts on a shared machine hit them
alike. Reported: the median step time and its ratio to the old quick-profile warm-up (``specmask`` with
normalised L1 + MR-STFT), plus each model's 1-thread inference real-time factor on a 10 s input.

    python -m benchmarks.bench_model_step [--batch 8] [--seconds 2] [--threads 1] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_models import forward_seconds
from benchmarks.bench_train_step import interleaved_step_times, timing_trainer
from mal.training.loop import Trainer

OLD_LOSS: dict[str, Any] = {"l1": 1.0, "mrstft": 1.0}
SPECTRAL_LOSS: dict[str, Any] = {"l1": 0.0, "mrstft": 0.0, "spectral": 1.0, "sisdr": 0.01}

# (label, model name, hyperparameters, loss fields): the old quick warm-up first; the others are relative to it.
ARMS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("specmask + l1/mrstft", "specmask", {}, OLD_LOSS),
    ("specmask + spectral", "specmask", {}, SPECTRAL_LOSS),
    ("bandcrn-16 + l1/mrstft", "bandcrn", {"channels": 16}, OLD_LOSS),
    ("bandcrn-16 + spectral", "bandcrn", {"channels": 16}, SPECTRAL_LOSS),
    ("bandcrn-24 + spectral", "bandcrn", {"channels": 24}, SPECTRAL_LOSS),
    ("bandcrn-32 + spectral", "bandcrn", {"channels": 32}, SPECTRAL_LOSS),
]


def make_trainers(args: argparse.Namespace, root: Path) -> list[Trainer]:
    return [
        timing_trainer(root / f"r{i}", args, {"model": {"name": model, "hparams": hparams}, "loss": loss})
        for i, (_, model, hparams, loss) in enumerate(ARMS)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="segments per step (the quick profile's)")
    parser.add_argument("--seconds", type=float, default=2.0, help="segment length (s)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="training device")
    args = parser.parse_args([] if argv is None else argv)  # the benchmarks runner calls main() with defaults
    previous = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            trainers = make_trainers(args, Path(tmp))
            device = trainers[0].device
            samples = interleaved_step_times(trainers, args.batch, args.seconds, args.repeats)
            models = [trainer.model.eval() for trainer in trainers]
            wav = 0.1 * torch.randn(1, 1, 10 * 16000, device=device)
            rtf = [seconds / 10 for seconds in forward_seconds(models, wav, args.repeats)]
        finally:
            torch.set_num_threads(previous)
    medians = [statistics.median(s) for s in samples]
    where = f"{device}" + (f", {args.threads} thread(s)" if device.type == "cpu" else "")
    print(f"train step ({where}), batch {args.batch} × {args.seconds:g} s, median of {args.repeats} interleaved rounds")
    print(f"{'arm':<26}{'step s':>9}{'× old':>8}{'RTF (10 s, eval)':>18}")
    print("-" * 61)
    for (label, *_), med, factor in zip(ARMS, medians, rtf, strict=True):
        print(f"{label:<26}{med:>9.3f}{med / medians[0]:>8.2f}{factor:>18.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
