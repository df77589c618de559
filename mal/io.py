"""Atomic file writes: nothing half-written is ever left under its final name.

Every writer goes to a temporary file in the same folder, flushes and fsyncs it, then renames it over the
target (``os.replace`` is atomic on POSIX), so a process killed mid-write leaves either the old file or the
new one. The final file gets the mode an ordinary ``open`` would give it (0666 less the umask), not the
0600 of the temporary file. A killed writer can leave its temporary file behind (``.<name>.<random>.tmp``);
:func:`remove_orphan_temps` deletes those, and writers of files that only one process writes call it.

:func:`torch_load_checked` is the reading side for torch files: always ``weights_only=True`` (unpickling an
arbitrary file runs whatever code it names), with a clear error naming the file. :func:`payload_digest` is the
checksum that checkpoints carry so that a damaged file is refused instead of loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    # os.umask can only be read by setting it; the lock keeps two threads from seeing each other's 0.
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; the result should look like open()'s
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


def read_json_or_empty(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file does not exist (a step that has not run yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def remove_orphan_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_path` writers left in ``folder``; returns them.

    Only call this where no other process is writing into ``folder`` at the same time (e.g. a run's own
    checkpoint folder when the run starts): a live writer's temporary file looks the same.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    orphans = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in orphans:
        p.unlink(missing_ok=True)
    return orphans


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
    missing_hint: str = "",
) -> Any:
    """``torch.load(path, weights_only=True)``, every failure raised as ``error`` naming the file and its ``kind``.

    Only tensors and plain containers/scalars are unpickled: a file that names anything else (a class, a
    function, a numpy array) is refused before any of it runs, since a checkpoint from someone else could
    otherwise execute code on this machine.

    Args:
        path: the torch file.
        kind: what the file is, for messages (e.g. "checkpoint" -> "checkpoint not found: <path>").
        error: exception type to raise (the caller's own, e.g. CheckpointError).
        map_location: passed to ``torch.load``.
        missing_hint: appended to the not-found message (e.g. how to create the file).
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f"{kind} not found: {path}{missing_hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(str(err))
        if "global" in detail.lower():  # weights_only met a name outside its allow-list: code, not data
            raise error(
                f"{path}: refused to load this {kind}: it names Python code ({detail}) and unpickling it could "
                "run that code. mal checkpoints hold only tensors and plain values; load files only from "
                "sources you trust"
            ) from err
        raise error(f"{path}: unreadable {kind} (UnpicklingError: {detail})") from err
    except Exception as err:  # torch raises several unrelated types for truncated/corrupt files
        raise error(f"{path}: unreadable {kind} ({type(err).__name__}: {err})") from err


def _unpickler_detail(text: str) -> str:
    """The one informative sentence of torch's long weights_only error (the rest is generic advice)."""
    _, found, rest = text.partition("WeightsUnpickler error:")
    detail = (rest if found else text).strip().split("\n\n")[0].strip()
    return detail.split(" was not an allowed global")[0][:200] or "unknown error"


def payload_digest(obj: Any) -> str:
    """SHA-256 of a nested structure of dicts, lists, tuples, tensors and scalars, independent of key order.

    Tensors contribute their dtype, shape and raw bytes; everything else its type and ``repr``. Used as
    the checksum a checkpoint carries over its own content.
    """
    h = hashlib.sha256()
    _digest_into(h, obj)
    return h.hexdigest()


def _digest_into(h: Any, obj: Any) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _digest_into(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)}".encode())
        for item in obj:
            _digest_into(h, item)
    else:
        h.update(f"S{type(obj).__name__}:{obj!r}".encode())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
