"""The oracle ceiling of a results table: the bounded magnitude mask computed from the clean reference.

    Ŝ = min(1, |S| / |X|) · X

``X`` is the noisy STFT and ``S`` the clean one. The mask keeps the noisy phase and never amplifies a bin, which is
what a real-valued bounded mask model could reach at best with perfect knowledge; a phase-aware model can in
principle exceed it. It needs the clean signal, so it is a reference row, never a system that could be deployed.
"""

from __future__ import annotations

import torch

from mal.models.base import as_batch
from mal.models.specmask import istft, stft

ORACLE_N_FFT = 512  # 32 ms Hann window at 16 kHz
ORACLE_HOP = 128  # 75 % overlap


@torch.no_grad()
def oracle_mask_estimate(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Apply the oracle bounded magnitude mask to ``noisy``.

    Shape: ``noisy``, ``clean`` ``(T,)``, ``(B, T)`` or ``(B, 1, T)``, identical → the estimate shaped like ``noisy``.

    Raises:
        ValueError: the two signals differ in shape.
    """
    if noisy.shape != clean.shape:
        raise ValueError(f"oracle mask: noisy {tuple(noisy.shape)} and clean {tuple(clean.shape)} differ in shape")
    x, s = stft(as_batch(noisy), ORACLE_N_FFT, ORACLE_HOP), stft(as_batch(clean), ORACLE_N_FFT, ORACLE_HOP)
    # A silent noisy bin gets mask 1 (it stays silent): the ratio is undefined there.
    mask = torch.where(x.abs() > 0, (s.abs() / x.abs().clamp_min(1e-12)).clamp(max=1.0), torch.ones_like(x.real))
    return istft(mask * x, ORACLE_N_FFT, ORACLE_HOP, noisy.shape[-1]).reshape(noisy.shape)
