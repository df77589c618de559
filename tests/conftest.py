"""Shared test settings: deterministic seeds and a small thread count (CI has 2 cores)."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - third-party code (pyroomacoustics, noisereduce) draws from the global RNG
    torch.manual_seed(0)
