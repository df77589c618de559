"""Training checkpoints: a model checkpoint (``mal.models.load`` reads it) plus everything resume needs.

Layout (a dict saved atomically by :func:`mal.io.atomic_torch_save`)::

    mal.models.registry.checkpoint_payload(model, config)   # format, mal_version, model_class, hparams,
                                                             # model_state, config (the TrainConfig dict)
    "training": {
        "stage", "step" (global step of the next update), "stage_step" (updates done in this stage),
        "stage_start" (global step where this stage began), "optimizer", "scheduler", "grad_scaler",
        "rng" {"python", "numpy", "torch", "cuda"}, "best" {"metric", "value", "step"},
        "skipped_steps", "train_seconds", "init_sha256" (stage 2: SHA-256 of the warm-up checkpoint file),
    }

Everything is a tensor or a plain value (RNG states included), so the file is read with
``weights_only=True``; see :mod:`mal.models.registry` for the checksum.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mal.models.registry import CheckpointError, checkpoint_payload, read_checkpoint, write_checkpoint


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from (Python, NumPy, torch CPU and all CUDA devices).

    As tensors and plain values only: Python's Mersenne state is a tuple of ints, NumPy's key array becomes
    an int64 tensor (the 624 words of its MT19937 state).
    """
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - third-party code draws from the global RNG
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs restores the ones this machine has.
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


def save_training_checkpoint(path: str | Path, model: torch.nn.Module, config: dict[str, Any], **training: Any) -> Path:
    """Atomically write a model checkpoint with a ``"training"`` section (see the module docstring)."""
    payload = checkpoint_payload(model, config)
    payload["training"] = {**training, "rng": rng_state()}
    return write_checkpoint(payload, path)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint`; a plain model checkpoint is refused."""
    ckpt = read_checkpoint(path, map_location="cpu")
    if "training" not in ckpt:
        raise CheckpointError(
            f"{path}: a model-only checkpoint (no optimiser/scheduler state); stage 2 and resume need a "
            "training checkpoint such as <warm-up run_dir>/checkpoints/last.pt"
        )
    return ckpt
