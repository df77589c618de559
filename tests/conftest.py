"""Shared test settings: deterministic seeds and a small thread count (CI has 2 cores)."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - third-party code (pyroomacoustics, noisereduce) draws from the global RNG
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mal_raw_dir(tmp_path_factory: pytest.TempPathFactory):
    """Where tests download packages: ``$MAL_RAW_DIR`` when set (reused across sessions), else a session temp dir."""
    from pathlib import Path

    return Path(os.environ.get("MAL_RAW_DIR") or tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="session")
def smoke_corpus(tmp_path_factory: pytest.TempPathFactory, mal_raw_dir):
    """Root (``pathlib.Path``) of the CI-sized mal-offline corpus (profile "smoke", seed 0), built once per session.

    Open its splits with ``mal.data.open_dataset("mal-offline", smoke_corpus, split)`` for split in train, valid,
    test, test_ood, test_reverb. Packages are downloaded into ``$MAL_RAW_DIR`` when it is set (reused across
    sessions: ``export MAL_RAW_DIR=$PWD/data/raw``), otherwise into a temporary folder of this session.
    """
    from mal.data import CorpusConfig, build_corpus

    root = tmp_path_factory.mktemp("corpus") / "smoke"
    return build_corpus(CorpusConfig(profile="smoke", seed=0, root=str(root)), raw_dir=mal_raw_dir, progress=False)


@pytest.fixture
def malicious_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """``(checkpoint, marker)``: the checkpoint writes ``marker`` if anything unpickles it unsafely."""
    from toy_checkpoints import write_malicious_checkpoint

    folder = tmp_path_factory.mktemp("hostile")
    marker = folder / "code_ran.txt"
    return write_malicious_checkpoint(folder / "evil.pt", marker), marker


@pytest.fixture
def diverged_checkpoint(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Path of a valid mal checkpoint (finite weights) of a model whose every output is NaN/inf."""
    import mal.models
    from mal.models.registry import REGISTRY

    monkeypatch.setitem(REGISTRY, "diverged-test", "toy_checkpoints:Diverged")
    return mal.models.save(mal.models.build("diverged-test"), tmp_path_factory.mktemp("diverged") / "diverged.pt")
