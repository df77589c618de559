from __future__ import annotations

import matplotlib.pyplot as plt

from mal.plots import save_figure


def test_save_figure_writes_png_and_svg(tmp_path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = save_figure(fig, tmp_path / "figs" / "line")
    plt.close(fig)
    assert [p.name for p in paths] == ["line.png", "line.svg"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths[1].read_bytes()[:500]


def test_step_size_figure_shows_gradient_weight_change_and_calibrated_weights() -> None:
    import pandas as pd

    from mal.plots.training import plot_step_size

    steps = range(10, 60, 10)
    history = pd.DataFrame(
        {
            "step": list(steps),
            "kind": "train",
            "grad_norm": [1.0, 1.1, 0.9, 1.0, 1.2],
            "weight_change": [0.001, 0.002, 0.003, 0.004, 0.005],
            "weight_change_encoder": [0.001] * 5,
            "weight_mal": [0.3, 0.3, 0.25, 0.25, 0.2],
            "weight_spectral": [0.5] * 5,
        }
    )
    fig = plot_step_size(history)
    assert [ax.get_title() for ax in fig.axes][-1] == "calibrated weights" and len(fig.axes) == 3
    labels = {t.get_text() for t in fig.axes[2].get_legend().get_texts()}
    assert labels == {"weight_mal", "weight_spectral"}  # not the weight-change columns
    fig = plot_step_size(history.drop(columns=["weight_mal", "weight_spectral"]))  # a baseline: no weights panel
    assert len(fig.axes) == 2
