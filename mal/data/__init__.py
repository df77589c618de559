"""Data for mal: the offline mal-offline corpus, loaders for standard corpora, and training-time segments.

    ds = mal.data.open_dataset("mal-offline" | "voicebank-demand" | "dns-synthetic" | "ears-wham" | "folders",
                               root, split)          # items: (noisy (1, T), clean (1, T), meta dict)
    root = mal.data.build_corpus(mal.data.CorpusConfig(profile="quick", seed=0))
    train = mal.data.SegmentDataset(ds, segment_seconds=2.0, seed=0, remix=True)

See data/README.md for what each split contains and where the recordings come from.
"""

from __future__ import annotations

from mal.data.corpus import (
    FORMAT,
    PROFILE_SIZES,
    PROFILE_SOURCES,
    SPLITS,
    CorpusConfig,
    build_corpus,
    read_corpus_meta,
    verify_corpus,
)
from mal.data.errors import DataError
from mal.data.loaders import DATASETS, PairDataset, open_dataset
from mal.data.paths import corpus_dir, data_dir, raw_dir
from mal.data.segments import SegmentDataset, collate_segments
from mal.data.sources import ARCHIVES, SOURCES

__all__ = [
    "ARCHIVES",
    "DATASETS",
    "FORMAT",
    "PROFILE_SIZES",
    "PROFILE_SOURCES",
    "SOURCES",
    "SPLITS",
    "CorpusConfig",
    "DataError",
    "PairDataset",
    "SegmentDataset",
    "build_corpus",
    "collate_segments",
    "corpus_dir",
    "data_dir",
    "open_dataset",
    "raw_dir",
    "read_corpus_meta",
    "verify_corpus",
]
