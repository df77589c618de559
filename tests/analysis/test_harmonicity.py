from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mal.analysis import harmonicity
from mal.analysis.harmonicity import frame_signal, normalised_autocorrelation

SR = 16000


def _tone(f0: float = 150.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))


def test_autocorrelation_is_one_at_the_period_of_a_periodic_frame() -> None:
    t = np.arange(800)
    frame = np.sin(2 * np.pi * t / 100)[None]  # period exactly 100 samples
    r = normalised_autocorrelation(frame, 40, 267)
    assert r[0, 100 - 40] == pytest.approx(1.0, abs=1e-9)
    assert r.max() <= 1 + 1e-9


def test_harmonic_tone_high_white_noise_low_and_mixtures_in_between() -> None:
    tone = _tone()
    noise = np.random.default_rng(0).standard_normal(len(tone)) * tone.std()
    clean = harmonicity(tone, tone, SR)
    noisy = harmonicity(tone + 0.3 * noise, tone, SR)
    pure_noise = harmonicity(noise, tone, SR)
    assert clean.n_voiced == clean.n_frames > 90 and clean.reason == ""
    assert clean.hnr_db > 20
    assert pure_noise.hnr_db < 0
    # HNR of tone + noise at power ratio 1/0.09 is close to 10·log10(1/0.09) = 10.5 dB
    assert noisy.hnr_db == pytest.approx(10.5, abs=1.5)
    assert clean.spectral_flatness < 1e-3 < noisy.spectral_flatness < pure_noise.spectral_flatness
    # flatness of white noise: E[geometric mean]/mean of exponential powers → e^{-γ} ≈ 0.56
    assert pure_noise.spectral_flatness == pytest.approx(math.exp(-0.5772), abs=0.05)


def test_voiced_frames_come_from_the_reference_only() -> None:
    tone = _tone()
    silence_then_tone = np.concatenate([np.zeros(SR // 2), tone[: SR // 2]])
    res = harmonicity(silence_then_tone, silence_then_tone, SR)
    assert 0 < res.n_voiced < res.n_frames  # the silent half is not voiced
    assert res.hnr_db > 20
    torch_res = harmonicity(torch.from_numpy(silence_then_tone)[None], torch.from_numpy(silence_then_tone)[None], SR)
    assert torch_res.hnr_db == pytest.approx(res.hnr_db)


def test_undefined_cases_are_nan_with_a_reason_and_bad_input_raises() -> None:
    noise = np.random.default_rng(1).standard_normal(SR)
    assert "no voiced" in harmonicity(noise, noise, SR).reason
    silent = harmonicity(np.zeros(SR), np.zeros(SR), SR)
    assert math.isnan(silent.hnr_db) and silent.reason == "silent reference"
    short = harmonicity(np.ones(100), np.ones(100), SR)
    assert math.isnan(short.spectral_flatness) and "shorter" in short.reason
    with pytest.raises(ValueError, match="lengths differ"):
        harmonicity(np.ones(SR), np.ones(SR - 1), SR)
    with pytest.raises(ValueError, match="NaN"):
        harmonicity(np.full(SR, np.nan), np.ones(SR), SR)
    with pytest.raises(ValueError, match="mono"):
        harmonicity(np.ones((2, SR)), np.ones((2, SR)), SR)
    with pytest.raises(ValueError, match="too short"):
        harmonicity(np.ones(SR), np.ones(SR), SR, frame_ms=10)
    assert frame_signal(np.arange(10.0), 4, 3).tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
