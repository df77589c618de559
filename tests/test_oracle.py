"""The oracle bounded magnitude mask: the ceiling row of every results table."""

from __future__ import annotations

import pytest
import torch

from mal.metrics import score
from mal.oracle import oracle_mask_estimate


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(32000) / 16000
    envelope = (torch.sin(2 * torch.pi * 3 * t) > 0).float()
    clean = 0.1 * envelope * sum(torch.sin(2 * torch.pi * 150 * k * t) / k for k in range(1, 8))
    noisy = clean + 0.05 * torch.randn(32000, generator=gen)
    return noisy[None, None], clean[None, None]


def test_perfect_on_clean_input_and_shapes_kept() -> None:
    _, clean = _pair()
    torch.testing.assert_close(oracle_mask_estimate(clean, clean), clean, atol=1e-5, rtol=0)
    for shape in [(32000,), (1, 32000)]:
        assert oracle_mask_estimate(clean.reshape(shape), clean.reshape(shape)).shape == shape


def test_never_amplifies_and_beats_the_noisy_input() -> None:
    noisy, clean = _pair()
    est = oracle_mask_estimate(noisy, clean)
    assert est.square().sum() <= noisy.square().sum()
    before = score(clean.numpy().ravel(), noisy.numpy().ravel(), metrics=["pesq_wb", "si_sdr"])
    after = score(clean.numpy().ravel(), est.numpy().ravel(), metrics=["pesq_wb", "si_sdr"])
    assert after["pesq_wb"] > before["pesq_wb"] + 1.0 and after["si_sdr"] > before["si_sdr"] + 5.0


def test_mismatched_shapes_are_refused() -> None:
    noisy, clean = _pair()
    with pytest.raises(ValueError, match="differ in shape"):
        oracle_mask_estimate(noisy, clean[..., :-1])
