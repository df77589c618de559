"""The full profile's CUDA check, in a few minutes: does every model × recipe train on this GPU, with AMP?

The full profile has never run on CUDA in CI (no GPU there). This script runs the code path of ``mal train``
(:class:`mal.training.loop.Trainer`: autocast, NaN checks, clipping, Adam) on synthetic batches of the full
profile's shape and reports, per model and recipe:

- that the loss and the gradient are finite under bf16 autocast, including the cuDNN RNN backward *through a
  frozen encoder* (MAL ``frozen`` / ``frozen-fe``; cuDNN refuses RNN backward in eval mode, so ModelAsLoss turns
  cuDNN off for a frozen recurrent encoder: this is where that would break);
- the median step time, steps/s and samples/s, the ratio to the same model's conventional step, and the peak
  GPU memory;
- the AMP speed-up: the conventional step with and without bf16 autocast, side by side.

    python -m benchmarks.gpu_check [--batch 32] [--seconds 4] [--repeats 10]   (make gpu-check)

Exit status 0 when every arm trained, 1 when one failed (it is named), 2 without CUDA. It writes nothing but a
temporary folder it removes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_train_step import interleaved_step_times, timing_trainer

# model name → hparams (the full profile's specmask reads real/imaginary input).
MODELS: dict[str, dict[str, Any]] = {"bandcrn": {}, "specmask": {"input": "ri"}, "waveunet": {}}
# recipe presets: the conventional step first (the ratio's reference), then the MAL variants that stress autograd.
RECIPES = ["conventional", "mal-frozen-all", "mal-frozen-fe", "mal-dynamic", "conventional-frozen-encoder"]


def check_model(name: str, hparams: dict[str, Any], args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Time every recipe on one model (interleaved), plus the conventional step without AMP; one row per arm."""
    arms = [(recipe, True) for recipe in RECIPES] + [("conventional", False)]
    trainers = []
    for i, (recipe, amp) in enumerate(arms):
        fields = {
            "recipe": recipe,
            "calibrate": {},  # calibration reads a corpus batch; the step's cost and numerics do not depend on it
            "model": {"name": name, "hparams": hparams},
            "amp": amp,
            "amp_dtype": "bfloat16",
        }
        trainers.append(timing_trainer(root / f"{name}-{i}", args, fields))
    cuda = trainers[0].device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = interleaved_step_times(trainers, args.batch, args.seconds, args.repeats, warmup_steps=2)
    rows = []
    for (recipe, amp), trainer, samples in zip(arms, trainers, times, strict=True):
        # One more step to read its logged values: finite loss and gradient under this arm's settings.
        noisy = 0.1 * torch.randn(args.batch, 1, int(args.seconds * 16000), device=trainer.device)
        values = trainer.train_step(noisy + 0.05 * torch.randn_like(noisy), noisy) or {}
        med = statistics.median(samples)
        rows.append(
            {
                "model": name,
                "recipe": recipe + ("" if amp else " (fp32)"),
                "step_s": med,
                "loss": values.get("loss", float("nan")),
                "grad_norm": values.get("grad_norm", float("nan")),
            }
        )
    reference = rows[0]["step_s"]
    for row in rows:
        row["ratio"] = row["step_s"] / reference
    rows[0]["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="segments per step (the full profile's)")
    parser.add_argument("--seconds", type=float, default=4.0, help="segment length (s, the full profile's)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (median reported)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    args = parser.parse_args([] if argv is None else argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on the GPU machine (make gpu-check)", file=sys.stderr)
        return 2
    args.device, args.threads = "cuda", 4
    props = torch.cuda.get_device_properties(0)
    print(
        f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB, capability {props.major}.{props.minor}; "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
        f"bf16 supported: {torch.cuda.is_bf16_supported()}"
    )
    print(f"batch {args.batch} × {args.seconds:g} s, median of {args.repeats} interleaved rounds, bf16 autocast\n")
    print(
        f"{'model':<10}{'recipe':<34}{'step s':>9}{'steps/s':>9}{'samples/s':>11}{'× conv':>8}{'loss':>10}{'grad':>9}"
    )
    failed = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in [m for m in args.models.split(",") if m]:
            try:
                rows = check_model(name, MODELS[name], args, Path(tmp))
            except Exception as exc:  # report the failing model and go on to the next: this is a check, not a run
                failed.append(name)
                print(f"{name:<10}FAILED: {type(exc).__name__}: {exc}")
                traceback.print_exc(limit=3)
                continue
            for r in rows:
                finite = all(math.isfinite(v) for v in (r["loss"], r["grad_norm"]))
                if not finite:
                    failed.append(f"{name}/{r['recipe']}")
                print(
                    f"{r['model']:<10}{r['recipe']:<34}{r['step_s']:>9.4f}{1 / r['step_s']:>9.1f}"
                    f"{args.batch / r['step_s']:>11.0f}{r['ratio']:>8.2f}{r['loss']:>10.4g}{r['grad_norm']:>9.3g}"
                    + ("" if finite else "  NOT FINITE")
                )
            print(f"{'':<10}peak GPU memory {rows[0]['peak_gib']:.2f} GiB")
    print(f"\n{time.perf_counter() - start:.0f} s; " + (f"FAILED: {failed}" if failed else "every arm trained"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
