"""The shape contract every loss in :mod:`mal.losses` enforces before computing anything."""

from __future__ import annotations

import torch


def check_pair(estimate: torch.Tensor, reference: torch.Tensor, loss_name: str) -> None:
    """Refuse an (estimate, reference) pair that is not two equally shaped mono waveform batches.

    Accepted: ``(B, T)`` or ``(B, 1, T)``, identical shapes, ``T > 0``. Broadcasting is never allowed: a
    ``(B, 1, T)`` estimate against a ``(B, T)`` reference would silently compare every item with every other.

    Raises:
        ValueError: naming the loss and both shapes.
    """
    if not isinstance(estimate, torch.Tensor) or not isinstance(reference, torch.Tensor):
        raise TypeError(
            f"{loss_name}: estimate and reference must be tensors; got {type(estimate).__name__} and "
            f"{type(reference).__name__}"
        )
    if estimate.shape != reference.shape:
        raise ValueError(
            f"{loss_name}: estimate and reference shapes differ: estimate {tuple(estimate.shape)} vs "
            f"reference {tuple(reference.shape)}"
        )
    ok = estimate.dim() == 2 or (estimate.dim() == 3 and estimate.shape[1] == 1)
    if not ok:
        raise ValueError(
            f"{loss_name}: expected mono waveform batches shaped (B, T) or (B, 1, T); got estimate "
            f"{tuple(estimate.shape)} and reference {tuple(reference.shape)}"
        )
    if estimate.shape[0] == 0 or estimate.shape[-1] == 0:
        raise ValueError(f"{loss_name}: empty input (estimate and reference shaped {tuple(estimate.shape)})")


def flat(wav: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` or ``(B, 1, T)`` → ``(B, T)`` (a view)."""
    return wav.reshape(wav.shape[0], wav.shape[-1])
