"""Enhancement models with the ``encode()/decode()`` contract (see :mod:`mal.models.base`).

model = mal.models.build("specmask")      # or "waveunet", with hyperparameters as keywords
mal.models.save(model, "ckpt.pt")         # atomic; class name + hparams + state + mal version
model = mal.models.load("ckpt.pt")
"""

from __future__ import annotations

from mal.models.base import ContractError, Encoded, SEModel, as_batch, check_encoded, check_model_contract
from mal.models.registry import REGISTRY, build, count_macs, count_parameters, describe, load, save

__all__ = [
    "REGISTRY",
    "ContractError",
    "Encoded",
    "SEModel",
    "as_batch",
    "build",
    "check_encoded",
    "check_model_contract",
    "count_macs",
    "count_parameters",
    "describe",
    "load",
    "save",
]
