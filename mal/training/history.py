"""The run's history file: one JSON object per line (``history.jsonl``), train and validation rows.

Train rows (``"kind": "train"``) hold the means over the last ``log_every`` steps of the weighted total
``loss``, every loss term ``loss_<term>`` and every loss statistic (e.g. ``mal_feat_var``), the learning
rate ``lr``, ``grad_norm`` (the total gradient norm before clipping), the mean ``step_time_s`` and
``samples_per_s``, and how far the stage has moved the weights so far, ``weight_change`` =
‖θ − θ_start‖ / ‖θ_start‖ over all parameters (``weight_change_encoder`` / ``_decoder`` per half). Validation rows
(``"kind": "valid"``) hold the validation loss terms and metrics. Every row has the global ``step`` (the
number of updates done when it was written) and the ``stage``.

A process killed in the middle of a write can leave a torn last line; readers drop it with a warning (the
row is rewritten when the run resumes from its checkpoint). A damaged line anywhere else is an error.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from mal.io import atomic_write_text


class HistoryWriter:
    """Appends rows to ``path`` and flushes each one, so a killed run keeps what it logged."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after global ``step`` (a resumed run rewrites them from its checkpoint)."""
        if not self.path.is_file():
            return
        kept = [json.dumps(row) for row in read_rows(self.path) if row["step"] <= step]
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, row: dict[str, Any]) -> None:
        clean = {k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in row.items()}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(clean) + "\n")
            fh.flush()


def _finite_or_none(x: float) -> float | None:
    # JSON has no NaN; a missing value (metric undefined) is written as null and read back as NaN.
    return x if math.isfinite(x) else None


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a history file (JSON ``null`` kept as None); a torn last line is dropped with a warning.

    Raises:
        ValueError: a line other than the last is not valid JSON (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    rows = []
    for k, (n, line) in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if k < len(lines) - 1:
                raise ValueError(f"{path}:{n}: damaged history row ({err}); only the last row can be torn") from err
            warnings.warn(f"{path}:{n}: dropped a torn last row (a write was interrupted)", stacklevel=2)
    return rows


def read_history(path: str | Path) -> Any:
    """The history as a pandas DataFrame (null → NaN), one row per logged line."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "history.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no training history at {path}")
    return pd.DataFrame(read_rows(path))
