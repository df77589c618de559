"""Figures. One module per area (data, training, evaluation, analysis); this file holds what they share.

Every figure is saved as PNG (for notebooks and the README) and SVG (for papers) under one stem, atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
    # Headless runs (papermill, CI) have no display; notebooks keep their inline backend.
    matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402

from mal.io import atomic_path  # noqa: E402

FORMATS = ("png", "svg")


def save_figure(fig: plt.Figure, stem: str | Path, formats: tuple[str, ...] = FORMATS, dpi: int = 120) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (atomic writes); returns the written paths."""
    stem = Path(stem)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        written.append(path)
    return written
