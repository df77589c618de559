"""ModelAsLoss on the registered models (tiny hyperparameters): the same guarantees as on the contract model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from loss_helpers import add_noise, speechlike

import mal.models
from mal.losses import ModelAsLoss

# Structurally complete but tiny: every block type, the skips and the recurrent bottleneck are present.
TINY: dict[str, dict[str, Any]] = {
    "waveunet": {"depth": 2, "hidden": 4, "lstm_layers": 1},
    "specmask": {"depth": 2, "hidden": 4, "gru_hidden": 16},
}
NAMES = sorted(TINY)


def _build(name: str, seed: int = 0) -> mal.models.SEModel:
    torch.manual_seed(seed)
    return mal.models.build(name, **TINY[name]).train()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("variant", ["frozen", "frozen-fe", "dynamic"])
def test_zero_for_identical_inputs(name: str, variant: str) -> None:
    for layers in ("bottleneck", "all"):
        loss = ModelAsLoss(_build(name), variant=variant, layers=layers)
        clean = speechlike()
        assert loss(clean, clean.clone()).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layers", ["bottleneck", "all"])
def test_grows_monotonically_as_snr_drops(name: str, layers: str) -> None:
    snrs = [30.0, 20.0, 10.0, 0.0, -10.0]
    values = torch.zeros(len(snrs))
    for seed in range(2):
        loss = ModelAsLoss(_build(name, seed), variant="frozen", layers=layers)
        clean = speechlike(seed=seed)
        with torch.no_grad():
            values += torch.tensor([loss(add_noise(clean, s, seed=seed + 5), clean).item() for s in snrs])
    assert bool((values.diff() > 0).all()), values


def _has_grad(params) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_per_variant(name: str) -> None:
    clean = speechlike()
    noisy = add_noise(clean, 5.0)

    model = _build(name)
    loss = ModelAsLoss(model, variant="frozen", layers="all")
    loss(model(noisy), clean).backward()
    assert _has_grad(model.encoder.parameters()) and _has_grad(model.decoder.parameters())
    assert all(p.grad is None for p in loss.snapshot.parameters())

    model = _build(name)
    loss = ModelAsLoss(model, variant="frozen-fe", layers="all")
    loss(model(noisy), clean).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    assert _has_grad(model.decoder.parameters())

    for encoder_grad in (False, True):
        model = _build(name)
        loss = ModelAsLoss(model, variant="dynamic", layers="all", encoder_grad=encoder_grad)
        estimate = noisy.clone().requires_grad_(True)
        loss(estimate, clean).backward()
        assert _has_grad([estimate])
        assert _has_grad(model.encoder.parameters()) == encoder_grad


@pytest.mark.parametrize("name", NAMES)
def test_frozen_snapshot_survives_an_optimiser_step(name: str) -> None:
    model = _build(name)
    loss = ModelAsLoss(model, variant="frozen", layers="all")
    before = {k: v.clone() for k, v in loss.snapshot.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    clean = speechlike()
    loss(model(add_noise(clean, 5.0)), clean).backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in loss.snapshot.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
