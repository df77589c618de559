"""Notebook 03 runs headless with its smoke parameters and records the correlation table and k-curves."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_checks import (
    assert_committed_clean,
    execute,
    notebook_files,
    smoke_parameters,
    tiny_checkpoints,
    widget_models,
)

NOTEBOOK, SMOKE = notebook_files("03_feature_space_analysis")
TINY = {
    "warmup": ("specmask", {"depth": 2, "hidden": 4, "gru_hidden": 16}),
    "baseline": ("waveunet", {"depth": 2, "hidden": 4, "lstm_layers": 1}),
}


def test_notebook_is_committed_clean() -> None:
    assert_committed_clean(NOTEBOOK, SMOKE)


@pytest.mark.slow
def test_notebook_runs_headless_with_smoke_parameters(smoke_corpus, tmp_path) -> None:
    params = {
        **smoke_parameters(SMOKE),
        "run_dir": str(tmp_path / "run"),
        "data_root": str(smoke_corpus),
        "checkpoints": tiny_checkpoints(tmp_path, TINY),
    }
    summary = execute(NOTEBOOK, params, tmp_path / "out.ipynb")
    run = tmp_path / "run"
    assert summary["n_files"] == 4 and summary["n_pairs"] == 4 * 3  # noisy + two systems per file
    assert summary["sources"] == ["noisy", "warmup", "baseline"]
    metrics = ["pesq_wb", "stoi", "si_sdr"]
    assert summary["distance_columns"][-2:] == ["logmel", "mrstft"]
    assert len(summary["correlation"]) == len(summary["distance_columns"]) * len(metrics)
    for metric in metrics:
        best = summary["best"][metric]["best_layer"]
        assert best["space"].startswith("warmup/") and -1 <= best["rho"] <= 1
    sc = summary["self_consistency"]
    assert sc["k_max"] == 2 and sc["n_files"] == 2
    curves = {(r["system"], r["metric"], r["k"]) for r in sc["curves"]}
    for system in ("warmup", "baseline"):
        for metric in ("pesq_wb", "si_sdr", "hnr_db", "spectral_flatness"):
            assert {(system, metric, k) for k in (0, 1, 2)} <= curves
    assert {(r["system"], r["metric"]) for r in sc["decay"]} >= {("baseline", "pesq_wb"), ("warmup", "hnr_db")}
    assert sc["reference"] == "baseline"
    assert {(r["system"], r["metric"]) for r in sc["decay_vs_reference"]} >= {
        ("warmup", "pesq_wb"),
        ("warmup", "hnr_db"),
    }
    stems = [
        "correlation_heatmap",
        "distance_vs_pesq_wb",
        "projection_pca",
        "projection_tsne",
        "self_consistency_curves",
        "self_consistency_spectrograms",
    ]
    for stem in stems:
        for ext in ("png", "svg"):
            assert (run / "figures" / f"{stem}.{ext}").stat().st_size > 1000
    assert sorted(Path(p).name for p in summary["figures"]) == sorted(f"{s}.png" for s in stems)
    tables = ["pairs", "correlation", "self_consistency_values", "self_consistency_curves"]
    for table in [*tables, "self_consistency_decay", "self_consistency_vs_reference"]:
        assert (run / "tables" / f"{table}.csv").is_file()
    assert (run / "config.yaml").is_file()
    models = widget_models(tmp_path / "out.ipynb")  # the feature explorer: three pickers, figure, player
    assert models.count("DropdownModel") == 3 and models.count("ImageModel") == 1 and models.count("AudioModel") == 1
