"""Training objectives. Every loss is an ``nn.Module`` called as ``loss(estimate, reference)``.

Waveforms are 16 kHz, shaped ``(B, T)`` or ``(B, 1, T)``; both arguments must have the same shape (else
``ValueError`` naming both); every loss returns a scalar tensor (the batch mean).
"""

from __future__ import annotations

from mal.losses.conventional import MultiResolutionSTFTLoss, SISDRLoss, WaveformL1, si_sdr
from mal.losses.model_as_loss import ModelAsLoss

__all__ = [
    "ModelAsLoss",
    "MultiResolutionSTFTLoss",
    "SISDRLoss",
    "WaveformL1",
    "si_sdr",
]
