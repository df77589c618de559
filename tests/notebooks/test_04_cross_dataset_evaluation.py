"""Notebook 04 runs headless with its smoke parameters and records the summary table to its JSON."""

from __future__ import annotations

import math

import pytest
from notebook_checks import (
    assert_committed_clean,
    execute,
    notebook_files,
    smoke_parameters,
    tiny_checkpoints,
    widget_models,
)

NOTEBOOK, SMOKE = notebook_files("04_cross_dataset_evaluation")
TINY = {
    "baseline": ("specmask", {"depth": 2, "hidden": 4, "gru_hidden": 16}),
    "mal-frozen": ("specmask", {"depth": 2, "hidden": 4, "gru_hidden": 16}),
}


def test_notebook_is_committed_clean() -> None:
    params = assert_committed_clean(NOTEBOOK, SMOKE)
    assert "interactive" in params and params["interactive"]["default"] == "False"


@pytest.mark.slow
def test_notebook_runs_headless_with_smoke_parameters(smoke_corpus, tmp_path) -> None:
    run_dir = tmp_path / "run"
    params = {
        **smoke_parameters(SMOKE),
        "run_dir": str(run_dir),
        "data_root": str(smoke_corpus),
        "checkpoints": tiny_checkpoints(tmp_path, TINY),
    }
    summary = execute(NOTEBOOK, params, tmp_path / "out.ipynb")
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
    models = widget_models(tmp_path / "out.ipynb")  # the A/B player: noisy, every other system, clean
    assert models.count("DropdownModel") == 2 and models.count("AudioModel") == len(systems) + 1
