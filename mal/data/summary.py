"""What is in a built corpus: manifests as one table, durations per split and speaker, and a JSON summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mal.data.corpus import SPLITS, read_corpus_meta
from mal.data.errors import DataError


def corpus_frame(root: str | Path) -> pd.DataFrame:
    """Every split's manifest rows in one DataFrame (columns of ``MANIFEST_COLUMNS``; no audio is read).

    ``snr_db``, ``duration_s``, ``speech_level_dbfs`` and ``rt60_s`` are floats; ``split`` is an ordered category.
    """
    root = Path(root)
    meta = read_corpus_meta(root)
    frames = []
    for split in meta.get("splits", {}):
        path = root / split / "manifest.csv"
        if not path.is_file():
            raise DataError(f"{path}: missing (corpus.json lists split {split!r}); rebuild the corpus")
        frames.append(pd.read_csv(path, dtype={"room": "string", "speaker": "string", "language": "string"}))
    if not frames:
        raise DataError(f"{root}: the corpus has no splits")
    frame = pd.concat(frames, ignore_index=True)
    present = [s for s in SPLITS if s in set(frame["split"])]
    frame["split"] = pd.Categorical(frame["split"], categories=present, ordered=True)
    return frame


def duration_table(frame: pd.DataFrame, by: tuple[str, ...] = ("split", "speaker")) -> pd.DataFrame:
    """Utterance count, minutes and mean length (s) per group (default: per split and speaker)."""
    grouped = frame.groupby(list(by), observed=True)["duration_s"]
    table = pd.DataFrame(
        {"utterances": grouped.size(), "minutes": grouped.sum() / 60, "mean_seconds": grouped.mean()}
    ).round({"minutes": 2, "mean_seconds": 2})
    return table.reset_index()


def summarize_corpus(root: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Headline facts of a corpus: per split counts, hours, speakers, languages, noise types and SNRs.

    Args:
        root: corpus root.
        extra: merged in at top level (e.g. the wall time of this run).
    Returns:
        JSON-ready dict with ``profile``, ``seed``, ``content_hash``, ``build_seconds`` (of the build that made
        the corpus), ``splits`` ({split: {n, hours, minutes, n_speakers, speakers, languages, noise_types,
        snr_db}}) and ``totals``.
    """
    root = Path(root)
    meta = read_corpus_meta(root)
    frame = corpus_frame(root)
    splits: dict[str, Any] = {}
    for split, rows in frame.groupby("split", observed=True):
        snrs = rows["snr_db"].astype(float)
        levels = sorted(snrs.round(3).unique().tolist()) if snrs.nunique() <= 16 else None
        splits[str(split)] = {
            "n": int(len(rows)),
            "hours": round(float(rows["duration_s"].sum()) / 3600, 4),
            "minutes": round(float(rows["duration_s"].sum()) / 60, 2),
            "mean_seconds": round(float(rows["duration_s"].mean()), 3),
            "n_speakers": int(rows["speaker"].nunique()),
            "speakers": sorted(rows["speaker"].astype(str).unique().tolist()),
            "languages": sorted(rows["language"].astype(str).unique().tolist()),
            "noise_types": {str(k): int(v) for k, v in rows["noise_type"].value_counts().sort_index().items()},
            "snr_db": {"min": float(snrs.min()), "max": float(snrs.max()), "levels": levels},
            "rooms": int(rows["room"].dropna().nunique()),
        }
    out = {
        "root": str(root),
        "profile": meta.get("profile"),
        "seed": meta.get("seed"),
        "content_hash": meta.get("content_hash"),
        "build_seconds": meta.get("timings", {}).get("total_s"),
        "splits": splits,
        "totals": {
            "n": int(len(frame)),
            "hours": round(float(frame["duration_s"].sum()) / 3600, 4),
            "n_speakers": int(frame["speaker"].nunique()),
            "noise_types": sorted(frame["noise_type"].astype(str).unique().tolist()),
        },
        "n_excluded_source_files": len(meta.get("excluded", [])),
    }
    out.update(extra or {})
    return out


def sources_table(root: str | Path) -> pd.DataFrame:
    """Where the corpus's audio comes from: source, role, package, version, licence, credit and files used."""
    meta = read_corpus_meta(root)
    rows = [
        {
            "source": name,
            "role": f"{info.get('role')} ({'in-domain' if info.get('domain') == 'in' else 'out-of-domain'})",
            "noise_type": info.get("noise_type") or "",
            "package": info.get("package") or "generated",
            "version": info.get("version") or "",
            "licence": info.get("licence"),
            "credit": info.get("credit") or "",
            "files": info.get("n_files", 0),
        }
        for name, info in meta.get("sources", {}).items()
    ]
    return pd.DataFrame(rows)


def example_items(datasets: dict[str, Any], n: int, splits: tuple[str, ...] = ("test", "test_ood", "test_reverb")):
    """``n`` (dataset, index) pairs taken round-robin from the given splits (those present), for example plots."""
    present = [s for s in splits if s in datasets and len(datasets[s])]
    items: list[tuple[Any, int]] = []
    depth = 0
    while len(items) < n and any(depth < len(datasets[s]) for s in present):
        for s in present:
            if depth < len(datasets[s]) and len(items) < n:
                items.append((datasets[s], depth))
        depth += 1
    return items


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of :func:`summarize_corpus` output (for the CLI)."""
    lines = [
        f"corpus {summary['root']}  profile={summary['profile']} seed={summary['seed']} "
        f"hash={str(summary['content_hash'])[:12]} built in {summary['build_seconds']} s",
        f"{'split':<12}{'files':>7}{'minutes':>10}{'mean s':>8}{'speakers':>10}  noise types",
    ]
    for split, s in summary["splits"].items():
        types = ", ".join(f"{k} {v}" for k, v in s["noise_types"].items())
        lines.append(
            f"{split:<12}{s['n']:>7}{s['minutes']:>10.1f}{s['mean_seconds']:>8.2f}{s['n_speakers']:>10}  {types}"
        )
    return "\n".join(lines)
