"""Notebook 01 runs headless with its smoke parameters and records the corpus summary to its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_data_preparation.ipynb"
SMOKE = ROOT / "configs" / "smoke" / "01_data_preparation.yaml"


def test_notebook_is_committed_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    assert [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])] == [1]
    params = pm.inspect_notebook(NOTEBOOK)
    assert set(yaml.safe_load(SMOKE.read_text())) <= set(params)
    assert {"profile", "seed", "sources", "data_root", "run_dir", "interactive"} <= set(params)
    assert all(p["help"] for p in params.values())
    assert params["interactive"]["default"] == "False"
    # After the config cell only calls into mal: no function or class defined in the notebook.
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any(line.lstrip().startswith(("def ", "class ")) for src in code for line in src.splitlines())


@pytest.mark.slow
def test_notebook_runs_headless_with_smoke_parameters(smoke_corpus: Path, mal_raw_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    params = {
        **yaml.safe_load(SMOKE.read_text()),
        "run_dir": str(run_dir),
        "data_root": str(smoke_corpus),
        "raw_dir": str(mal_raw_dir),
    }
    pm.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "out.ipynb"), parameters=params, kernel_name="python3", cwd=str(tmp_path),
        progress_bar=False,
    )  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["profile"] == "smoke" and summary["seed"] == 0
    assert summary["action"] == "reused"  # same config as the session's corpus: verified, not rebuilt
    assert summary["build_seconds"] > 0 and summary["wall_seconds"] >= 0
    assert set(summary["splits"]) == {"train", "valid", "test", "test_ood", "test_reverb"}
    for split, info in summary["splits"].items():
        assert info["n"] > 0 and info["hours"] > 0 and info["n_speakers"] >= 1, split
        assert sum(info["noise_types"].values()) == info["n"]
    assert summary["splits"]["test"]["snr_db"]["levels"] == [2.5, 7.5, 12.5, 17.5]
    assert not set(summary["splits"]["test_ood"]["speakers"]) & set(summary["splits"]["train"]["speakers"])
    assert summary["splits"]["test_reverb"]["rooms"] >= 1
    for stem in ("durations", "snr", "noise_types", "examples"):
        assert (run_dir / "figures" / f"{stem}.png").is_file() and (run_dir / "figures" / f"{stem}.svg").is_file()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["profile"] == "smoke"
