"""Noisy/clean pair datasets: the mal-offline corpus and the standard corpora users bring.

One entry point, :func:`open_dataset`, returns a :class:`PairDataset` whose item ``i`` is
``(noisy (1, T) float32, clean (1, T) float32, meta dict)`` at 16 kHz. ``meta`` always holds ``id``, ``dataset``
and ``split``, and where the layout tells them ``speaker``, ``language``, ``prompt``, ``noise_type``,
``noise_source``, ``snr_db`` (float) and ``room``.

Layouts (pairing rules follow each corpus's own naming):

* ``mal-offline``: ``<root>/<split>/manifest.csv`` (see :mod:`mal.data.corpus`).
* ``voicebank-demand``: ``clean_trainset_28spk_wav/`` + ``noisy_trainset_28spk_wav/`` and ``clean_testset_wav/``
  + ``noisy_testset_wav/`` (48 kHz, same file name ``pNNN_MMM.wav`` in both). Splits: ``train`` (28 speakers
  minus p286 and p287), ``valid`` (p286, p287, the common hold-out), ``train_all`` and ``test``. The 56-speaker
  train folders are used when the 28-speaker ones are absent.
* ``dns-synthetic``: DNS Challenge 2020 synthetic test, ``<root>/<split>/{clean,noisy}/`` with split
  ``no_reverb`` or ``with_reverb`` (``test`` means ``no_reverb``); clean ``clean_fileid_N.wav`` pairs with the
  noisy file ending in ``fileid_N.wav``. ``root`` may be the ``synthetic`` folder or any parent of
  ``test_set/synthetic``.
* ``ears-wham``: ``<root>/<split>/{clean,noisy}/<speaker>/``; noisy ``<id>_<snr>dB.wav`` pairs with clean
  ``<id>.wav``.
* ``folders``: ``<root>/<split>/{clean,noisy}/`` (or ``<root>/{clean,noisy}/`` when there is no split folder),
  paired by identical relative path.

Fix-ups and errors (never a silent skip):

* Another sample rate is resampled to 16 kHz. Corpora known to be 48 kHz say so once when opened; any other
  unexpected rate warns per file.
* Stereo is averaged to mono with a warning (``mal.audio.read_audio``).
* Corrupt, empty or NaN files raise :class:`mal.audio.AudioError` naming the file. Silent files raise too unless
  ``allow_silent=True`` (metrics against a silent reference are undefined).
* A clean/noisy length mismatch raises, unless ``length_mismatch="trim"``, which cuts both to the shorter length
  with a warning naming the pair.
* A file with no partner, or a missing folder, raises a :class:`DataError` naming it when the dataset is opened.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from mal.audio import SAMPLE_RATE, AudioError, read_audio, resample
from mal.data.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
LengthRule = Literal["error", "trim"]


@dataclasses.dataclass(frozen=True)
class PairEntry:
    """One pair on disk and what is known about it without loading audio."""

    noisy: Path
    clean: Path
    meta: dict[str, Any]


class PairDataset(Dataset):
    """A list of noisy/clean file pairs; item ``i`` is ``(noisy (1, T), clean (1, T), meta)`` at 16 kHz.

    Args:
        entries: the pairs; every ``meta`` holds at least ``id``, ``dataset`` and ``split``.
        name: dataset name (for messages).
        native_rate: the sample rate this corpus is known to have. Files at that rate are resampled without a
            warning per file (opening the dataset said so once); any other rate than 16 kHz and this warns.
        length_mismatch: ``"error"`` (default) or ``"trim"`` (cut both to the shorter, with a warning).
        allow_silent: accept all-zero files (default: error naming the file).
        cache: keep decoded waveforms in memory after the first access (corpora here are small; each DataLoader
            worker holds its own copy).
    """

    def __init__(
        self,
        entries: Sequence[PairEntry],
        name: str,
        native_rate: int = SAMPLE_RATE,
        length_mismatch: LengthRule = "error",
        allow_silent: bool = False,
        cache: bool = False,
    ):
        if length_mismatch not in ("error", "trim"):
            raise ValueError(f"length_mismatch must be 'error' or 'trim', got {length_mismatch!r}")
        ids = [e.meta["id"] for e in entries]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise DataError(f"{name}: duplicate ids {dup}")
        self.entries = list(entries)
        self.name = name
        self.native_rate = native_rate
        self.length_mismatch = length_mismatch
        self.allow_silent = allow_silent
        self.cache = cache
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ids(self) -> list[str]:
        return [e.meta["id"] for e in self.entries]

    def meta(self, index: int) -> dict[str, Any]:
        return dict(self.entries[index].meta)

    def meta_frame(self):
        """Every item's meta as a pandas DataFrame (no audio is read), one row per item, in item order."""
        import pandas as pd

        rows = [{**e.meta, "noisy_path": str(e.noisy), "clean_path": str(e.clean)} for e in self.entries]
        return pd.DataFrame(rows)

    def index_of(self, item_id: str) -> int:
        for i, e in enumerate(self.entries):
            if e.meta["id"] == item_id:
                return i
        raise KeyError(f"{self.name}: no item with id {item_id!r}")

    def without(self, field: str, values: Sequence[str]) -> PairDataset:
        """A copy without the items whose ``meta[field]`` is one of ``values``.

        For held-out screening: ``without("speaker", ["June"])`` trains on every voice but one, and
        ``without("noise_type", ["music"])`` on every noise type but one. A value no item has is an error (a typo
        would otherwise leave everything in).
        """
        present = {e.meta.get(field) for e in self.entries}
        unknown = sorted(set(values) - present)
        if unknown:
            known = sorted(str(s) for s in present if s is not None)
            raise DataError(f"{self.name}: no {field} {unknown} to leave out; the values are {known}")
        left_out = set(values)
        kept = [e for e in self.entries if e.meta.get(field) not in left_out]
        if not kept:
            raise DataError(f"{self.name}: leaving out {field} {sorted(values)} leaves no items")
        return PairDataset(
            kept,
            self.name,
            native_rate=self.native_rate,
            length_mismatch=self.length_mismatch,
            allow_silent=self.allow_silent,
            cache=self.cache,
        )

    def _read(self, path: Path) -> torch.Tensor:
        wav, sr = read_audio(path, sample_rate=None, mono="mix", allow_silent=True)
        if not self.allow_silent and not torch.any(wav):
            raise AudioError(f"{path}: audio is all zeros (silent); pass allow_silent=True to load it anyway")
        if sr != SAMPLE_RATE:
            if sr != self.native_rate:
                warnings.warn(f"{path}: resampled {sr} Hz -> {SAMPLE_RATE} Hz", stacklevel=3)
            wav = resample(wav, sr, SAMPLE_RATE)
        return wav.contiguous()

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(noisy (1, T), clean (1, T))`` of item ``index`` after the length rule."""
        if index in self._cache:
            return self._cache[index]
        e = self.entries[index]
        noisy, clean = self._read(e.noisy), self._read(e.clean)
        if noisy.shape[-1] != clean.shape[-1]:
            msg = (
                f"{self.name}: length mismatch for {e.meta['id']}: noisy {e.noisy} has {noisy.shape[-1]} samples, "
                f"clean {e.clean} has {clean.shape[-1]}"
            )
            if self.length_mismatch == "error":
                raise DataError(msg + " (open the dataset with length_mismatch='trim' to cut both to the shorter)")
            warnings.warn(msg + "; both trimmed to the shorter", stacklevel=2)
            n = min(noisy.shape[-1], clean.shape[-1])
            noisy, clean = noisy[..., :n].contiguous(), clean[..., :n].contiguous()
        if self.cache:
            self._cache[index] = (noisy, clean)
        return noisy, clean

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} items")
        noisy, clean = self.load_pair(index)
        return noisy, clean, self.meta(index)

    def __repr__(self) -> str:
        split = self.entries[0].meta.get("split") if self.entries else "?"
        return f"PairDataset({self.name!r}, split={split!r}, n={len(self)})"


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: missing folder ({what})")
    return path


def _audio_files(folder: Path, recursive: bool = True) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def _unpaired_error(name: str, what: str, items: list[str]) -> DataError:
    shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
    return DataError(f"{name}: {len(items)} {what}: {shown}")


def _pair_by_key(
    name: str,
    clean_files: list[Path],
    noisy_files: list[Path],
    clean_key: Callable[[Path], str],
    noisy_key: Callable[[Path], str],
) -> list[tuple[str, Path, Path]]:
    """Pair files whose keys match; every file must find exactly one partner."""
    clean_by: dict[str, Path] = {}
    for p in clean_files:
        k = clean_key(p)
        if k in clean_by:
            raise DataError(f"{name}: two clean files map to the same key {k!r}: {clean_by[k]} and {p}")
        clean_by[k] = p
    pairs, no_clean, seen = [], [], set()
    for p in noisy_files:
        k = noisy_key(p)
        if k not in clean_by:
            no_clean.append(str(p))
            continue
        if k in seen:
            raise DataError(f"{name}: two noisy files pair with clean {clean_by[k]} (key {k!r})")
        seen.add(k)
        pairs.append((k, p, clean_by[k]))
    if no_clean:
        raise _unpaired_error(name, "noisy files without a clean partner", no_clean)
    no_noisy = [str(p) for k, p in clean_by.items() if k not in seen]
    if no_noisy:
        raise _unpaired_error(name, "clean files without a noisy partner", no_noisy)
    if not pairs:
        raise DataError(f"{name}: no audio files found")
    return sorted(pairs)


# ---------------------------------------------------------------------------------------------------------------
# Layouts


def _open_mal_offline(root: Path, split: str, **kw: Any) -> PairDataset:
    from mal.data.corpus import iter_manifest, read_corpus_meta

    read_corpus_meta(root)  # clear error when root is not a corpus
    entries = []
    for row in iter_manifest(root, split):
        meta: dict[str, Any] = {
            "id": row["id"],
            "dataset": "mal-offline",
            "split": split,
            "speaker": row["speaker"],
            "language": row["language"],
            "prompt": row["prompt"],
            "speech_source": row["speech_source"],
            "noise_type": row["noise_type"],
            "noise_source": row["noise_source"],
            "snr_db": float(row["snr_db"]),
            "speech_level_dbfs": float(row["speech_level_dbfs"]),
            "room": row["room"] or None,
            "rt60_s": float(row["rt60_s"]) if row["rt60_s"] else None,
            "duration_s": float(row["duration_s"]),
        }
        entries.append(PairEntry(root / row["noisy"], root / row["clean"], meta))
    if not entries:
        raise DataError(f"{root / split / 'manifest.csv'}: no rows")
    return PairDataset(entries, f"mal-offline/{split}", **kw)


VOICEBANK_VALID_SPEAKERS = ("p286", "p287")
_VB_TRAIN_DIRS = ("trainset_28spk_wav", "trainset_56spk_wav", "trainset_wav")


def _open_voicebank(root: Path, split: str, **kw: Any) -> PairDataset:
    if split not in ("train", "valid", "train_all", "test"):
        raise DataError(f"voicebank-demand: split must be train, valid, train_all or test, got {split!r}")
    if split == "test":
        suffix = "testset_wav"
    else:
        found = [d for d in _VB_TRAIN_DIRS if (root / f"clean_{d}").is_dir()]
        if not found:
            raise DataError(
                f"{root}: missing folder clean_trainset_28spk_wav (or clean_trainset_56spk_wav); "
                "point root at the folder that holds the VoiceBank-DEMAND clean_*/noisy_* folders"
            )
        suffix = found[0]
    clean_dir = _require_dir(root / f"clean_{suffix}", "VoiceBank-DEMAND clean speech")
    noisy_dir = _require_dir(root / f"noisy_{suffix}", "VoiceBank-DEMAND noisy speech")
    pairs = _pair_by_key(
        "voicebank-demand", _audio_files(clean_dir, False), _audio_files(noisy_dir, False), _stem, _stem
    )
    entries = []
    for key, noisy, clean in pairs:
        speaker = key.split("_")[0]
        held_out = speaker in VOICEBANK_VALID_SPEAKERS
        if (split == "train" and held_out) or (split == "valid" and not held_out):
            continue
        meta = {"id": key, "dataset": "voicebank-demand", "split": split, "speaker": speaker, "language": "en"}
        entries.append(PairEntry(noisy, clean, meta))
    if not entries:
        raise DataError(f"voicebank-demand: no pairs for split {split!r} under {root}")
    _announce_rate("voicebank-demand", 48000)
    return PairDataset(entries, f"voicebank-demand/{split}", native_rate=48000, **kw)


_DNS_FILEID = re.compile(r"fileid_(\d+)$")
_DNS_NOISY = re.compile(r"^clnsp\d+_(?P<noise>.+?)_\d+_snr(?P<snr>-?\d+(?:\.\d+)?)_")


def _stem(p: Path) -> str:
    return p.stem


def _dns_key(p: Path) -> str:
    m = _DNS_FILEID.search(p.stem)
    if not m:
        raise DataError(f"{p}: DNS file name does not end in fileid_<N>.wav")
    return m.group(1)


def _open_dns(root: Path, split: str, **kw: Any) -> PairDataset:
    split = "no_reverb" if split == "test" else split
    if split not in ("no_reverb", "with_reverb"):
        raise DataError(f"dns-synthetic: split must be no_reverb, with_reverb or test, got {split!r}")
    candidates = [root / split, root / "synthetic" / split, root / "test_set" / "synthetic" / split]
    candidates += [root / "datasets" / "test_set" / "synthetic" / split]
    base = next((c for c in candidates if c.is_dir()), None)
    if base is None:
        raise DataError(f"dns-synthetic: missing folder {candidates[0]} (looked in {[str(c) for c in candidates]})")
    clean_dir = _require_dir(base / "clean", "DNS clean speech")
    noisy_dir = _require_dir(base / "noisy", "DNS noisy speech")
    pairs = _pair_by_key("dns-synthetic", _audio_files(clean_dir), _audio_files(noisy_dir), _dns_key, _dns_key)
    entries = []
    for key, noisy, clean in pairs:
        meta: dict[str, Any] = {"id": f"fileid_{key}", "dataset": "dns-synthetic", "split": split}
        m = _DNS_NOISY.match(noisy.stem)
        if m:
            meta["noise_type"] = m.group("noise")
            meta["snr_db"] = float(m.group("snr"))
        meta["room"] = "reverberant (DNS)" if split == "with_reverb" else None
        entries.append(PairEntry(noisy, clean, meta))
    return PairDataset(entries, f"dns-synthetic/{split}", **kw)


_EARS_NOISY = re.compile(r"^(?P<id>.+)_(?P<snr>-?\d+(?:\.\d+)?)dB$")


def _ears_noisy_key(p: Path) -> str:
    m = _EARS_NOISY.match(p.stem)
    if not m:
        raise DataError(f"{p}: EARS-WHAM noisy file name does not end in _<snr>dB.wav")
    return f"{p.parent.name}/{m.group('id')}"


def _open_ears_wham(root: Path, split: str, **kw: Any) -> PairDataset:
    base = _require_dir(root / split, f"EARS-WHAM split {split!r}")
    clean_dir = _require_dir(base / "clean", "EARS-WHAM clean speech")
    noisy_dir = _require_dir(base / "noisy", "EARS-WHAM noisy speech")
    pairs = _pair_by_key(
        "ears-wham",
        _audio_files(clean_dir),
        _audio_files(noisy_dir),
        lambda p: f"{p.parent.name}/{p.stem}",
        _ears_noisy_key,
    )
    entries = []
    for key, noisy, clean in pairs:
        speaker = key.split("/")[0]
        snr = float(_EARS_NOISY.match(noisy.stem).group("snr"))  # type: ignore[union-attr]
        meta = {"id": key.replace("/", "_"), "dataset": "ears-wham", "split": split, "speaker": speaker, "snr_db": snr}
        entries.append(PairEntry(noisy, clean, meta))
    _announce_rate("ears-wham", 48000)
    return PairDataset(entries, f"ears-wham/{split}", native_rate=48000, **kw)


def _open_folders(root: Path, split: str, **kw: Any) -> PairDataset:
    base = root / split if split and (root / split).is_dir() else root
    if not (base / "clean").is_dir() and not (base / "noisy").is_dir():
        raise DataError(f"{base}: missing folders clean/ and noisy/ (looked in {root / split} and {root})")
    clean_dir = _require_dir(base / "clean", "clean speech")
    noisy_dir = _require_dir(base / "noisy", "noisy speech")

    def rel_key(folder: Path) -> Callable[[Path], str]:
        return lambda p: p.relative_to(folder).with_suffix("").as_posix()

    pairs = _pair_by_key(
        f"folders:{base}", _audio_files(clean_dir), _audio_files(noisy_dir), rel_key(clean_dir), rel_key(noisy_dir)
    )
    entries = [
        PairEntry(noisy, clean, {"id": key.replace("/", "_"), "dataset": "folders", "split": split or "all"})
        for key, noisy, clean in pairs
    ]
    return PairDataset(entries, f"folders/{split}", **kw)


def _announce_rate(name: str, rate: int) -> None:
    # Once per opened dataset rather than once per file: the resampling is expected for this corpus.
    warnings.warn(f"{name} is stored at {rate} Hz; files are resampled to {SAMPLE_RATE} Hz on load", stacklevel=3)


DATASETS: dict[str, Callable[..., PairDataset]] = {
    "mal-offline": _open_mal_offline,
    "voicebank-demand": _open_voicebank,
    "dns-synthetic": _open_dns,
    "ears-wham": _open_ears_wham,
    "folders": _open_folders,
}


def open_dataset(
    name: str,
    root: str | Path,
    split: str,
    length_mismatch: LengthRule = "error",
    allow_silent: bool = False,
    cache: bool = False,
) -> PairDataset:
    """Open a noisy/clean pair dataset by layout name.

    Args:
        name: "mal-offline", "voicebank-demand", "dns-synthetic", "ears-wham" or "folders".
        root: the dataset's root folder (see the module docstring for each layout).
        split: e.g. "train", "valid", "test", "test_ood", "test_reverb" (mal-offline); "no_reverb" (DNS).
        length_mismatch: "error" or "trim" (see :class:`PairDataset`).
        allow_silent: accept all-zero files instead of raising.
        cache: keep decoded audio in memory after first access.
    Returns:
        A :class:`PairDataset`; item ``i`` is ``(noisy (1, T), clean (1, T), meta)``.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: missing folder (root of the {name} dataset)")
    return DATASETS[name](root, split, length_mismatch=length_mismatch, allow_silent=allow_silent, cache=cache)
