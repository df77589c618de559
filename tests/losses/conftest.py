"""Fixtures for the loss tests (helpers live in loss_helpers.py so test modules can import them)."""

from __future__ import annotations

import pytest
import torch
from loss_helpers import TinyUNet


@pytest.fixture
def tiny_model() -> TinyUNet:
    """The contract-only tiny model (fresh, seeded), in training mode."""
    torch.manual_seed(0)
    return TinyUNet()
