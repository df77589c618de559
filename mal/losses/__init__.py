"""Training objectives. Every loss is an ``nn.Module`` called as ``loss(estimate, reference)``.

Waveforms are 16 kHz, shaped ``(B, T)`` or ``(B, 1, T)``; both arguments must have the same shape (else
``ValueError`` naming both); every loss returns a scalar tensor (the batch mean).

- conventional: :class:`WaveformL1`, :class:`MultiResolutionSTFTLoss`, :class:`CompressedSpectralLoss`,
  :class:`SISDRLoss`;
- Model as Loss: :class:`ModelAsLoss` (``frozen`` / ``frozen-fe`` / ``dynamic``, docs/method.md);
- deep feature losses: :class:`DeepFeatureLoss` (WavLM / wav2vec 2.0 / HuBERT through torchaudio) and
  :class:`LossNetFeatureLoss` (a small loss network ``mal`` pretrains offline with :func:`pretrain_lossnet`);
- recipes: :class:`LossConfig` → :func:`build_objective` → :class:`WeightedSum` (total + per-term breakdown),
  :func:`gradient_matched_weights` to give a term a fixed share of a gradient as long as the baseline's, and
  :func:`calibrate_weight` to start a term's value equal to the others.
"""

from __future__ import annotations

from mal.losses.combine import WeightedSum
from mal.losses.conventional import MultiResolutionSTFTLoss, SISDRLoss, WaveformL1, si_sdr
from mal.losses.deep_feature import DeepFeatureLoss
from mal.losses.lossnet import LossNet, LossNetConfig, LossNetFeatureLoss, load_lossnet, pretrain_lossnet
from mal.losses.model_as_loss import ModelAsLoss
from mal.losses.objective import (
    TERM_NAMES,
    LossConfig,
    build_objective,
    calibrate_weight,
    gradient_matched_weights,
)
from mal.losses.spectral import CompressedSpectralLoss

__all__ = [
    "CompressedSpectralLoss",
    "TERM_NAMES",
    "DeepFeatureLoss",
    "LossConfig",
    "LossNet",
    "LossNetConfig",
    "LossNetFeatureLoss",
    "ModelAsLoss",
    "MultiResolutionSTFTLoss",
    "SISDRLoss",
    "WaveformL1",
    "WeightedSum",
    "build_objective",
    "calibrate_weight",
    "gradient_matched_weights",
    "load_lossnet",
    "pretrain_lossnet",
    "si_sdr",
]
