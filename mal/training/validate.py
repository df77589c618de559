"""Validation on a small fixed subset: the loss terms always, metrics (SI-SDR, PESQ-WB) via mal.metrics.

The subset is the same for every run of a corpus (first ``valid_files`` files of the valid split), so runs
are comparable, and it is small so validation stays cheap on a laptop CPU (PESQ costs ~0.1 s per file).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


def score_items(
    cleans: Sequence[torch.Tensor], estimates: Sequence[torch.Tensor], metrics: Sequence[str]
) -> dict[str, float]:
    """Mean of each metric over files (NaN files excluded) and, as ``<metric>_files``, how many counted.

    Shape: each clean / estimate is ``(1, T)`` or ``(T,)`` at 16 kHz.
    """
    if not metrics:
        return {}
    from mal.metrics import score

    per_file: dict[str, list[float]] = {m: [] for m in metrics}
    for clean, est in zip(cleans, estimates, strict=True):
        s = score(
            clean.reshape(-1).cpu().numpy(), est.reshape(-1).cpu().numpy(), sample_rate=16000, metrics=list(metrics)
        )
        for m in metrics:
            per_file[m].append(float(s[m]))
    out: dict[str, float] = {}
    for m, values in per_file.items():
        finite = [v for v in values if math.isfinite(v)]
        out[m] = float(np.mean(finite)) if finite else math.nan
        out[f"{m}_files"] = len(finite)
    return out


@torch.no_grad()
def validate(
    model: nn.Module,
    objective: nn.Module,
    items: Sequence[tuple[torch.Tensor, torch.Tensor, str]],
    device: torch.device,
    metrics: Sequence[str],
    autocast: Any = None,
) -> dict[str, float]:
    """Enhance every validation file and score it.

    Args:
        model: the enhancement model (switched to eval mode here and back to train mode after).
        objective: the training objective; its terms are averaged over files (``loss``, ``loss_<term>``).
        items: ``[(noisy (1, T), clean (1, T), id), ...]``.
        device: where to run the model.
        metrics: ``mal.metrics.score`` names.
        autocast: a callable returning the autocast context the training forward uses (None = none).
    Returns:
        ``{"loss": ..., "loss_<term>": ..., "<metric>": ..., "<metric>_files": ...}``.
    """
    was_training = model.training
    model.eval()
    totals: list[float] = []
    terms: dict[str, list[float]] = {}
    cleans, estimates = [], []
    try:
        # The estimate's graph is not needed, and validation must not move any RNG the training steps use.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for noisy, clean, _ in items:
                x = noisy[None].to(device)
                y = clean[None].to(device)
                if autocast is not None:
                    with autocast():
                        est = model(x)
                else:
                    est = model(x)
                est = est.float()
                total, breakdown = objective(est, y)
                totals.append(float(total))
                for k, v in breakdown.items():
                    if k != "total":  # reported as "loss"
                        terms.setdefault(k, []).append(float(v))
                cleans.append(clean)
                estimates.append(est[0].cpu())
    finally:
        model.train(was_training)
    out: dict[str, float] = {"loss": float(np.mean(totals)) if totals else math.nan}
    out.update({f"loss_{k}": float(np.mean(v)) for k, v in terms.items()})
    out.update(score_items(cleans, estimates, metrics))
    return out
