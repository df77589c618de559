"""The encoder/decoder contract every enhancement model in ``mal`` keeps.

MAL needs to run a model's encoder on its own, on the enhanced output and on the clean reference, so a
model is split into two submodules, ``model.encoder`` and ``model.decoder`` (every parameter is named
``encoder.*`` or ``decoder.*``), and exposes ``encode()`` and ``decode()``:

    enc = model.encode(wav)             # wav (B, 1, T) → Encoded
    out = model.decode(enc, length=T)   # → (B, 1, T)
    model(wav) == model.decode(model.encode(wav), T)

A model that ``mal`` did not define can keep the contract too (docs/own_model.md shows how);
:func:`check_model_contract` and :func:`check_encoded` say precisely what is missing.
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


class ContractError(TypeError):
    """A model does not keep the encode()/decode() contract; the message says what is missing and how to fix it."""


def check_model_contract(model: nn.Module) -> None:
    """Refuse a model that MAL cannot use: it needs ``encode``/``decode`` methods and every parameter under the
    submodules ``model.encoder`` or ``model.decoder`` (the split ``frozen-fe`` freezes and the trainer reports).

    Raises:
        ContractError: naming the missing method or submodule, or the parameters outside the two halves.
    """
    kind = type(model).__name__
    for method in ("encode", "decode"):
        if not callable(getattr(model, method, None)):
            raise ContractError(
                f"{kind} has no {method}() method: see docs/own_model.md for the encode()/decode() contract"
            )
    for half in ("encoder", "decoder"):
        if not isinstance(getattr(model, half, None), nn.Module):
            raise ContractError(
                f"{kind} has no submodule model.{half}: keep the encoder's layers in model.encoder and the decoder's "
                "in model.decoder, so every parameter is named encoder.* or decoder.*"
            )
    stray = [name for name, _ in model.named_parameters() if not name.startswith(("encoder.", "decoder."))]
    if stray:
        shown = ", ".join(stray[:5]) + (f" and {len(stray) - 5} more" if len(stray) > 5 else "")
        raise ContractError(
            f"{kind}: parameters must be split into encoder.* and decoder.*, but {len(stray)} are not: {shown}. "
            "Move those layers into model.encoder or model.decoder (e.g. an nn.Sequential or nn.ModuleDict)."
        )


def check_encoded(enc: Any, kind: str, need_layers: bool) -> None:
    """Refuse what an ``encode()`` returned if MAL cannot compare it.

    Args:
        enc: the return value of ``model.encode(wav)``.
        kind: the model's class name, for the message.
        need_layers: the caller compares encoder blocks (``layers="all"`` or indices), so ``enc.layers`` must not
            be empty (otherwise "all" would silently compare the bottleneck alone).

    Raises:
        ContractError: ``enc`` is not an :class:`Encoded`, holds something other than tensors, or has no layers.
    """
    if not isinstance(enc, Encoded):
        raise ContractError(
            f"{kind}.encode() must return mal.models.Encoded(layers=[...], bottleneck=...); got {type(enc).__name__}"
        )
    if not isinstance(enc.bottleneck, torch.Tensor) or not all(isinstance(t, torch.Tensor) for t in enc.layers):
        raise ContractError(f"{kind}.encode(): Encoded.layers must be a list of tensors and bottleneck a tensor")
    if need_layers and not enc.layers:
        raise ContractError(
            f"{kind}.encode() returned no layers (Encoded.layers is empty): return the output of every encoder block "
            "in Encoded.layers, or compare the bottleneck alone with layers='bottleneck'"
        )


def as_batch(wav: torch.Tensor) -> torch.Tensor:
    """View ``(T,)``, ``(B, T)`` or ``(B, 1, T)`` as ``(B, 1, T)``; refuse anything else."""
    if wav.dim() == 1:
        return wav[None, None]
    if wav.dim() == 2:
        return wav[:, None]
    if wav.dim() == 3 and wav.shape[1] == 1:
        return wav
    raise ValueError(f"expected mono audio shaped (T,), (B, T) or (B, 1, T); got {tuple(wav.shape)}")
