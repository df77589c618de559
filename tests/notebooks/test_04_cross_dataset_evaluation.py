"""Notebook 04 runs headless with its smoke parameters and records the summary table to its JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import torch
import yaml

import mal.models

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "04_cross_dataset_evaluation.ipynb"
SMOKE = ROOT / "configs" / "smoke" / "04_cross_dataset_evaluation.yaml"
TINY = {
    "baseline": ("specmask", {"depth": 2, "hidden": 4, "gru_hidden": 16}),
    "mal-frozen": ("specmask", {"depth": 2, "hidden": 4, "gru_hidden": 16}),
}


def tiny_checkpoints(folder: Path) -> dict[str, str]:
    """Random-init tiny models stand in for trained ones (the notebook's code path is the same)."""
    paths = {}
    for i, (label, (name, hparams)) in enumerate(TINY.items()):
        torch.manual_seed(i)
        paths[label] = str(mal.models.save(mal.models.build(name, **hparams), folder / f"{label}.pt"))
    return paths


def test_notebook_is_committed_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    assert [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])] == [1]
    params = pm.inspect_notebook(NOTEBOOK)
    assert set(yaml.safe_load(SMOKE.read_text())) <= set(params)
    assert all(p["help"] for p in params.values())  # every parameter has its one-line comment
    assert "interactive" in params and params["interactive"]["default"] == "False"


@pytest.mark.slow
def test_notebook_runs_headless_with_smoke_parameters(smoke_corpus, tmp_path) -> None:
    run_dir = tmp_path / "run"
    params = {
        **yaml.safe_load(SMOKE.read_text()),
        "run_dir": str(run_dir),
        "data_root": str(smoke_corpus),
        "checkpoints": tiny_checkpoints(tmp_path),
    }
    pm.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "out.ipynb"),
        parameters=params,
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    systems = {"noisy", "spectral-gating", "baseline", "mal-frozen"}
    assert set(summary["systems"]) == systems
    assert summary["datasets"]["in-domain"]["domain"] == "in-domain"
    assert summary["datasets"]["out-of-domain"]["domain"] == "out-of-domain"
    assert summary["n_files"] == {"in-domain": 2, "out-of-domain": 2}
    cells = {(r["system"], r["dataset"], r["metric"]) for r in summary["summary"]}
    assert len(cells) == 4 * 2 * 3  # systems × datasets × metrics
    for row in summary["summary"]:
        assert row["n_files"] + row["n_nan"] == 2
        if row["n_files"] == 2:
            assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    noisy_delta = [r for r in summary["improvement_over_noisy"] if r["metric"] == "pesq_wb"]
    assert {r["system_a"] for r in noisy_delta} == systems - {"noisy"}
    assert [r["system_a"] for r in summary["mal_vs_baseline"]] == ["mal-frozen"] * (2 * 3)
    assert all(math.isfinite(r["mean_diff"]) for r in summary["mal_vs_baseline"] if r["metric"] == "si_sdr")
    for stem in ("improvement_over_noisy", "distributions", "per_snr", "mal_vs_baseline"):
        assert (run_dir / "figures" / f"{stem}.png").is_file() and (run_dir / "figures" / f"{stem}.svg").is_file()
    assert (run_dir / "tables" / "per_file.csv").is_file() and (run_dir / "config.yaml").is_file()
    assert any((run_dir / "tables" / "audio").rglob("*.wav"))
