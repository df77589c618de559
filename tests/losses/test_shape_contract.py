"""Every loss in mal.losses refuses mismatched or non-mono shapes with a ValueError naming both shapes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from loss_helpers import TinyUNet, ToyCorpus

from mal.losses import (
    DeepFeatureLoss,
    LossNetConfig,
    LossNetFeatureLoss,
    ModelAsLoss,
    MultiResolutionSTFTLoss,
    SISDRLoss,
    WaveformL1,
    WeightedSum,
    pretrain_lossnet,
)


@pytest.fixture(scope="module")
def lossnet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = LossNetConfig(steps=1, batch_size=2, segment_seconds=0.1, weight_pairs=2, progress=False, device="cpu")
    return pretrain_lossnet(ToyCorpus(per_class=1, seconds=0.2), cfg, tmp_path_factory.mktemp("ln") / "ln.pt")


def _deep_feature() -> DeepFeatureLoss:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DeepFeatureLoss("wavlm_base", layers=[0, 1], random_init=True)


FACTORIES: dict[str, Callable[[Path], torch.nn.Module]] = {
    "l1": lambda _: WaveformL1(),
    "mrstft": lambda _: MultiResolutionSTFTLoss(),
    "sisdr": lambda _: SISDRLoss(),
    "mal": lambda _: ModelAsLoss(TinyUNet(), layers="all"),
    "deep_feature": lambda _: _deep_feature(),
    "lossnet": lambda path: LossNetFeatureLoss(path),
    "weighted_sum": lambda _: WeightedSum({"l1": WaveformL1()}, {"l1": 1.0}),
}


def _call(loss: torch.nn.Module, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    out = loss(estimate, reference)
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_loss_enforces_the_shape_contract(name: str, lossnet_checkpoint: Path) -> None:
    loss = FACTORIES[name](lossnet_checkpoint)
    with pytest.raises(ValueError, match=r"estimate \(2, 1, 4000\) vs reference \(2, 1, 4001\)"):
        loss(torch.zeros(2, 1, 4000), torch.zeros(2, 1, 4001))
    with pytest.raises(ValueError, match=r"estimate \(2, 1, 4000\) vs reference \(2, 4000\)"):
        loss(torch.zeros(2, 1, 4000), torch.zeros(2, 4000))
    with pytest.raises(ValueError, match=r"estimate \(3, 1, 4000\) vs reference \(2, 1, 4000\)"):
        loss(torch.zeros(3, 1, 4000), torch.zeros(2, 1, 4000))
    with pytest.raises(ValueError, match=r"mono waveform batches.*\(2, 2, 4000\)"):
        loss(torch.zeros(2, 2, 4000), torch.zeros(2, 2, 4000))
    with pytest.raises(ValueError, match="empty input"):
        loss(torch.zeros(2, 0), torch.zeros(2, 0))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_both_layouts_give_the_same_scalar(name: str, lossnet_checkpoint: Path) -> None:
    loss = FACTORIES[name](lossnet_checkpoint)
    wav = 0.1 * torch.randn(2, 1, 4000)
    ref = 0.1 * torch.randn(2, 1, 4000)
    a, b = _call(loss, wav, ref), _call(loss, wav[:, 0], ref[:, 0])
    assert a.shape == () and b.shape == () and torch.isfinite(a)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
