"""Tiny models and synthetic data for the analysis tests: cases where the right answer is known."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mal.models.base import Encoded, SEModel, as_batch

SR = 16000


class LinearEncoder(nn.Module):
    """Two strided linear convs (no nonlinearity) and a 1×1 "bottleneck": E(s + a·n) − E(s) = a·E(n) exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv1d(1, 4, 16, stride=8), nn.Conv1d(4, 6, 8, stride=4)])
        self.bottleneck = nn.Conv1d(6, 3, 1)

    def forward(self, wav: torch.Tensor) -> Encoded:
        layers, h = [], wav
        for block in self.blocks:
            h = block(h)
            layers.append(h)
        return Encoded(layers=layers, bottleneck=self.bottleneck(h), context={"input": wav})


class IdentityModel(SEModel):
    """An SEModel whose decoder returns its input unchanged (the encoder is real, so features exist)."""

    name = "identity-test"

    def __init__(self) -> None:
        super().__init__()
        self.encoder = LinearEncoder()
        self.decoder = nn.Identity()

    def encode(self, wav: torch.Tensor) -> Encoded:
        return self.encoder(as_batch(wav))

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        return self.decoder(enc.context["input"][..., :length])


class GainModel(IdentityModel):
    """Scales its input by ``gain`` each pass: a model whose output drifts under repeated enhancement."""

    name = "gain-test"

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        return enc.context["input"][..., :length] * self.gain


class NoiseAddingModel(IdentityModel):
    """Adds fresh white noise at a fixed level each pass: quality decays with k."""

    name = "noise-test"

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        x = enc.context["input"][..., :length]
        g = torch.Generator().manual_seed(int(x.abs().sum().item() * 1e3) % (2**31))
        return x + 0.05 * torch.randn(x.shape, generator=g).to(x.device)


def harmonic(seconds: float = 1.0, f0: float = 140.0, n_harmonics: int = 8, seed: int = 0) -> np.ndarray:
    """A voiced-speech stand-in: harmonics of ``f0`` with a slow amplitude envelope, peak 0.5."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, n_harmonics + 1))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def mixtures(snrs: list[float], same_clean: bool = True, seconds: float = 1.0) -> list:
    """Items ``(noisy (1, T), clean (1, T), meta)``: one fixed noise waveform scaled to each SNR."""
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(int(seconds * SR)).astype(np.float32)
    items = []
    for i, snr in enumerate(snrs):
        clean = harmonic(seconds, f0=140.0 if same_clean else 110.0 + 10 * i, seed=0 if same_clean else i)
        scale = np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr / 20)
        noisy = clean + scale * noise
        meta = {"id": f"f{i:02d}", "snr_db": snr, "noise_type": "white", "speaker": f"s{i % 2}", "language": "xx"}
        items.append((torch.from_numpy(noisy)[None], torch.from_numpy(clean)[None], meta))
    return items


def snr_scorer(clean, estimate, sample_rate: int = SR, metrics=("snr", "si_sdr")) -> dict[str, float]:
    """Plain SNR and SI-SDR (numpy), so the tests need no metric package."""
    clean = np.asarray(clean, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    out = {}
    if "snr" in metrics:
        out["snr"] = float(10 * np.log10(np.sum(clean**2) / max(np.sum((est - clean) ** 2), 1e-20)))
    if "si_sdr" in metrics:
        c, e = clean - clean.mean(), est - est.mean()
        target = np.dot(e, c) / np.dot(c, c) * c
        out["si_sdr"] = float(10 * np.log10(np.sum(target**2) / max(np.sum((e - target) ** 2), 1e-20)))
    return out
