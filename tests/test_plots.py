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
