"""Helpers for the loss tests: speech-like signals and a tiny SEModel written against mal.models.base alone.

Running MAL on it shows the losses work for *any* model with ``encode()``/``decode()``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mal.models.base import Encoded, SEModel


class TinyUNet(SEModel):
    """Two strided conv blocks (one with batch norm), a GRU bottleneck and a transposed-conv decoder."""

    name = "tiny-unet"

    def __init__(self, hidden: int = 8) -> None:
        super().__init__(hidden=hidden)
        self.encoder = nn.ModuleDict(
            {
                "block0": nn.Sequential(nn.Conv1d(1, hidden, 8, stride=4, padding=2), nn.ReLU()),
                "block1": nn.Sequential(
                    nn.Conv1d(hidden, 2 * hidden, 8, stride=4, padding=2), nn.BatchNorm1d(2 * hidden), nn.ReLU()
                ),
                "rnn": nn.GRU(2 * hidden, 2 * hidden, batch_first=True),
            }
        )
        self.decoder = nn.ModuleDict(
            {
                "up1": nn.Sequential(nn.ConvTranspose1d(2 * hidden, hidden, 8, stride=4, padding=2), nn.ReLU()),
                "up0": nn.ConvTranspose1d(hidden, 1, 8, stride=4, padding=2),
            }
        )

    def encode(self, wav: torch.Tensor) -> Encoded:
        h0 = self.encoder["block0"](wav)
        h1 = self.encoder["block1"](h0)
        z, _ = self.encoder["rnn"](h1.transpose(1, 2))
        return Encoded(layers=[h0, h1], bottleneck=z.transpose(1, 2), context={"length": wav.shape[-1]})

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        h = self.decoder["up1"](enc.bottleneck + enc.layers[1])
        h = h[..., : enc.layers[0].shape[-1]] + enc.layers[0]
        out = self.decoder["up0"](h)
        out = nn.functional.pad(out, (0, max(0, length - out.shape[-1])))
        return out[..., :length]


def speechlike(batch: int = 2, seconds: float = 0.5, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """Harmonic tones with a syllable-rate envelope, ``(B, 1, T)``: enough structure for feature losses."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    out = []
    for _ in range(batch):
        f0 = 100 + 150 * torch.rand((), generator=gen).item()
        wav = sum(torch.sin(2 * math.pi * k * f0 * t + k) / k for k in range(1, 6))
        env = 0.5 + 0.5 * torch.sin(2 * math.pi * 4 * t + torch.rand((), generator=gen).item() * 6)
        out.append(0.1 * wav * env)
    return torch.stack(out)[:, None]


def add_noise(clean: torch.Tensor, snr_db: float, seed: int = 1) -> torch.Tensor:
    """``clean + g·n`` with white noise ``n`` scaled per item to ``snr_db``."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=gen)
    p_s = clean.square().mean(dim=-1, keepdim=True)
    p_n = noise.square().mean(dim=-1, keepdim=True)
    return clean + noise * torch.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))


class ToyCorpus(torch.utils.data.Dataset):
    """Items ``(noisy (1, T), clean (1, T), meta)`` like a mal corpus: harmonic-tone "speakers" in colour noise.

    Three speakers (f0 around 110, 220 and 440 Hz) × two noise types (white, brown), SNR 0–5 dB.
    """

    def __init__(self, per_class: int = 6, seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        t = torch.arange(int(seconds * sample_rate)) / sample_rate
        self.items: list[tuple[torch.Tensor, torch.Tensor, dict[str, str]]] = []
        for speaker, f0 in (("low", 110.0), ("mid", 220.0), ("high", 440.0)):
            for noise_type in ("white", "brown"):
                for _ in range(per_class):
                    f = f0 * (1 + 0.05 * torch.rand((), generator=gen).item())
                    phases = torch.rand(5, generator=gen) * 6
                    clean = 0.1 * sum(torch.sin(2 * math.pi * h * f * t + phases[h]) / h for h in range(1, 5))
                    white = torch.randn(t.shape, generator=gen)
                    noise = white if noise_type == "white" else torch.cumsum(white, 0)
                    noise = noise - noise.mean()
                    snr = 5 * torch.rand((), generator=gen).item()
                    noise = noise / noise.std() * clean.std() * 10 ** (-snr / 20)
                    meta = {"speaker": speaker, "noise_type": noise_type, "file_id": f"{speaker}-{noise_type}"}
                    self.items.append(((clean + noise)[None], clean[None], meta))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
        return self.items[index]
