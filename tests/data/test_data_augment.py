"""Voice and channel augmentation: speed perturbation moves the pitch, tilt moves the spectral balance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mal.data import augment


def _tone(freq: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * 16000), dtype=torch.float64) / 16000
    return (0.3 * torch.sin(2 * np.pi * freq * t)).float()[None]


def _peak_hz(x: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(x[0].double() * torch.hann_window(x.shape[-1], dtype=torch.float64)).abs()
    return float(spectrum.argmax()) * 16000 / x.shape[-1]


@pytest.mark.parametrize("percent", [90, 95, 100, 107, 110])
def test_change_speed_scales_the_pitch_and_returns_n_samples(percent: int) -> None:
    n = 8000
    x = _tone(500.0)[..., : augment.speed_input_samples(n, percent)]
    y = augment.change_speed(x, percent, n)
    assert y.shape == (1, n) and y.dtype == x.dtype
    assert _peak_hz(y) == pytest.approx(500.0 * percent / 100, abs=2.5)  # 2 Hz bins
    # Band-limited resampling keeps the level (no aliasing energy, no loss at 500 Hz).
    assert float(y[..., 500:-500].pow(2).mean().sqrt()) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)


def test_change_speed_pads_a_short_input_and_rejects_bad_speeds() -> None:
    y = augment.change_speed(_tone(300.0, 0.1), 110, 4000)
    assert y.shape == (1, 4000) and y[..., 1600:].abs().max() == 0
    with pytest.raises(ValueError, match="positive"):
        augment.change_speed(_tone(300.0), 0, 100)


def test_tilt_brightens_or_darkens_and_keeps_the_rms() -> None:
    low, high = _tone(200.0), _tone(6000.0)
    x = low + high
    for a in (0.5, -0.5):
        y = augment.tilt(x, a)
        assert float(y.pow(2).mean()) == pytest.approx(float(x.pow(2).mean()), rel=1e-4)
        spec = torch.fft.rfft(y[0].double()).abs()
        ratio = float(spec[6000] / spec[200])  # 1 Hz bins: the two tones
        # The filter's gain |1 - a·e^{-jω}| = sqrt(1 + a² - 2a·cos ω) at 6 kHz over that at 200 Hz: 2.78 for
        # a = 0.5 (brighter), 0.49 for a = -0.5 (darker).
        gain = [np.sqrt(1 + a * a - 2 * a * np.cos(2 * np.pi * f / 16000)) for f in (6000, 200)]
        assert ratio == pytest.approx(gain[0] / gain[1], rel=0.01)
    assert augment.tilt(x, 0.0) is x
    assert augment.tilt(torch.zeros(1, 100), 0.3).abs().max() == 0
    with pytest.raises(ValueError, match="coefficient"):
        augment.tilt(x, 1.0)
