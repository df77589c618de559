"""Learning-rate schedule as a pure function of the global step, so stage 2 can continue it exactly.

The schedule has one axis for the whole two-stage run: the warm-up covers global steps ``[0, W)`` and a
stage-2 branch ``[W, W + S)``. Restoring it means restoring the step counter, nothing else.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mal.training.config import OptimConfig


def lr_at(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Learning rate for the update made at global ``step`` (0-based).

    Args:
        step: global optimiser step.
        cfg: peak ``lr``, ramp length ``lr_warmup_steps``, ``schedule`` and ``min_lr_ratio``.
        total_steps: global step where the cosine reaches its floor; past it the floor is held.
    Returns:
        The learning rate.
    """
    if cfg.lr_warmup_steps > 0 and step < cfg.lr_warmup_steps:
        return cfg.lr * (step + 1) / cfg.lr_warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.lr_warmup_steps)
    progress = min(1.0, max(0.0, (step - cfg.lr_warmup_steps) / span))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class StepSchedule:
    """Sets the optimiser's learning rate from :func:`lr_at` before every update.

    Its only state is the global step of the next update (``state_dict()["step"]``) plus the schedule's
    length, which is fixed by the run that started it (the warm-up) and carried into stage 2.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int, step: int = 0) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.total_steps = int(total_steps)
        self.step_count = int(step)

    def apply(self) -> float:
        """Write the learning rate for the coming update into every param group; returns it."""
        lr = lr_at(self.step_count, self.cfg, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self) -> None:
        self.step_count += 1

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step_count, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        self.total_steps = int(state["total_steps"])
