"""The encoder/decoder contract every enhancement model in ``mal`` keeps.

MAL needs to run a model's encoder on its own, on the enhanced output and on the clean reference, so a
model is split into two submodules, ``model.encoder`` and ``model.decoder`` (every parameter is named
``encoder.*`` or ``decoder.*``), and exposes ``encode()`` and ``decode()``:

    enc = model.encode(wav)             # wav (B, 1, T) → Encoded
    out = model.decode(enc, length=T)   # → (B, 1, T)
    model(wav) == model.decode(model.encode(wav), T)
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn


@dataclasses.dataclass
class Encoded:
    """What an encoder returns.

    Attributes:
        layers: output of every encoder block, in order (each ``(B, C_l, ...)``); the feature space MAL
            compares. For U-Nets these double as the decoder's skip connections.
        bottleneck: the innermost representation ``(B, C, T')`` after the sequence model.
        context: whatever the decoder needs that is not a feature (input scale, noisy STFT, padding).
            MAL never reads it.
    """

    layers: list[torch.Tensor]
    bottleneck: torch.Tensor
    context: dict[str, Any] = dataclasses.field(default_factory=dict)

    def features(self) -> list[torch.Tensor]:
        """Every feature map MAL may compare: the blocks, then the bottleneck (index -1)."""
        return [*self.layers, self.bottleneck]


class SEModel(nn.Module):
    """Base class: a 16 kHz speech-enhancement model with a separable encoder and decoder.

    Subclasses set ``self.encoder`` and ``self.decoder`` and implement :meth:`encode` and :meth:`decode`.
    Their ``__init__`` keyword arguments are the hyperparameters stored in checkpoints, so they must be
    plain literals (numbers, strings, bools).
    """

    sample_rate: ClassVar[int] = 16000
    name: ClassVar[str] = "base"

    encoder: nn.Module
    decoder: nn.Module

    def __init__(self, **hparams: Any) -> None:
        super().__init__()
        self.hparams: dict[str, Any] = dict(hparams)

    def encode(self, wav: torch.Tensor) -> Encoded:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Enhance ``wav`` ``(B, 1, T)`` → ``(B, 1, T)``; ``(B, T)`` and ``(T,)`` inputs are accepted too."""
        wav3 = as_batch(wav)
        out = self.decode(self.encode(wav3), wav3.shape[-1])
        return out.reshape(wav.shape)


def as_batch(wav: torch.Tensor) -> torch.Tensor:
    """View ``(T,)``, ``(B, T)`` or ``(B, 1, T)`` as ``(B, 1, T)``; refuse anything else."""
    if wav.dim() == 1:
        return wav[None, None]
    if wav.dim() == 2:
        return wav[:, None]
    if wav.dim() == 3 and wav.shape[1] == 1:
        return wav
    raise ValueError(f"expected mono audio shaped (T,), (B, T) or (B, 1, T); got {tuple(wav.shape)}")
