from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from analysis_helpers import GainModel, IdentityModel, NoiseAddingModel, mixtures, snr_scorer

from mal.analysis import build_spaces, correlation_table, project_pooled, run_feature_study, run_self_consistency
from mal.plots import save_figure
from mal.plots.analysis import (
    log_spectrogram,
    plot_correlation_heatmap,
    plot_distance_vs_metric,
    plot_k_curves,
    plot_projections,
    plot_spectrogram_panels,
)


@pytest.fixture(scope="module")
def study():
    spaces, _ = build_spaces(["logmel"])
    return run_feature_study(
        {"judge": IdentityModel()},
        {"noise": NoiseAddingModel(), "half": GainModel(0.5)},
        mixtures([0.0, 5.0, 10.0, 15.0], same_clean=False),
        spaces=spaces,
        metrics=["snr", "si_sdr"],
        scorer=snr_scorer,
        progress=False,
    )


def test_feature_space_figures_render_and_save(study, tmp_path) -> None:
    table = correlation_table(study.pairs, study.distance_columns, ["snr", "si_sdr"], n_boot=50)
    figures = {
        "correlation_heatmap": plot_correlation_heatmap(table),
        "distance_vs_snr": plot_distance_vs_metric(study.pairs, ["judge/layer0", "logmel"], "snr"),
        "projection_pca": plot_projections(project_pooled(study.pooled, methods=["pca"]), "pca"),
    }
    heat_ax = figures["correlation_heatmap"].axes[0]
    assert [t.get_text() for t in heat_ax.get_yticklabels()] == study.distance_columns
    assert len(figures["projection_pca"].axes) == 3 * 4  # three layers × (signal, SNR, noise type, speaker)
    for stem, fig in figures.items():
        paths = save_figure(fig, tmp_path / stem)
        plt.close(fig)
        assert all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError, match="tsne"):
        plot_projections(project_pooled(study.pooled, methods=["pca"]), "tsne")


def test_self_consistency_figures(tmp_path) -> None:
    sc = run_self_consistency(
        {"identity": IdentityModel(), "noise": NoiseAddingModel()},
        mixtures([5.0, 10.0]),
        k_max=3,
        metrics=["si_sdr"],
        scorer=snr_scorer,
        progress=False,
    )
    curves = plot_k_curves(sc.summary(n_boot=50))
    assert len(curves.axes) == 3  # si_sdr, hnr_db, spectral_flatness
    spectra = plot_spectrogram_panels(sc.examples[0], sc.k_max)
    assert len(spectra.axes) == 3 * 2 + 1  # clean/noisy row + two systems, and the colour bar
    for stem, fig in {"curves": curves, "spectra": spectra}.items():
        save_figure(fig, tmp_path / stem)
        plt.close(fig)
    assert log_spectrogram(sc.examples[0]["clean"]).shape[0] == 257
