"""Default data locations: ``data/`` under the working directory, or ``$MAL_DATA_DIR``.

    <data>/raw/debs/        Debian packages as downloaded (never modified once there)
    <data>/raw/npm/         npm tarballs
    <data>/raw/extracted/   the few members mal needs, unpacked once per package version
    <data>/cache/decoded/   decoded 16 kHz mono float32 copies of the source files (.npy)
    <data>/corpora/<profile>/  built corpora

Both ``raw/`` and ``corpora/`` are git-ignored; only recipes are committed.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "MAL_DATA_DIR"
RAW_DIR_ENV = "MAL_RAW_DIR"


def data_dir() -> Path:
    """``$MAL_DATA_DIR`` if set, else ``./data`` (relative to the current working directory)."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def raw_dir() -> Path:
    """Where downloaded packages live: ``$MAL_RAW_DIR`` if set, else ``<data>/raw``."""
    return Path(os.environ.get(RAW_DIR_ENV) or data_dir() / "raw")


def cache_dir_for(raw: Path) -> Path:
    """Decoded-audio cache that sits beside a raw folder (``<raw>/../cache``), so raw/ itself stays untouched."""
    return Path(raw).parent / "cache"


def corpus_dir(profile: str) -> Path:
    """Default root of a built corpus: ``<data>/corpora/<profile>``."""
    return data_dir() / "corpora" / profile
