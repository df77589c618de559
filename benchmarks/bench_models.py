"""Model sizes, MACs per second of audio, and 1-thread CPU forward time, side by side.

The real-time factor (RTF) is forward seconds per second of audio: the median of several timed forward passes
(eval mode, under ``torch.inference_mode`` as in ``mal.enhance``) on a 10 s input after one warm-up pass. The row
marked ``no_grad`` runs the default model under ``torch.no_grad`` instead, the path training and validation take
(PyTorch's own bidirectional GRU rather than the fused one of ``mal.models.bandcrn.run_gru_fused``), so the gain
of the fused inference path is measured side by side.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import mal.models

NO_GRAD = "bandcrn, no_grad"  # the default model on the training path: timed under torch.no_grad

# (label, registered name, hyperparameters): the defaults first, then the variants the studies use.
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("bandcrn", "bandcrn", {}),
    (NO_GRAD, "bandcrn", {}),
    ("waveunet", "waveunet", {}),
    ("specmask", "specmask", {}),
    ("bandcrn causal", "bandcrn", {"causal": True}),
    ("waveunet causal", "waveunet", {"causal": True}),
    ("specmask ri+complex", "specmask", {"input": "ri", "mask": "complex"}),
]


def forward_seconds(
    models: list[torch.nn.Module], wav: torch.Tensor, repeats: int, modes: list[Callable[[], Any]] | None = None
) -> list[float]:
    """Median wall time of ``model(wav)`` for each model over ``repeats`` rounds, after one warm-up run each.

    The models take turns within each round, so a burst of load from other processes hits all of them alike
    and the ratios stay fair on a shared machine.
    """
    times: list[list[float]] = [[] for _ in models]
    modes = modes or [torch.inference_mode] * len(models)
    for model, mode in zip(models, modes, strict=True):
        with mode():
            model(wav)
    for _ in range(repeats):
        for model, mode, samples in zip(models, modes, times, strict=True):
            with mode():
                start = time.perf_counter()
                model(wav)
                samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def measure(seconds: float = 10.0, repeats: int = 7, threads: int = 1) -> list[dict[str, Any]]:
    """One row per entry of :data:`MODELS`: parameter counts, MACs/s and forward RTF on ``threads`` CPU threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        wav = 0.1 * torch.randn(1, 1, int(seconds * 16000))
        models = [mal.models.build(name, **hparams).eval() for _, name, hparams in MODELS]
        modes = [torch.no_grad if label == NO_GRAD else torch.inference_mode for label, _, _ in MODELS]
        elapsed_all = forward_seconds(models, wav, repeats, modes)
        rows = []
        for (label, _, _), model, elapsed in zip(MODELS, models, elapsed_all, strict=True):
            info = mal.models.describe(model)
            rows.append(
                {
                    "model": label,
                    "params": info["params"],
                    "params_encoder": info["params_encoder"],
                    "params_decoder": info["params_decoder"],
                    "macs_per_second": info["macs_per_second"],
                    "rtf": elapsed / seconds,
                }
            )
        return rows
    finally:
        torch.set_num_threads(previous)


def format_table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    header = (
        f"{'model':<22}{'params':>10}{'encoder':>10}{'decoder':>10}{'GMAC/s':>9}{'RTF':>9}"
        f"{'× time':>8}{'× MACs':>8}{'GMAC/s run':>12}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['model']:<22}{row['params'] / 1e6:>9.3f}M{row['params_encoder'] / 1e6:>9.3f}M"
            f"{row['params_decoder'] / 1e6:>9.3f}M{row['macs_per_second'] / 1e9:>9.3f}{row['rtf']:>9.4f}"
            f"{row['rtf'] / base['rtf']:>8.2f}{row['macs_per_second'] / base['macs_per_second']:>8.2f}"
            f"{row['macs_per_second'] / row['rtf'] / 1e9:>12.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="input duration in seconds")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per model (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args([] if argv is None else argv)
    rows = measure(args.seconds, args.repeats, args.threads)
    print(
        f"CPU forward, {args.threads} thread(s), {args.seconds:g} s input, median of {args.repeats} "
        f"(RTF = forward seconds per second of audio; × columns relative to {rows[0]['model']}; "
        "GMAC/s run = achieved throughput)"
    )
    print(format_table(rows))


if __name__ == "__main__":
    main()
