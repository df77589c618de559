"""Every loss in mal.losses refuses mismatched or non-mono shapes with a ValueError naming both shapes."""

from __future__ import annotations

import pytest
import torch
from loss_helpers import TinyUNet

from mal.losses import ModelAsLoss, MultiResolutionSTFTLoss, SISDRLoss, WaveformL1


def _losses() -> dict[str, torch.nn.Module]:
    return {
        "l1": WaveformL1(),
        "mrstft": MultiResolutionSTFTLoss(),
        "sisdr": SISDRLoss(),
        "mal": ModelAsLoss(TinyUNet(), layers="all"),
    }


@pytest.mark.parametrize("name", sorted(_losses()))
def test_mismatched_lengths_raise(name: str) -> None:
    loss = _losses()[name]
    with pytest.raises(ValueError, match=r"estimate \(2, 1, 4000\) vs reference \(2, 1, 4001\)"):
        loss(torch.zeros(2, 1, 4000), torch.zeros(2, 1, 4001))


@pytest.mark.parametrize("name", sorted(_losses()))
def test_no_broadcasting_between_layouts(name: str) -> None:
    loss = _losses()[name]
    with pytest.raises(ValueError, match=r"estimate \(2, 1, 4000\) vs reference \(2, 4000\)"):
        loss(torch.zeros(2, 1, 4000), torch.zeros(2, 4000))


@pytest.mark.parametrize("name", sorted(_losses()))
def test_multichannel_and_empty_inputs_raise(name: str) -> None:
    loss = _losses()[name]
    with pytest.raises(ValueError, match=r"mono waveform batches.*\(2, 2, 4000\)"):
        loss(torch.zeros(2, 2, 4000), torch.zeros(2, 2, 4000))
    with pytest.raises(ValueError, match="empty input"):
        loss(torch.zeros(2, 0), torch.zeros(2, 0))


@pytest.mark.parametrize("name", sorted(_losses()))
def test_both_layouts_accepted_and_scalar(name: str) -> None:
    loss = _losses()[name]
    wav = 0.1 * torch.randn(2, 1, 4000)
    ref = 0.1 * torch.randn(2, 1, 4000)
    a, b = loss(wav, ref), loss(wav[:, 0], ref[:, 0])
    assert a.shape == () and b.shape == ()
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
