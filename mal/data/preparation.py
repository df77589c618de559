"""Notebook 01 (data preparation) as library calls: its typed config, and build-or-verify with timing."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

from mal.config import ConfigBase, ConfigError
from mal.data.corpus import CorpusConfig, build_corpus, verify_corpus
from mal.data.errors import DataError


@dataclasses.dataclass
class DataPreparationConfig(ConfigBase):
    """Parameters of notebooks/01_data_preparation (flat, as papermill injects them)."""

    profile: Literal["smoke", "quick", "full"] = "quick"  # corpus size
    seed: int = 0  # corpus seed
    train_snr_low: float = 0.0  # train SNRs are uniform in [low, high] dB
    train_snr_high: float = 15.0
    test_snr_levels: list[float] = dataclasses.field(default_factory=lambda: [2.5, 7.5, 12.5, 17.5])  # dB
    sources: list[str] | None = None  # source names (mal.data.SOURCES); None: the profile's
    data_root: str | None = None  # corpus folder; None: data/corpora/<profile>
    raw_dir: str | None = None  # package downloads; None: $MAL_RAW_DIR or data/raw
    verify_only: bool = False  # True: only verify an existing corpus, never build
    run_dir: str = "runs/01_data_preparation"  # outputs (config, figures, summary.json)
    n_examples: int = 3  # example pairs shown as spectrograms
    interactive: bool = False  # ipywidgets player (needs a live kernel)

    def validate(self) -> None:
        if self.train_snr_low > self.train_snr_high:
            raise ConfigError(f"train_snr_low {self.train_snr_low} > train_snr_high {self.train_snr_high}")
        if self.n_examples < 1:
            raise ConfigError(f"n_examples must be at least 1, got {self.n_examples}")
        self.corpus_config()  # surfaces CorpusConfig errors with their own message

    def corpus_config(self) -> CorpusConfig:
        return CorpusConfig.from_params(
            dict(
                profile=self.profile,
                seed=self.seed,
                root=self.data_root,
                sources=self.sources,
                train_snr_db=(self.train_snr_low, self.train_snr_high),
                test_snr_levels_db=tuple(self.test_snr_levels),
            )
        )


def prepare_corpus(cfg: DataPreparationConfig, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Build the corpus (reusing a matching one) or, with ``verify_only``, check an existing one.

    Returns:
        ``(root, info)`` with info ``{"action": "built" | "reused" | "verified", "wall_seconds": float,
        "verify": verify_corpus(root)}``.
    """
    corpus_cfg = cfg.corpus_config()
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
