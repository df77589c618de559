"""Notebook 05 pretrains the lossnet headless with smoke parameters and records what it learned."""

from __future__ import annotations

import pytest
import torch
from notebook_checks import assert_committed_clean, execute, notebook_files, smoke_parameters

from mal.config import ConfigError
from mal.losses import LossNetFeatureLoss
from mal.pretrain import LossNetPretrainConfig

NOTEBOOK, SMOKE = notebook_files("05_lossnet_pretraining")


def test_notebook_is_committed_clean() -> None:
    assert_committed_clean(NOTEBOOK, SMOKE)


def test_config_refuses_test_split_and_unknown_parameters() -> None:
    with pytest.raises(ConfigError, match="test split"):
        LossNetPretrainConfig.from_params({"split": "test"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        LossNetPretrainConfig.from_params({"lossnet": {"stepz": 3}})


@pytest.mark.slow
def test_notebook_runs_headless_with_smoke_parameters(smoke_corpus, tmp_path) -> None:
    run_dir = tmp_path / "run"
    params = {**smoke_parameters(SMOKE), "run_dir": str(run_dir), "data_root": str(smoke_corpus)}
    summary = execute(NOTEBOOK, params, tmp_path / "out.ipynb")
    assert len(summary["layer_weights"]) == params["n_layers"]
    assert all(w > 0 for w in summary["layer_weights"])
    for task in summary["labels"]:
        assert 0.0 <= summary["metrics"][f"valid_acc_{task}"] <= 1.0
    assert (run_dir / "figures" / "lossnet_pretraining.png").is_file()
    # The checkpoint is usable as a loss right away.
    loss = LossNetFeatureLoss(summary["checkpoint"])
    clean = torch.randn(2, 1, 8000) * 0.1
    assert float(loss(clean, clean)) == 0.0
    assert float(loss(clean + 0.05 * torch.randn_like(clean), clean)) > 0.0
