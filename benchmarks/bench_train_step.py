"""Training-engine step time and samples/s: MAL recipes vs the conventional step, side by side in one run.

Each recipe gets its own :class:`mal.training.loop.Trainer` (the code path of ``mal train``: LR schedule,
autocast on CUDA, NaN checks, gradient clipping, Adam, loss statistics) on the default model, and the trainers
take turns on the same synthetic batch in every round, so load bursts on a shared machine hit them alike. The
median step time is reported with its ratio to the conventional step. The issue's target: a MAL step costs at
most 1.5× a conventional one.

    python -m benchmarks.bench_train_step [--model specmask] [--batch 8] [--seconds 2] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mal.device import resolve_device
from mal.train import TrainConfig
from mal.training.distributed import DistContext
from mal.training.loop import Trainer

# (label, recipe preset, LossConfig fields over the preset's): the conventional step first; every other row is
# relative to it.
RECIPES: list[tuple[str, str, dict[str, Any]]] = [
    ("conventional (l1+mrstft)", "conventional", {}),
    ("mal frozen bottleneck", "mal-frozen", {}),
    ("mal frozen all", "mal-frozen-all", {}),
    ("mal frozen-fe all", "mal-frozen-fe", {"mal_layers": "all"}),
    ("mal dynamic all", "mal-dynamic", {"mal_layers": "all"}),
]


def timing_trainer(run_dir: Path, args: argparse.Namespace, fields: dict[str, Any]) -> Trainer:
    """A :class:`Trainer` in training mode for step timing: ``fields`` (model, loss, …) over the settings every
    timed arm shares (batch and segment length, device, threads, no progress bar, a schedule that never ends)."""
    cfg = TrainConfig.from_params(
        {
            "run_dir": str(run_dir),
            "steps": 10_000,
            "data": {"batch_size": args.batch, "segment_seconds": args.seconds},
            "device": args.device,
            "threads": args.threads,
            "progress": False,
            **fields,
        }
    )
    trainer = Trainer(cfg, DistContext(), resolve_device(args.device), if_exists="overwrite")
    trainer.model.train()
    return trainer


def make_trainers(args: argparse.Namespace, root: Path) -> list[Trainer]:
    return [
        timing_trainer(
            root / f"r{i}",
            args,
            {
                "recipe": recipe,
                "calibrate": {},  # calibration reads a batch of the corpus; the step cost does not depend on it
                "model": {"name": args.model, "hparams": {}},
                "loss": loss,
                "compile": args.compile,
            },
        )
        for i, (_, recipe, loss) in enumerate(RECIPES)
    ]


def interleaved_step_times(
    trainers: list[Trainer], batch: int, seconds: float, repeats: int, warmup_steps: int = 1
) -> list[list[float]]:
    """Wall seconds of ``repeats`` training steps per trainer, the trainers taking turns within each round.

    Every trainer steps on the same synthetic batch (``batch`` × ``seconds`` of noise-like speech stand-in), after
    ``warmup_steps`` untimed steps each (allocator, autotuning, compilation). Taking turns makes load bursts from
    other processes hit every trainer alike, so the ratios between them hold on a shared machine.
    """
    device = trainers[0].device
    torch.manual_seed(0)
    clean = 0.1 * torch.randn(batch, 1, int(seconds * 16000), device=device)
    noisy = clean + 0.05 * torch.randn_like(clean)

    def timed_step(trainer: Trainer) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        trainer.train_step(noisy, clean)
        trainer.schedule.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for trainer in trainers:
        for _ in range(warmup_steps):
            timed_step(trainer)
    samples: list[list[float]] = [[] for _ in trainers]
    for _ in range(repeats):
        for trainer, times in zip(trainers, samples, strict=True):
            times.append(timed_step(trainer))
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="specmask", help="registered model name (default hyperparameters)")
    parser.add_argument("--batch", type=int, default=8, help="segments per step (the quick profile's)")
    parser.add_argument("--seconds", type=float, default=2.0, help="segment length (s)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="training device")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model forward")
    args = parser.parse_args([] if argv is None else argv)  # the benchmarks runner calls main() with defaults
    previous = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            trainers = make_trainers(args, Path(tmp))
            device = trainers[0].device
            samples = interleaved_step_times(trainers, args.batch, args.seconds, args.repeats, warmup_steps=2)
        finally:
            torch.set_num_threads(previous)
    medians = [statistics.median(s) for s in samples]
    where = f"{device}" + (f", {args.threads} thread(s)" if device.type == "cpu" else "")
    print(
        f"mal train step on {args.model} ({where}), batch {args.batch} × {args.seconds:g} s, "
        f"median of {args.repeats} interleaved rounds"
    )
    print(f"{'recipe':<28}{'step s':>10}{'samples/s':>12}{'× conv':>9}")
    print("-" * 59)
    for (label, _, _), med in zip(RECIPES, medians, strict=True):
        print(f"{label:<28}{med:>10.3f}{args.batch / med:>12.1f}{med / medians[0]:>9.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
