"""specmask: STFT round trip, lengths, input features, masks and causality."""

from __future__ import annotations

import pytest
import torch

import mal.models
from mal.models.specmask import FreqUpBlock, SpecMask, istft, stft

TINY = {"depth": 2, "hidden": 4, "gru_hidden": 16}


@pytest.mark.parametrize("length", [1, 7, 127, 128, 255, 16001])
def test_stft_istft_round_trip_is_perfect(length: int) -> None:
    wav = torch.randn(3, 1, length)
    spec = stft(wav, 512, 128)
    assert spec.shape == (3, 257, -(-length // 128) + 1) and spec.dtype == torch.complex64
    torch.testing.assert_close(istft(spec, 512, 128, length), wav, atol=1e-5, rtol=0)


def test_stft_runs_in_float32_under_autocast() -> None:
    wav = torch.randn(1, 1, 1000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec = stft(wav.bfloat16(), 512, 128)
        back = istft(spec, 512, 128, 1000)
    assert spec.dtype == torch.complex64 and back.dtype == torch.float32


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mask", ["sigmoid", "complex"])
@pytest.mark.parametrize("features", ["mag", "ri"])
@pytest.mark.parametrize("length", [1, 7, 255, 16001])
def test_output_length_equals_input_length(length: int, features: str, mask: str, bidirectional: bool) -> None:
    model = SpecMask(**TINY, input=features, mask=mask, bidirectional=bidirectional).eval()
    wav = torch.randn(2, 1, length)
    with torch.no_grad():
        out = model(wav)
    assert out.shape == (2, 1, length) and torch.isfinite(out).all()


def test_default_model_matches_the_prototype_size() -> None:
    model = SpecMask().eval()
    assert 900_000 <= mal.models.count_parameters(model) <= 1_000_000
    enc = model.encode(torch.randn(1, 1, 16000))
    assert [tuple(layer.shape) for layer in enc.layers] == [
        (1, c, f, 126) for c, f in ((12, 129), (18, 65), (27, 33), (40, 17))
    ]
    assert enc.bottleneck.shape == (1, 256, 126)


@pytest.mark.parametrize("mask", ["sigmoid", "complex"])
def test_a_unit_mask_reproduces_the_input(mask: str) -> None:
    model = SpecMask(**TINY, mask=mask, normalize=True).eval()
    last = model.decoder.blocks[-1].conv  # outputs the mask channels for the even and the odd bins
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([30.0] if mask == "sigmoid" else [30.0, 0.0]).repeat(2))  # sigmoid/tanh(30) = 1
        wav = torch.randn(2, 1, 4321)
        torch.testing.assert_close(model(wav), wav, atol=1e-5, rtol=0)


def test_complex_mask_can_rotate_the_phase() -> None:
    model = SpecMask(**TINY, mask="complex").eval()
    last = model.decoder.blocks[-1].conv
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([-30.0, 0.0]).repeat(2))  # mask = -1: a phase flip, out of a sigmoid mask's reach
        wav = torch.randn(1, 1, 3000)
        torch.testing.assert_close(model(wav), -wav, atol=1e-5, rtol=0)


def test_ri_features_carry_phase_and_the_compressed_magnitude() -> None:
    mag_model, ri_model = SpecMask(**TINY, input="mag"), SpecMask(**TINY, input="ri")
    spec = stft(torch.randn(1, 1, 2000), 512, 128)
    mag, ri = mag_model.features(spec), ri_model.features(spec)
    assert mag.shape == (1, 1, 257, spec.shape[-1]) and ri.shape == (1, 2, 257, spec.shape[-1])
    torch.testing.assert_close(ri.square().sum(1, keepdim=True).sqrt(), mag, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.atan2(ri[:, 1], ri[:, 0]), spec.angle(), atol=1e-4, rtol=0)
    # Magnitude features cannot tell a signal from its negation; real/imaginary ones can.
    neg = stft(-torch.ones(1), 512, 128)
    pos = stft(torch.ones(1), 512, 128)
    assert torch.equal(mag_model.features(neg), mag_model.features(pos))
    assert not torch.allclose(ri_model.features(neg), ri_model.features(pos))


def test_causal_output_ignores_input_beyond_the_stft_window() -> None:
    model = SpecMask(**TINY, bidirectional=False).eval()
    t, length = 3000, 6000
    wav = torch.randn(1, 1, length)
    other = wav.clone()
    other[..., t:] += torch.randn(length - t)
    with torch.no_grad():
        diff = (model(wav) - model(other)).abs()[0, 0]
    assert diff[: t - model.n_fft].max() == 0
    assert diff[t - model.n_fft :].max() > 0
    bidi = SpecMask(**TINY, bidirectional=True).eval()
    with torch.no_grad():
        assert (bidi(wav) - bidi(other)).abs()[0, 0, : t - model.n_fft].max() > 0


def test_normalize_makes_the_model_scale_equivariant() -> None:
    model = SpecMask(**TINY, normalize=True, floor=0.0).eval()
    wav = torch.randn(1, 1, 3000)
    with torch.no_grad():
        torch.testing.assert_close(model(5.0 * wav), 5.0 * model(wav), rtol=1e-4, atol=1e-5)


def test_sigmoid_mask_never_amplifies_any_bin() -> None:
    model = SpecMask(**TINY).eval()
    wav = torch.randn(1, 1, 5000)
    with torch.no_grad():
        out_spec, in_spec = stft(model(wav), 512, 128), stft(wav, 512, 128)
    # iSTFT then STFT is a projection, so compare energies rather than bins: a mask in (0, 1) only removes energy.
    assert out_spec.abs().square().sum() < in_spec.abs().square().sum()


@pytest.mark.parametrize("kernel_size", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("n_fft", [64, 96, 512])
def test_frequency_sizes_round_trip_for_any_kernel(n_fft: int, kernel_size: int) -> None:
    model = SpecMask(n_fft=n_fft, hop=n_fft // 4, depth=3, hidden=3, gru_hidden=8, kernel_size=kernel_size).eval()
    with torch.no_grad():
        enc = model.encode(torch.randn(1, 1, 999))
        mask = model.decoder(enc.bottleneck, enc.layers)
        assert mask.shape == (1, 1, n_fft // 2 + 1, enc.bottleneck.shape[-1])
        assert model(torch.randn(1, 1, 999)).shape == (1, 1, 999)


def test_up_block_puts_even_bins_from_the_first_phase() -> None:
    up = FreqUpBlock(1, 1, kernel_size=1, in_freqs=3, out_freqs=5, last=True)  # 1 tap: a pure interleave
    with torch.no_grad():
        up.conv.weight.copy_(torch.tensor([1.0, 10.0]).reshape(2, 1, 1, 1))
        up.conv.bias.zero_()
        out = up(torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1))
    assert out.flatten().tolist() == [1.0, 10.0, 2.0, 20.0, 3.0]


def test_decode_refuses_more_samples_than_encoded() -> None:
    model = SpecMask(**TINY)
    enc = model.encode(torch.randn(1, 1, 1000))
    with pytest.raises(ValueError, match="decode"):
        model.decode(enc, 5000)


@pytest.mark.parametrize(
    ("hparams", "match"),
    [
        ({"input": "db"}, "input must be one of"),
        ({"mask": "relu"}, "mask must be one of"),
        ({"hop": 300}, "hop"),
        ({"depth": 0}, "depth"),
    ],
)
def test_bad_hyperparameters_are_refused(hparams: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SpecMask(**hparams)


@pytest.mark.parametrize(("features", "mask"), [("ri", "complex"), ("ri", "sigmoid"), ("mag", "complex")])
def test_gradients_are_finite_for_every_variant_even_on_silence(features: str, mask: str) -> None:
    model = SpecMask(**TINY, input=features, mask=mask)
    wav = torch.cat([torch.zeros(1, 1, 2000), torch.randn(1, 1, 2000)])
    wav.requires_grad_(True)
    out = model(wav)
    (out.square().mean() + sum(f.square().mean() for f in model.encode(wav).features())).backward()
    assert torch.isfinite(wav.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
