"""Training checkpoints: a model checkpoint (``mal.models.load`` reads it) plus everything resume needs.

Layout (a dict saved atomically by :func:`mal.io.atomic_torch_save`)::

    mal.models.registry.checkpoint_payload(model, config)   # format, mal_version, model_class, hparams,
                                                             # model_state, config (the TrainConfig dict)
    "training": {
        "stage", "step" (global step of the next update), "stage_step" (updates done in this stage),
        "stage_start" (global step where this stage began), "optimizer", "scheduler", "grad_scaler",
        "rng" {"python", "numpy", "torch", "cuda"}, "best" {"metric", "value", "step"},
        "skipped_steps", "train_seconds",
    }
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mal.io import atomic_torch_save
from mal.models.registry import CheckpointError, checkpoint_payload, read_checkpoint


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from (Python, NumPy, torch CPU and all CUDA devices)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - third-party code draws from the global RNG
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs restores the ones this machine has.
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


def save_training_checkpoint(path: str | Path, model: torch.nn.Module, config: dict[str, Any], **training: Any) -> Path:
    """Atomically write a model checkpoint with a ``"training"`` section (see the module docstring)."""
    payload = checkpoint_payload(model, config)
    payload["training"] = {**training, "rng": rng_state()}
    return atomic_torch_save(payload, path)


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint`; a plain model checkpoint is refused."""
    ckpt = read_checkpoint(path, map_location="cpu")
    if "training" not in ckpt:
        raise CheckpointError(
            f"{path}: a model-only checkpoint (no optimiser/scheduler state); stage 2 and resume need a "
            "training checkpoint such as <warm-up run_dir>/checkpoints/last.pt"
        )
    return ckpt
