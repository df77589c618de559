"""Notebook 02 runs headless: a smoke warm-up, then a MAL stage-2 branch from its checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02_training.ipynb"
SMOKE = ROOT / "configs" / "smoke" / "02_training.yaml"


def test_notebook_is_committed_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    assert [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])] == [1]
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any(line.lstrip().startswith(("def ", "class ")) for src in code for line in src.splitlines())
    params = pm.inspect_notebook(NOTEBOOK)
    assert set(yaml.safe_load(SMOKE.read_text())) <= set(params)
    assert all(p["help"] for p in params.values())  # every parameter has its one-line comment


def _run(params: dict, out: Path) -> dict:
    pm.execute_notebook(
        str(NOTEBOOK), str(out), parameters=params, kernel_name="python3", cwd=str(out.parent), progress_bar=False
    )
    return json.loads((Path(params["run_dir"]) / "summary.json").read_text())


@pytest.mark.slow
def test_notebook_trains_warmup_then_mal_branch(smoke_corpus, tmp_path) -> None:
    smoke = {
        **yaml.safe_load(SMOKE.read_text()),
        "base_config": str(ROOT / yaml.safe_load(SMOKE.read_text())["base_config"]),
        "corpus_root": str(smoke_corpus),
    }
    warm = _run({**smoke, "run_dir": str(tmp_path / "warmup")}, tmp_path / "warmup.ipynb")
    assert warm["stage"] == "warmup" and warm["global_step"] == 4
    mal_run = _run(
        {
            **smoke,
            "run_dir": str(tmp_path / "mal"),
            "stage": "stage2",
            "init_checkpoint": str(tmp_path / "warmup" / "checkpoints" / "last.pt"),
            "recipe": "mal",
            "mal_variant": "frozen",
            "mal_layers": "all",
            "steps": 2,
        },
        tmp_path / "mal.ipynb",
    )
    assert mal_run["stage"] == "stage2" and mal_run["start_step"] == 4 and mal_run["global_step"] == 6
    assert mal_run["params"]["recipe"] == "mal" and mal_run["loss_weights"]["mal"] > 0
    assert "loss_mal" in mal_run["train"] and "mal_feat_var" in mal_run["train"]
    for key in ("pesq_wb", "si_sdr"):
        assert math.isfinite(mal_run["valid"][key]) and math.isfinite(mal_run["noisy"][key])
    assert mal_run["step_time_s"] > 0 and mal_run["samples_per_s"] > 0
    figures = [Path(p) for p in mal_run["figures"]]
    assert {p.stem for p in figures} == {"loss_terms", "mal_vs_conventional", "validation"}
    assert all(p.is_file() and p.with_suffix(".svg").is_file() for p in figures)
