"""Build models by name, and save/load them as self-describing checkpoints.

A checkpoint is a ``torch.save`` dict with at least::

    {"format": "mal-checkpoint/2", "mal_version": str, "model_class": str, "hparams": dict,
     "model_state": state_dict, "config": dict | None, "sha256": str}

Training checkpoints add optimiser, scheduler, step and RNG state under further keys; :func:`load` reads
both kinds. Everything in it is a tensor or a plain value, so it is read with ``weights_only=True`` and a
file that needs more is refused unread. ``sha256`` is :func:`mal.io.payload_digest` of every other entry:
a file damaged on disk is refused rather than loaded with garbage weights. Format 1 (before both) is
refused with a message saying so.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

import mal
from mal.io import atomic_torch_save, payload_digest, torch_load_checked
from mal.models.base import SEModel

CHECKPOINT_FORMAT = "mal-checkpoint/2"
CHECKSUM_KEY = "sha256"
# Entries every checkpoint needs to rebuild its model, and their types.
MODEL_FIELDS: dict[str, type] = {"model_class": str, "hparams": dict, "model_state": dict}

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


def write_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Atomically write a checkpoint dict (from :func:`checkpoint_payload` plus extras) with its checksum."""
    body = {k: v for k, v in payload.items() if k != CHECKSUM_KEY}
    return atomic_torch_save({**body, CHECKSUM_KEY: payload_digest(body)}, path)


def save(model: SEModel, path: str | Path, config: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Atomically write ``model`` (and optional ``config`` / extra entries) to ``path``."""
    return write_checkpoint({**checkpoint_payload(model, config), **extra}, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint: safe unpickling, format, checksum, model fields and finite weights.

    Raises:
        CheckpointError: naming ``path`` and what is wrong with it.
    """
    path = Path(path)
    ckpt = torch_load_checked(path, "checkpoint", CheckpointError, map_location)
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt != CHECKPOINT_FORMAT:
        older = isinstance(fmt, str) and fmt.startswith("mal-checkpoint/")
        raise CheckpointError(
            f"{path}: written by an older mal ({fmt}, no checksum); retrain or re-save it with this version"
            if older
            else f"{path}: not a mal checkpoint (no format {CHECKPOINT_FORMAT!r})"
        )
    body = {k: v for k, v in ckpt.items() if k != CHECKSUM_KEY}
    if ckpt.get(CHECKSUM_KEY) != payload_digest(body):
        raise CheckpointError(
            f"{path}: checksum mismatch: the file was damaged or edited after it was written; do not use it "
            "(an earlier or a fresh checkpoint is needed)"
        )
    missing = [k for k in MODEL_FIELDS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete mal checkpoint: missing {missing}")
    wrong = [
        f"{k} is a {type(ckpt[k]).__name__}, not a {t.__name__}"
        for k, t in MODEL_FIELDS.items()
        if not isinstance(ckpt[k], t)
    ]
    if wrong:
        raise CheckpointError(f"{path}: malformed mal checkpoint: {'; '.join(wrong)}")
    bad = [
        k
        for k, v in ckpt["model_state"].items()
        if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise CheckpointError(
            f"{path}: the model diverged before this checkpoint was written: non-finite weights in "
            f"{len(bad)} tensor(s) ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
        )
    return ckpt


def load(path: str | Path, map_location: str | torch.device = "cpu") -> SEModel:
    """Rebuild the model stored in ``path`` (class from its name, then its weights), in eval mode."""
    ckpt = read_checkpoint(path, map_location)
    try:
        model = build(ckpt["model_class"], **ckpt["hparams"])
        model.load_state_dict(ckpt["model_state"])
    except (ValueError, TypeError, RuntimeError) as err:  # unknown class, bad hparams, mismatched weights
        raise CheckpointError(f"{path}: cannot rebuild its model ({type(err).__name__}: {err})") from err
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
