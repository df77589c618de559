"""Notebook 01 (data preparation) as library calls: its typed config, and build-or-verify with timing."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, ClassVar

from mal.config import ConfigBase, ConfigError
from mal.data.corpus import CorpusConfig, build_corpus, verify_corpus
from mal.data.errors import DataError


@dataclasses.dataclass
class DataPreparationConfig(ConfigBase):
    """Notebook 01: the corpus to build (:class:`CorpusConfig`, where its defaults live) and how to show it."""

    # Notebook 01's parameters: flat name → field; other CorpusConfig fields travel in ``overrides``.
    PARAMETERS: ClassVar[dict[str, str]] = {
        "profile": "corpus.profile",
        "seed": "corpus.seed",
        "train_snr_db": "corpus.train_snr_db",
        "test_snr_levels_db": "corpus.test_snr_levels_db",
        "sources": "corpus.sources",
        "data_root": "corpus.root",
        "raw_dir": "raw_dir",
        "verify_only": "verify_only",
        "run_dir": "run_dir",
        "n_examples": "n_examples",
        "interactive": "interactive",
    }

    corpus: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)  # what to build
    raw_dir: str | None = None  # package downloads; None: $MAL_RAW_DIR or data/raw
    verify_only: bool = False  # True: only verify an existing corpus, never build
    run_dir: str = "runs/01_data_preparation"  # outputs (config, figures, summary.json)
    n_examples: int = 3  # example pairs shown as spectrograms
    interactive: bool = False  # ipywidgets player (needs a live kernel)

    def validate(self) -> None:
        if self.n_examples < 1:
            raise ConfigError(f"n_examples must be at least 1, got {self.n_examples}")


def prepare_corpus(cfg: DataPreparationConfig, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Build the corpus (reusing a matching one) or, with ``verify_only``, check an existing one.

    Returns:
        ``(root, info)`` with info ``{"action": "built" | "reused" | "verified", "wall_seconds": float,
        "verify": verify_corpus(root)}``.
    """
    corpus_cfg = cfg.corpus
    root = corpus_cfg.corpus_root()
    t0 = time.perf_counter()
    if cfg.verify_only:
        action = "verified"
    else:
        existed = (root / "corpus.json").is_file()
        before = (root / "corpus.json").stat().st_mtime_ns if existed else None
        build_corpus(corpus_cfg, raw_dir=cfg.raw_dir, progress=progress)
        after = (root / "corpus.json").stat().st_mtime_ns
        action = "reused" if before == after else "built"
    report = verify_corpus(root)
    if not report["ok"]:
        raise DataError(f"{root}: corpus does not verify: {report['problems'][:5]}")
    return root, {"action": action, "wall_seconds": round(time.perf_counter() - t0, 2), "verify": report}
