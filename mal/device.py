"""The torch device a command runs on, parsed once: a typo or a missing GPU is a one-line error, not a traceback."""

from __future__ import annotations

import torch

from mal.config import ConfigError

AUTO = ("", "auto")  # CUDA when torch sees a GPU, else CPU


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``""``/``"auto"`` → ``cuda`` when available, else ``cpu``; otherwise any torch device string.

    Args:
        name: ``""``, ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ...
        local_rank: the GPU a bare ``"cuda"`` (or ``"auto"``) means: the process's rank under torchrun.

    Raises:
        ConfigError: an unknown device name, CUDA asked for where torch sees none, or a GPU index out of range.
    """
    if name in AUTO:
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is unavailable (torch sees no CUDA device); use cpu or auto")
        if device.index is None:
            return torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device
