from __future__ import annotations

import numpy as np
import pytest
import torch
from analysis_helpers import IdentityModel, NoiseAddingModel, mixtures, snr_scorer

from mal.analysis import build_spaces, correlation_table, project, project_pooled, run_feature_study, summarise_pairs
from mal.analysis.projection import available_methods

SNRS = [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0]


def test_distance_that_is_a_monotone_function_of_snr_gives_rank_correlation_one() -> None:
    # One clean signal, one noise waveform scaled to each SNR, and a linear encoder: the feature error is
    # a·E(noise), so every layer's distance is exactly a decreasing function of the SNR.
    spaces, skipped = build_spaces(["logmel", "lossnet"])
    assert "lossnet" in skipped and "checkpoint" in skipped["lossnet"]
    study = run_feature_study(
        judges={"judge": IdentityModel()},
        systems={"identity": IdentityModel()},
        items=mixtures(SNRS),
        spaces=spaces,
        metrics=["snr", "si_sdr"],
        scorer=snr_scorer,
        progress=False,
    )
    assert study.distance_columns == ["judge/layer0", "judge/layer1", "judge/bottleneck", "logmel"]
    assert study.encoder_columns == ["judge/layer0", "judge/layer1", "judge/bottleneck"]
    assert len(study.pairs) == 2 * len(SNRS) and set(study.pairs["source"]) == {"noisy", "identity"}
    table = correlation_table(study.pairs, study.distance_columns, ["snr", "snr_db"], n_boot=200).set_index(
        ["space", "metric"]
    )
    for layer in study.encoder_columns:
        for metric in ("snr", "snr_db"):
            row = table.loc[(layer, metric)]
            assert (row["rho"], row["ci_low"], row["ci_high"]) == (-1.0, -1.0, -1.0)
            assert row["n_files"] == len(SNRS)
    assert table.loc[("logmel", "snr_db"), "rho"] < -0.9
    # the negated distance correlates +1: the sign convention is the only difference
    flipped = study.pairs.assign(neg=-study.pairs["judge/layer0"])
    assert correlation_table(flipped, ["neg"], ["snr_db"], n_boot=0)["rho"].item() == 1.0
    means = summarise_pairs(study.pairs, ["snr"])
    assert means.loc["noisy", "n_files"] == len(SNRS)
    assert means.loc["noisy", "snr"] == pytest.approx(np.mean(SNRS), abs=1e-3)


def test_pooled_features_and_projections() -> None:
    study = run_feature_study(
        judges={"a": IdentityModel(), "b": IdentityModel()},
        systems={"noise": NoiseAddingModel()},
        items=mixtures(SNRS, same_clean=False),
        layers="0,-1",
        metrics=[],
        n_files=4,
        progress=False,
    )
    assert study.distance_columns == ["a/layer0", "a/bottleneck", "b/layer0", "b/bottleneck"]
    pooled = study.pooled
    assert pooled.judge == "a" and list(pooled.layers) == ["layer0", "bottleneck"]
    assert len(pooled.meta) == 4 * 3  # clean, noisy and one system per file
    assert pooled.layers["layer0"].shape == (12, 8) and pooled.layers["bottleneck"].shape == (12, 6)
    assert set(pooled.meta["role"]) == {"clean", "noisy", "enhanced"}
    coords = project_pooled(pooled, methods=["pca", "tsne"])
    assert len(coords) == 12 * 2 * 2 and np.isfinite(coords[["x", "y"]].to_numpy()).all()
    assert {"snr_db", "noise_type", "speaker", "role", "layer", "method"} <= set(coords.columns)


def test_project_separates_clusters_and_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (20, 5)), rng.normal(8, 1, (20, 5))])
    xy = project(x, "pca")
    assert xy.shape == (40, 2)
    assert abs(xy[:20, 0].mean() - xy[20:, 0].mean()) > 3 * xy[:20, 0].std()
    with pytest.raises(ValueError, match="N >= 3"):
        project(x[:2])
    with pytest.raises(ValueError, match="NaN"):
        project(np.full((4, 2), np.nan))
    if "umap" not in available_methods():
        with pytest.raises(ValueError, match="umap-learn"):
            project(x, "umap")


def test_bad_items_and_systems_are_refused_with_the_file_named() -> None:
    noisy, clean, meta = mixtures([0.0])[0]
    with pytest.raises(ValueError, match="f00: noisy and clean lengths differ"):
        run_feature_study({"j": IdentityModel()}, {}, [(noisy, clean[:, :-1], meta)], metrics=[], progress=False)
    with pytest.raises(ValueError, match="f00: audio contains NaN"):
        bad = noisy.clone()
        bad[0, 5] = torch.nan
        run_feature_study({"j": IdentityModel()}, {}, [(bad, clean, meta)], metrics=[], progress=False)
    with pytest.raises(ValueError, match="reserved"):
        run_feature_study({"j": IdentityModel()}, {"noisy": IdentityModel()}, [], metrics=[], progress=False)
    with pytest.raises(ValueError, match="no items"):
        run_feature_study({"j": IdentityModel()}, {}, [], metrics=[], progress=False)
