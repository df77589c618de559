from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
import pytest
import soundfile as sf
from analysis_helpers import GainModel, IdentityModel, mixtures

from mal.analysis.explorer import feature_explorer


def test_explorer_builds_and_follows_the_controls() -> None:
    calls = []

    def counting_enhancer(model, wav):
        calls.append(model.name)
        return model(wav[None])[0].detach()

    explorer = feature_explorer(
        mixtures([0.0, 10.0, 20.0]), IdentityModel(), {"half": GainModel(0.5)}, max_items=2, enhancer=counting_enhancer
    )
    assert isinstance(explorer, widgets.VBox)
    assert len(explorer.utterance.options) == 2 and explorer.utterance.options[1][0] == "f01 (10 dB, white)"
    assert explorer.layer.options == ("layer0", "layer1", "bottleneck")
    assert explorer.system.options == ("clean", "noisy", "half")
    noisy_audio = explorer.audio.value

    explorer.system.value = "half"  # triggers a redraw and enhances once
    explorer.layer.value = "layer0"  # redraws from the cache
    assert calls == ["gain-test"]
    data, sr = sf.read(io.BytesIO(explorer.audio.value))
    assert sr == 16000
    ref, _ = sf.read(io.BytesIO(noisy_audio))
    np.testing.assert_allclose(data, 0.5 * ref, atol=2 / 32768)  # levels are kept, not normalised
    assert "layer0" in explorer.status.value

    fig, dist = explorer.render(0, "bottleneck", "clean")
    assert dist == 0.0 and len(fig.axes) == 5  # three panels and two colour bars
    with pytest.raises(KeyError, match="unknown system"):
        explorer.signal(0, "other")
    with pytest.raises(ValueError, match="no items"):
        feature_explorer([], IdentityModel(), {})
