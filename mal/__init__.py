"""mal: Model as Loss (MAL) for speech enhancement.

Submodules are imported lazily so that ``import mal`` stays cheap (the CLI and notebooks import only what
they use).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "analysis",
    "audio",
    "config",
    "data",
    "enhance",
    "evaluate",
    "losses",
    "metrics",
    "models",
    "pipeline",
    "plots",
    "train",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"mal.{name}")
    raise AttributeError(f"module 'mal' has no attribute {name!r}")


__all__ = ["__version__", *_SUBMODULES]
