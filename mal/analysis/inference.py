"""How the analysis runs a model and scores its output (one place, so every study enhances and scores the same way)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from mal.models.base import SEModel

Scorer = Callable[..., Mapping[str, float]]
Enhancer = Callable[[SEModel, torch.Tensor], torch.Tensor]


# Inputs longer than this are enhanced in overlapping chunks (mal.enhance), so memory stays bounded for long files.
CHUNK_SECONDS = 10.0


def enhance_once(model: SEModel, wav: torch.Tensor) -> torch.Tensor:
    """Enhance one utterance ``(1, T)`` → ``(1, T)`` with ``mal.enhance.enhance`` on the model's device; CPU result."""
    from mal.enhance import enhance

    wav = torch.as_tensor(wav, dtype=torch.float32)
    if wav.dim() != 2 or wav.shape[0] != 1:
        raise ValueError(f"expected one mono utterance shaped (1, T); got {tuple(wav.shape)}")
    return enhance(model, wav.cpu(), chunk_seconds=CHUNK_SECONDS).float()


def default_scorer() -> Scorer:
    """``mal.metrics.score`` (imported late so that the analysis can be used with a custom scorer without it)."""
    from mal.metrics import score

    return score


def score_pair(
    scorer: Scorer, clean: torch.Tensor, estimate: torch.Tensor, metrics: Sequence[str], sample_rate: int
) -> dict[str, float]:
    """Score one (clean, estimate) pair of ``(1, T)`` tensors; every requested metric is present (NaN if undefined)."""
    if not metrics:
        return {}
    c = clean.reshape(-1).detach().cpu().numpy().astype(np.float32)
    e = estimate.reshape(-1).detach().cpu().numpy().astype(np.float32)
    got = scorer(c, e, sample_rate=sample_rate, metrics=list(metrics))
    missing = [m for m in metrics if m not in got]
    if missing:
        raise KeyError(f"the scorer did not return {missing} (it returned {sorted(got)})")
    return {m: float(got[m]) for m in metrics}
