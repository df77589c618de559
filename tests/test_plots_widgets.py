"""The notebooks' players: audio and figures are widget values (no Output widget), and every pick redraws."""

from __future__ import annotations

import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
import torch

from mal.audio import wav_bytes, write_audio
from mal.plots.data import pair_player
from mal.plots.evaluation import listening_widget
from mal.plots.widgets import audio_player, facts_html, figure_png


class ToySplit:
    """A stand-in PairDataset: ``ids`` and ``[i] -> (noisy, clean, meta)`` with a level per split and item."""

    def __init__(self, name: str, n: int, level: float) -> None:
        self.ids = [f"{name}{i}" for i in range(n)]
        self.level = level

    def __getitem__(self, i: int):
        clean = torch.full((1, 800), self.level * (i + 1))
        return 2 * clean, clean, {"speaker": "ann", "snr_db": 5.0 + i, "room": None}


def _tree(widget: widgets.Widget) -> list[widgets.Widget]:
    children = getattr(widget, "children", ())
    return [widget, *(w for child in children for w in _tree(child))]


def _levels(box: widgets.Widget) -> list[float]:
    """Peak of every audio player in the box, decoded from its WAV bytes."""
    return [float(np.abs(sf.read(io.BytesIO(w.value))[0]).max()) for w in _tree(box) if isinstance(w, widgets.Audio)]


def test_wav_bytes_keeps_the_level_and_clips() -> None:
    data, sr = sf.read(io.BytesIO(wav_bytes(np.array([0.25, -0.5, 1.5]), 8000)))
    assert sr == 8000
    np.testing.assert_allclose(data, [0.25, -0.5, 1.0], atol=1 / 32768)


def test_audio_player_figure_and_facts() -> None:
    player = audio_player("a<b", torch.zeros(1, 160), 16000)
    assert player.children[0].value == "<b>a&lt;b</b>" and player.children[1].format == "wav"
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert figure_png(fig)[:4] == b"\x89PNG" and not plt.fignum_exists(fig.number)
    assert facts_html({"snr_db": 5.0, "room": None}) == "snr_db: <b>5.0</b>"


def test_pair_player_redraws_on_every_pick() -> None:
    box = pair_player({"a": ToySplit("a", 2, 0.1), "b": ToySplit("b", 3, 0.05)})
    assert not any(isinstance(w, widgets.Output) for w in _tree(box))
    split, item = box.children[0].children
    np.testing.assert_allclose(_levels(box), [0.1, 0.2], atol=1e-3)  # clean, then noisy at its true level
    assert "snr_db: <b>5.0</b>" in box.children[1].value
    item.value = 1
    np.testing.assert_allclose(_levels(box), [0.2, 0.4], atol=1e-3)
    split.value = "b"  # item 0 of "b" has the same value as item 0 of "a": must still redraw
    assert [label for label, _ in item.options] == ["b0", "b1", "b2"] and item.value == 0
    np.testing.assert_allclose(_levels(box), [0.05, 0.1], atol=1e-3)


def test_listening_widget_redraws_on_every_pick(tmp_path) -> None:
    for dataset, gain in (("in", 0.1), ("out", 0.3)):
        for version, factor in (("_noisy", 2.0), ("_clean", 1.0), ("mal", 1.5), ("noisy", 2.0)):
            write_audio(tmp_path / "audio" / dataset / version / "utt0.wav", torch.full((1, 800), gain * factor))
    box = listening_widget(tmp_path)
    assert not any(isinstance(w, widgets.Output) for w in _tree(box))
    dataset, file = box.children[0].children
    labels = [w.value for w in _tree(box.children[1]) if isinstance(w, widgets.HTML)]
    assert labels == ["<b>noisy</b>", "<b>mal</b>", "<b>clean</b>"]  # the "noisy" system is the input: shown once
    np.testing.assert_allclose(_levels(box), [0.2, 0.15, 0.1], atol=1e-3)
    dataset.value = "out"  # same file name in the other dataset: must still redraw
    assert file.value == "utt0"
    np.testing.assert_allclose(_levels(box), [0.6, 0.45, 0.3], atol=1e-3)
