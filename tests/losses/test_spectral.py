"""CompressedSpectralLoss: zero on identical inputs, grows as the SNR drops, level-invariant, phase-sensitive."""

from __future__ import annotations

import pytest
import torch
from loss_helpers import add_noise, speechlike

from mal.losses import CompressedSpectralLoss, LossConfig, build_objective


def test_zero_on_identical_inputs() -> None:
    clean = speechlike(2, 1.0)
    assert float(CompressedSpectralLoss()(clean, clean)) == pytest.approx(0.0, abs=1e-9)


def test_rises_as_snr_drops() -> None:
    loss = CompressedSpectralLoss()
    clean = speechlike(4, 1.0)
    values = [float(loss(add_noise(clean, snr, seed=1), clean)) for snr in (30.0, 20.0, 10.0, 0.0, -5.0)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values


def test_level_of_the_pair_does_not_matter() -> None:
    loss = CompressedSpectralLoss()
    clean = speechlike(2, 1.0)
    noisy = add_noise(clean, 5.0, seed=2)
    torch.testing.assert_close(loss(10 * noisy, 10 * clean), loss(noisy, clean), rtol=1e-4, atol=1e-6)


def test_complex_part_sees_phase_and_magnitude_part_does_not() -> None:
    loss = CompressedSpectralLoss()
    clean = speechlike(1, 1.0)
    parts = loss.components(-clean, clean)  # same magnitudes, every phase rotated by π
    assert float(parts["mag"]) == pytest.approx(0.0, abs=1e-6) and float(parts["ri"]) > 1.0


def test_gradient_is_finite_at_silence() -> None:
    est = torch.zeros(1, 1, 8000, requires_grad=True)
    CompressedSpectralLoss()(est, speechlike(1, 0.5)).backward()
    assert torch.isfinite(est.grad).all()


def test_objective_uses_the_models_stft() -> None:
    import mal.models

    model = mal.models.build("bandcrn", channels=4, rnn_blocks=1, hop=128)
    objective = build_objective(LossConfig(l1=0.0, mrstft=0.0, spectral=1.0), model)
    term = objective.terms["spectral"]
    assert (term.n_fft, term.hop) == (512, 128)


@pytest.mark.parametrize("bad", [{"hop": 0}, {"exponent": 0.0}, {"mag_weight": 0.0, "ri_weight": 0.0}])
def test_bad_settings(bad: dict) -> None:
    with pytest.raises(ValueError):
        CompressedSpectralLoss(**bad)
