"""Tiny versions of every registered model, so that contract tests run in milliseconds."""

from __future__ import annotations

from typing import Any

import pytest

import mal.models

# Small but structurally complete: every block type, skip and the recurrent bottleneck are present.
TINY: dict[str, dict[str, Any]] = {
    "waveunet": {"depth": 2, "hidden": 4, "lstm_layers": 1},
    "specmask": {"depth": 2, "hidden": 4, "gru_hidden": 16},
    "bandcrn": {"channels": 4, "rnn_blocks": 1},
}
# How many entries Encoded.layers has for each tiny model (the blocks before the sequence model).
TINY_LAYERS: dict[str, int] = {"waveunet": 2, "specmask": 2, "bandcrn": 5}


@pytest.fixture
def tiny_layers() -> dict[str, int]:
    """Registered name → number of ``Encoded.layers`` of its tiny version."""
    return TINY_LAYERS


@pytest.fixture
def tiny_hparams() -> dict[str, dict[str, Any]]:
    """Registered name → hyperparameters of its tiny version."""
    return TINY


@pytest.fixture(params=sorted(TINY))
def tiny_model(request: pytest.FixtureRequest) -> mal.models.SEModel:
    """Each registered model, tiny, in eval mode."""
    return mal.models.build(request.param, **TINY[request.param]).eval()
