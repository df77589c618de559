"""A persistent memo of metric values, keyed by the exact audio and settings that produced them.

Evaluations repeat work: the ``noisy`` and ``spectral-gating`` systems give the same audio in every run, a
notebook re-runs an evaluation the pipeline already did, and a crashed run restarts. DNSMOS and DistillMOS cost
about a second per file, so :func:`mal.metrics.score_many` can look values up here first.

A key is a SHA-256 over the reference and estimate samples (dtype, shape and bytes), the sample rate, the
metric options and :data:`CACHE_VERSION`; any change to the audio or the settings is a different key, so a
hit is always the value a fresh computation would give (values are stored after the 10-digit rounding). Bump
:data:`CACHE_VERSION` whenever a metric's implementation changes. Failures ("error: …" reasons) are not
stored. Storage is one SQLite file; concurrent readers and writers are safe.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

CACHE_VERSION = "mal-metrics/1"


def pair_key(clean: Any, estimate: Any, sample_rate: int, options: dict[str, Any]) -> str | None:
    """Key of an in-memory pair, or None for inputs that are not arrays (file paths are not cached)."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{sample_rate}|{json.dumps(options, sort_keys=True)}".encode())
    for x in (clean, estimate):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if not isinstance(x, np.ndarray):
            return None
        x = np.ascontiguousarray(x)
        h.update(f"|{x.dtype.str}|{x.shape}|".encode())
        h.update(x.tobytes())
    return h.hexdigest()


class ScoreCache:
    """SQLite-backed map (pair key, metric) → (value, reason)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS scores "
            "(key TEXT, metric TEXT, value REAL, reason TEXT, PRIMARY KEY (key, metric))"
        )
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, metrics: Iterable[str]) -> dict[str, tuple[float, str]]:
        """Stored ``metric → (value, reason)`` for ``key`` (only the metrics that are stored)."""
        metrics = list(metrics)
        marks = ",".join("?" * len(metrics))
        rows = self._db.execute(
            f"SELECT metric, value, reason FROM scores WHERE key = ? AND metric IN ({marks})", (key, *metrics)
        ).fetchall()
        found = {m: (float("nan") if v is None else float(v), r) for m, v, r in rows}
        self.hits += len(found)
        self.misses += len(metrics) - len(found)
        return found

    def put(self, key: str, rows: Iterable[tuple[str, float, str]]) -> None:
        """Store ``(metric, value, reason)`` rows; rows whose reason starts with ``error:`` are skipped."""
        keep = [(key, m, None if v != v else float(v), r) for m, v, r in rows if not r.startswith("error:")]
        if keep:
            self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", keep)
            self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        self._db.close()
