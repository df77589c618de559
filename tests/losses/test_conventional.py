"""Waveform L1, multi-resolution STFT and SI-SDR: values, invariances and the shape contract."""

from __future__ import annotations

import math

import pytest
import torch
from loss_helpers import add_noise, speechlike

from mal.losses import MultiResolutionSTFTLoss, SISDRLoss, WaveformL1, si_sdr

SNRS = [30.0, 20.0, 10.0, 0.0, -10.0]


def test_l1_normalised_divides_by_reference_std() -> None:
    clean = speechlike(batch=3)
    noisy = add_noise(clean, 5.0)
    sigma = clean.std(dim=-1, keepdim=True, unbiased=False) + 1e-4
    expected = ((noisy - clean).abs() / sigma).mean()
    assert WaveformL1()(noisy, clean).item() == pytest.approx(expected.item(), rel=1e-6)
    assert WaveformL1(normalise=False)(noisy, clean).item() == pytest.approx((noisy - clean).abs().mean().item())


def test_l1_normalised_balances_loudness_raw_does_not() -> None:
    clean = speechlike()
    noisy = add_noise(clean, 5.0)
    norm, raw = WaveformL1(eps=0.0), WaveformL1(normalise=False)
    assert norm(10 * noisy, 10 * clean).item() == pytest.approx(norm(noisy, clean).item(), rel=1e-5)
    assert raw(10 * noisy, 10 * clean).item() == pytest.approx(10 * raw(noisy, clean).item(), rel=1e-5)


@pytest.mark.parametrize("loss", [WaveformL1(), WaveformL1(normalise=False), MultiResolutionSTFTLoss()])
def test_zero_for_identical_and_increasing_with_noise(loss: torch.nn.Module) -> None:
    clean = speechlike()
    assert loss(clean, clean.clone()).item() == pytest.approx(0.0, abs=1e-6)
    values = torch.tensor([loss(add_noise(clean, s), clean).item() for s in SNRS])
    assert bool((values.diff() > 0).all()), values


def test_mrstft_components_and_defaults() -> None:
    loss = MultiResolutionSTFTLoss()
    assert loss.fft_sizes == (512, 1024, 2048)
    assert loss.hop_sizes == (50, 120, 240)
    assert loss.win_lengths == (240, 600, 1200)
    clean = speechlike()
    noisy = add_noise(clean, 0.0)
    parts = loss.components(noisy, clean)
    assert loss(noisy, clean).item() == pytest.approx((parts["sc"] + parts["log_mag"]).item(), rel=1e-6)
    # spectral convergence of a scaled copy: ‖(1-a)|Y|‖ / ‖|Y|‖ = |1-a| at every resolution
    assert loss.components(0.5 * clean, clean)["sc"].item() == pytest.approx(0.5, rel=1e-3)


def test_mrstft_runs_in_float32_under_autocast() -> None:
    clean = speechlike()
    noisy = add_noise(clean, 5.0)
    loss = MultiResolutionSTFTLoss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(noisy.bfloat16(), clean.bfloat16())
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(loss(noisy.bfloat16().float(), clean.bfloat16().float()).item(), rel=1e-5)


def test_mrstft_gradient_is_finite_on_silence() -> None:
    silent = torch.zeros(1, 1, 4000)
    estimate = torch.zeros(1, 1, 4000, requires_grad=True)
    MultiResolutionSTFTLoss()(estimate, silent).backward()
    assert torch.isfinite(estimate.grad).all()


def test_mrstft_refuses_too_short_input_and_bad_resolutions() -> None:
    short = torch.zeros(1, 1000)
    with pytest.raises(ValueError, match="too short for FFT size 2048"):
        MultiResolutionSTFTLoss()(short, short)
    with pytest.raises(ValueError, match="equal length"):
        MultiResolutionSTFTLoss(fft_sizes=(512, 1024), hop_sizes=(50,), win_lengths=(240,))
    with pytest.raises(ValueError, match="win_length ≤ fft_size"):
        MultiResolutionSTFTLoss(fft_sizes=(256,), hop_sizes=(64,), win_lengths=(512,))


def test_si_sdr_matches_the_constructed_snr() -> None:
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 16000, generator=gen)
    noise = torch.randn(2, 16000, generator=gen)
    # make the noise orthogonal to the (zero-mean) reference so the SI-SDR is exactly the energy ratio
    ref = ref - ref.mean(-1, keepdim=True)
    noise = noise - noise.mean(-1, keepdim=True)
    noise = noise - (noise * ref).sum(-1, keepdim=True) / ref.square().sum(-1, keepdim=True) * ref
    noise = noise * torch.sqrt(ref.square().sum(-1, keepdim=True) / noise.square().sum(-1, keepdim=True) / 10)
    est = 3.0 * (ref + noise) + 0.2  # scale and offset must not matter
    torch.testing.assert_close(si_sdr(est, ref), torch.full((2,), 10.0), atol=1e-3, rtol=0)
    assert SISDRLoss()(est, ref).item() == pytest.approx(-10.0, abs=1e-3)


def test_si_sdr_loss_is_finite_for_silence_and_perfect_estimates() -> None:
    clean = speechlike()
    assert math.isfinite(SISDRLoss()(clean, clean).item())
    assert SISDRLoss()(clean, clean).item() < -60
    silent = torch.zeros(2, 1, 8000)
    assert math.isfinite(SISDRLoss()(silent, silent).item())
    values = [SISDRLoss()(add_noise(clean, s), clean).item() for s in SNRS]
    assert values == sorted(values)
