"""Notebook 01 runs headless with its smoke parameters and records the corpus summary to its JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from notebook_checks import assert_committed_clean, execute, notebook_files, smoke_parameters, widget_models

NOTEBOOK, SMOKE = notebook_files("01_data_preparation")


def test_notebook_is_committed_clean() -> None:
    params = assert_committed_clean(NOTEBOOK, SMOKE)
    assert {"profile", "seed", "sources", "data_root", "run_dir", "interactive"} <= set(params)
    assert params["interactive"]["default"] == "False"


@pytest.mark.slow
def test_notebook_runs_headless_with_smoke_parameters(smoke_corpus: Path, mal_raw_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    params = {
        **smoke_parameters(SMOKE),
        "run_dir": str(run_dir),
        "data_root": str(smoke_corpus),
        "raw_dir": str(mal_raw_dir),
    }
    summary = execute(NOTEBOOK, params, tmp_path / "out.ipynb")
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
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["corpus"]["profile"] == "smoke"
    models = widget_models(tmp_path / "out.ipynb")  # the pair player: split and item, clean and noisy players
    assert models.count("DropdownModel") == 2 and models.count("AudioModel") == 2
