"""Build time of the mal-offline corpus per profile: cold (unpack + decode), warm (decode cache hot) and reuse.

Packages are taken from the raw folder (``$MAL_RAW_DIR`` or ``data/raw``; downloaded once if missing). A *cold*
build gets a fresh raw folder that links to the same archives, so unpacking and decoding are timed but the download
is not (it depends on the network, not on mal). The issue's target: quick builds in under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from mal.data import CorpusConfig, build_corpus, raw_dir
from mal.data.sources import archives_for, fetch_archive


def _linked_raw(source: Path, folder: Path, sources: tuple[str, ...]) -> Path:
    """A raw folder whose archives are symlinks to ``source``'s (downloading them there first if needed)."""
    for archive in archives_for(sources):
        real = fetch_archive(archive, source, progress=False).resolve()
        link = folder / archive.folder / archive.filename
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(real)
    return folder


def time_profile(profile: str, seed: int, raw: Path, work: Path) -> dict:
    cfg = CorpusConfig(profile=profile, seed=seed, root=str(work / f"{profile}-cold"))
    cold_raw = _linked_raw(raw, work / profile / "raw", cfg.source_names())  # own decode cache: <profile>/cache
    t = time.perf_counter()
    root = build_corpus(cfg, raw_dir=cold_raw, progress=False)
    cold = time.perf_counter() - t
    meta = json.loads((root / "corpus.json").read_text())
    t = time.perf_counter()
    build_corpus(cfg.replace(root=str(work / f"{profile}-warm")), raw_dir=cold_raw, progress=False)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    build_corpus(cfg, raw_dir=cold_raw, progress=False)
    reuse = time.perf_counter() - t
    warm_meta = json.loads((work / f"{profile}-warm" / "corpus.json").read_text())
    return {
        "cold": cold,
        "warm": warm,
        "reuse": reuse,
        "identical": warm_meta["content_hash"] == meta["content_hash"],
        "timings": meta["timings"],
        "minutes": sum(s["minutes"] for s in meta["splits"].values()),
        "files": sum(s["n"] for s in meta["splits"].values()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", nargs="+", default=["smoke", "quick"], help="smoke, quick and/or full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw-dir", default=None, help="where the archives are (default $MAL_RAW_DIR or data/raw)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (resampling)")
    args = parser.parse_args([] if argv is None else argv)
    torch.set_num_threads(args.threads)
    raw = Path(args.raw_dir) if args.raw_dir else raw_dir()
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        results = {p: time_profile(p, args.seed, raw, Path(tmp)) for p in args.profiles}
    print("mal-offline build time (s); cold = unpack + decode + mix, warm = decode cache hot, reuse = verify only")
    header = f"{'profile':<8}{'files':>7}{'audio min':>11}{'cold':>8}{'unpack':>8}{'decode':>8}{'mix':>8}"
    header += f"{'warm':>8}{'reuse':>8}{'min/s':>8}  same bytes"
    print(header)
    print("-" * len(header))
    for profile, r in results.items():
        t = r["timings"]
        print(
            f"{profile:<8}{r['files']:>7}{r['minutes']:>11.1f}{r['cold']:>8.1f}{t['fetch_s']:>8.1f}{t['decode_s']:>8.1f}"
            f"{t['render_s']:>8.1f}{r['warm']:>8.1f}{r['reuse']:>8.2f}{r['minutes'] / r['cold']:>8.2f}  "
            f"{'yes' if r['identical'] else 'NO'}"
        )


if __name__ == "__main__":
    main()
