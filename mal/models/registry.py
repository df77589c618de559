"""Build models by name, and save/load them as self-describing checkpoints.

A checkpoint is a ``torch.save`` dict with at least::

    {"format": "mal-checkpoint/1", "mal_version": str, "model_class": str, "hparams": dict,
     "model_state": state_dict, "config": dict | None}

Training checkpoints add optimiser, scheduler, step and RNG state under further keys; :func:`load` reads
both kinds.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

import mal
from mal.io import atomic_torch_save, torch_load_checked
from mal.models.base import SEModel

CHECKPOINT_FORMAT = "mal-checkpoint/1"

# name → "module:Class"; imported on first use so that building one model does not import the others.
REGISTRY: dict[str, str] = {
    "waveunet": "mal.models.waveunet:WaveUNet",
    "specmask": "mal.models.specmask:SpecMask",
    "bandcrn": "mal.models.bandcrn:BandCRN",
}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or was not written by mal."""


def model_class(name: str) -> type[SEModel]:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build(name: str, **hparams: Any) -> SEModel:
    """Instantiate the model registered as ``name`` with hyperparameters ``hparams``."""
    return model_class(name)(**hparams)


def checkpoint_payload(model: SEModel, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model part of a checkpoint (training adds its own keys beside these)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "mal_version": mal.__version__,
        "model_class": model.name,
        "hparams": dict(model.hparams),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config,
    }


def save(model: SEModel, path: str | Path, config: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Atomically write ``model`` (and optional ``config`` / extra entries) to ``path``."""
    return atomic_torch_save({**checkpoint_payload(model, config), **extra}, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    ckpt = torch_load_checked(path, "checkpoint", CheckpointError, map_location, weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a mal checkpoint (missing format {CHECKPOINT_FORMAT!r})")
    return ckpt


def load(path: str | Path, map_location: str | torch.device = "cpu") -> SEModel:
    """Rebuild the model stored in ``path`` (class from its name, then its weights), in eval mode."""
    ckpt = read_checkpoint(path, map_location)
    model = build(ckpt["model_class"], **ckpt["hparams"])
    model.load_state_dict(ckpt["model_state"])
    return model.eval()


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: SEModel, seconds: float = 1.0) -> int:
    """Multiply-accumulates of one forward pass over ``seconds`` of audio (conv, linear and RNN layers).

    Counted with forward hooks on a real forward pass, so it follows the model's actual shapes.
    """
    from mal.models.macs import count_forward_macs

    wav = torch.zeros(1, 1, int(round(seconds * model.sample_rate)))
    return count_forward_macs(model, wav)


def describe(model: SEModel) -> dict[str, Any]:
    """Name, hyperparameters, parameter counts (total, encoder, decoder) and MACs per second of audio."""
    return {
        "model": model.name,
        "hparams": dict(model.hparams),
        "params": count_parameters(model),
        "params_encoder": count_parameters(model.encoder),
        "params_decoder": count_parameters(model.decoder),
        "macs_per_second": count_macs(model),
    }
