"""Atomic file writes: nothing half-written is ever left under its final name.

Every writer goes to a temporary file in the same folder, flushes and fsyncs it, then renames it over the
target (``os.replace`` is atomic on POSIX), so a process killed mid-write leaves either the old file or the
new one. :func:`torch_load_checked` is the reading side for torch files: a clear error naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` only when the block finishes cleanly."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write JSON atomically; NaN is written as ``NaN`` (Python's json accepts it back)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def torch_load_checked(
    path: str | Path,
    kind: str,
    error: type[Exception],
    map_location: Any = "cpu",
    weights_only: bool = True,
    missing_hint: str = "",
) -> Any:
    """``torch.load(path)``, with a missing or unreadable file raised as ``error`` naming the file and its ``kind``.

    Args:
        path: the torch file.
        kind: what the file is, for messages (e.g. "checkpoint" -> "checkpoint not found: <path>").
        error: exception type to raise (the caller's own, e.g. CheckpointError).
        map_location, weights_only: passed to ``torch.load``.
        missing_hint: appended to the not-found message (e.g. how to create the file).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f"{kind} not found: {path}{missing_hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as err:  # torch raises several unrelated types for truncated/corrupt files
        raise error(f"{path}: unreadable {kind} ({type(err).__name__}: {err})") from err


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
