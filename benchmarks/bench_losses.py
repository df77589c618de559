"""Training-step cost of each loss recipe relative to the conventional baseline (normalised L1 + MR-STFT).

One step = model forward, objective (total + breakdown), backward and an Adam update, on CPU. The feasibility
runs (docs/method.md) measured a MAL step at 1.47–1.70× a baseline step with a throwaway prototype; the issue's
target is ≤ 1.5×. Recipes take turns within each round so bursts of load on a shared machine hit all of them
alike; the median is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any

import torch

import mal.models
from mal.losses import LossConfig, build_objective

# (label, LossConfig overrides): the baseline first.
RECIPES: list[tuple[str, dict[str, Any]]] = [
    ("baseline l1+mrstft", {}),
    ("mal frozen bottleneck", {"mal": 1.0}),
    ("mal frozen all", {"mal": 1.0, "mal_layers": "all"}),
    ("mal frozen-fe all", {"mal": 1.0, "mal_layers": "all", "mal_variant": "frozen-fe"}),
    ("mal dynamic all", {"mal": 1.0, "mal_layers": "all", "mal_variant": "dynamic"}),
    ("mal dynamic all +enc", {"mal": 1.0, "mal_layers": "all", "mal_variant": "dynamic", "mal_encoder_grad": True}),
    ("deep wavlm cnn (rand)", {"deep_feature": 1.0, "deep_feature_random_init": True}),
]


def step_seconds(model_name: str, batch: int, seconds: float, repeats: int) -> list[float]:
    """Median seconds per training step for each recipe of :data:`RECIPES` on ``model_name`` (defaults)."""
    torch.manual_seed(0)
    noisy = 0.1 * torch.randn(batch, 1, int(seconds * 16000))
    clean = 0.8 * noisy
    reference = mal.models.build(model_name)
    setups = []
    for _, overrides in RECIPES:
        model = mal.models.build(model_name)
        model.load_state_dict(reference.state_dict())
        model.train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the random-init deep feature warning
            objective = build_objective(LossConfig.from_params(overrides), model)
        optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        setups.append((model, objective, optimiser))

    def step(model: torch.nn.Module, objective: torch.nn.Module, optimiser: torch.optim.Optimizer) -> None:
        total, _ = objective(model(noisy), clean)
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()

    times: list[list[float]] = [[] for _ in setups]
    for setup in setups:
        step(*setup)  # warm-up
    for _ in range(repeats):
        for setup, samples in zip(setups, times, strict=True):
            start = time.perf_counter()
            step(*setup)
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["specmask", "waveunet"], help="registered model names")
    parser.add_argument("--batch", type=int, default=4, help="items per step")
    parser.add_argument("--seconds", type=float, default=2.0, help="item length in seconds")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per recipe (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args([] if argv is None else argv)
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        results = {name: step_seconds(name, args.batch, args.seconds, args.repeats) for name in args.models}
    finally:
        torch.set_num_threads(previous)
    print(
        f"CPU training step (forward + loss + backward + Adam), {args.threads} thread(s), batch {args.batch} × "
        f"{args.seconds:g} s, median of {args.repeats}; × = relative to the baseline of the same model"
    )
    header = f"{'recipe':<24}" + "".join(f"{name + ' s':>14}{'×':>7}" for name in args.models)
    print(header)
    print("-" * len(header))
    for i, (label, _) in enumerate(RECIPES):
        cells = "".join(f"{results[n][i]:>14.3f}{results[n][i] / results[n][0]:>7.2f}" for n in args.models)
        print(f"{label:<24}{cells}")


if __name__ == "__main__":
    main()
