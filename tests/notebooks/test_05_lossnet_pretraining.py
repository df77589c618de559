"""Notebook 05 pretrains the lossnet headless with smoke parameters and records what it learned."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import torch
import yaml

from mal.config import ConfigError
from mal.losses import LossNetFeatureLoss
from mal.pretrain import LossNetPretrainConfig

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "05_lossnet_pretraining.ipynb"
SMOKE = ROOT / "configs" / "smoke" / "05_lossnet_pretraining.yaml"


def test_notebook_is_committed_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    assert [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])] == [1]
    params = pm.inspect_notebook(NOTEBOOK)
    assert set(yaml.safe_load(SMOKE.read_text())) <= set(params)
    assert all(p["help"] for p in params.values())


def test_config_refuses_test_split_and_unknown_parameters() -> None:
    with pytest.raises(ConfigError, match="test split"):
        LossNetPretrainConfig.from_params({"split": "test"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        LossNetPretrainConfig.from_params({"lossnet": {"stepz": 3}})


@pytest.mark.slow
def test_notebook_runs_headless_with_smoke_parameters(smoke_corpus, tmp_path) -> None:
    run_dir = tmp_path / "run"
    params = {**yaml.safe_load(SMOKE.read_text()), "run_dir": str(run_dir), "data_root": str(smoke_corpus)}
    pm.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "out.ipynb"), parameters=params, kernel_name="python3", progress_bar=False
    )
    summary = json.loads((run_dir / "summary.json").read_text())
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
