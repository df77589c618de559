"""Tiny models and checkpoints for tests: a pointwise gain model, its diverged twin (finite weights, NaN/inf
output), and a file shaped like a checkpoint that runs code when unpickled."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from mal.models.base import Encoded, SEModel


class Gain(SEModel):
    """A pointwise model (out = 0.5·in): chunking must reproduce whole-input processing exactly."""

    name = "gain-test"

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Identity()
        self.decoder = torch.nn.Identity()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))

    def encode(self, wav: torch.Tensor) -> Encoded:
        return Encoded(layers=[wav], bottleneck=wav)

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        return enc.bottleneck * self.scale


class Diverged(Gain):
    """Finite weights, non-finite output (``0.5 · x · inf``): what a diverged network writes."""

    name = "diverged-test"

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        return super().decode(enc, length) * math.inf


class _WriteMarker:
    """Unpickles as ``Path(marker).write_text("ran")``: proof that loading the file ran its code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "ran"))


def write_malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A file shaped like a mal checkpoint whose ``model_state`` runs code when unpickled with full pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "mal-checkpoint/2", "model_class": "specmask", "model_state": _WriteMarker(marker)}, path)
    return path
