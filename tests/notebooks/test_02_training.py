"""Notebook 02 runs headless: a smoke warm-up, then a MAL stage-2 branch from its checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from notebook_checks import assert_committed_clean, execute, notebook_files, smoke_parameters

NOTEBOOK, SMOKE = notebook_files("02_training")


def test_notebook_is_committed_clean() -> None:
    assert_committed_clean(NOTEBOOK, SMOKE)


@pytest.mark.slow
def test_notebook_trains_warmup_then_mal_branch(smoke_corpus, tmp_path) -> None:
    smoke = smoke_parameters(SMOKE)
    smoke = {**smoke, "corpus_root": str(smoke_corpus)}
    warm = execute(NOTEBOOK, {**smoke, "run_dir": str(tmp_path / "warmup")}, tmp_path / "warmup.ipynb")
    assert warm["stage"] == "warmup" and warm["global_step"] == 4
    mal_run = execute(
        NOTEBOOK,
        {
            **smoke,
            "run_dir": str(tmp_path / "mal"),
            "stage": "stage2",
            "init_checkpoint": str(tmp_path / "warmup" / "checkpoints" / "last.pt"),
            "recipe": "mal-frozen-all",
            "steps": 2,
        },
        tmp_path / "mal.ipynb",
    )
    assert mal_run["stage"] == "stage2" and mal_run["start_step"] == 4 and mal_run["global_step"] == 6
    assert mal_run["params"]["recipe"] == "mal-frozen-all" and mal_run["loss_weights"]["mal"] > 0
    assert "loss_mal" in mal_run["train"] and "mal_feat_var" in mal_run["train"]
    for key in ("pesq_wb", "si_sdr"):
        assert math.isfinite(mal_run["valid"][key]) and math.isfinite(mal_run["noisy"][key])
    assert mal_run["step_time_s"] > 0 and mal_run["samples_per_s"] > 0
    # The step-size columns of the results tables.
    assert mal_run["grad_norm_mean"] > 0 and 0 < mal_run["weight_change"] < 1
    figures = [Path(p) for p in mal_run["figures"]]
    assert {p.stem for p in figures} == {"loss_terms", "mal_vs_conventional", "step_size", "validation"}
    assert all(p.is_file() and p.with_suffix(".svg").is_file() for p in figures)
