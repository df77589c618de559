"""MAL for a model mal did not define: wrap it through the encode()/decode() contract (docs/own_model.md) and train it.

``TinyNet`` stands for a researcher's own network: plain attributes, no encoder/decoder split, no ``encode()``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mal.losses import ModelAsLoss
from mal.models import ContractError, Encoded, SEModel


class TinyNet(nn.Module):
    """A convolutional encoder–decoder as a researcher might write it (not built for mal)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv1d(1, channels, 8, stride=4, padding=2), nn.PReLU())
        self.down2 = nn.Sequential(nn.Conv1d(channels, channels, 8, stride=4, padding=2), nn.PReLU())
        self.up2 = nn.Sequential(nn.ConvTranspose1d(channels, channels, 8, stride=4, padding=2), nn.PReLU())
        self.up1 = nn.ConvTranspose1d(channels, 1, 8, stride=4, padding=2)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.up1(self.up2(self.down2(self.down1(wav))))


class Wrapped(SEModel):
    """TinyNet under the contract: its layers regrouped into ``encoder`` and ``decoder``, the same weights."""

    name = "tinynet"

    def __init__(self, net: TinyNet) -> None:
        super().__init__()
        self.encoder = nn.ModuleList([net.down1, net.down2])
        self.decoder = nn.ModuleList([net.up2, net.up1])

    def encode(self, wav: torch.Tensor) -> Encoded:
        first = self.encoder[0](wav)
        return Encoded(layers=[first], bottleneck=self.encoder[1](first))

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        out = self.decoder[1](self.decoder[0](enc.bottleneck))
        return nn.functional.pad(out, (0, max(0, length - out.shape[-1])))[..., :length]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    clean = 0.3 * torch.sin(torch.linspace(0, 400, 1024)).repeat(4, 1, 1) * torch.rand(4, 1, 1)
    return clean + 0.1 * torch.randn_like(clean), clean


def test_wrapped_model_computes_what_the_original_does() -> None:
    net = TinyNet()
    model = Wrapped(net)
    noisy, _ = _batch()
    torch.testing.assert_close(model(noisy), net(noisy))
    assert {name.split(".")[0] for name, _ in model.named_parameters()} == {"encoder", "decoder"}


@pytest.mark.parametrize("variant", ["frozen", "frozen-fe"])
def test_wrapped_model_trains_with_model_as_loss(variant: str) -> None:
    model = Wrapped(TinyNet())
    loss_fn = ModelAsLoss(model, variant=variant, layers="all")
    noisy, clean = _batch()
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(noisy), clean)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]  # the feature distance to the clean reference falls
    assert set(loss_fn.last_stats) >= {"mal_dist_l0", "mal_dist_bottleneck", "mal_feat_var"}
    encoder_moved = any(not torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters(), strict=True))
    assert encoder_moved == (variant == "frozen")  # frozen-fe trains the decoder only


class Unsplit(Wrapped):
    """Keeps a trainable output gain outside the two halves."""

    def __init__(self, net: TinyNet) -> None:
        super().__init__(net)
        self.gain = nn.Parameter(torch.ones(1))


class NoLayers(Wrapped):
    def encode(self, wav: torch.Tensor) -> Encoded:
        return Encoded(layers=[], bottleneck=self.encoder[1](self.encoder[0](wav)))


class ReturnsTensor(Wrapped):
    def encode(self, wav: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.encoder[1](self.encoder[0](wav))


def test_contract_errors_say_what_to_change() -> None:
    noisy, clean = _batch()
    with pytest.raises(ContractError, match=r"split into encoder\.\* and decoder\.\*, but 1 are not: gain"):
        ModelAsLoss(Unsplit(TinyNet()))
    with pytest.raises(ContractError, match=r"TinyNet has no encode\(\) method"):
        ModelAsLoss(TinyNet())
    with pytest.raises(ContractError, match=r"encode\(\) returned no layers"):
        ModelAsLoss(NoLayers(TinyNet()), layers="all")(noisy, clean)
    # The bottleneck alone needs no layers.
    assert float(ModelAsLoss(NoLayers(TinyNet()), layers="bottleneck")(clean, clean)) == 0.0
    with pytest.raises(ContractError, match=r"must return mal\.models\.Encoded.*got Tensor"):
        ModelAsLoss(ReturnsTensor(TinyNet()))(noisy, clean)
