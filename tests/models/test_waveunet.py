"""waveunet: lengths, padding, normalisation and the causal variant's lookahead."""

from __future__ import annotations

import pytest
import torch

import mal.models
from mal.models.waveunet import WaveUNet

TINY = {"depth": 2, "hidden": 4, "lstm_layers": 1}


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [1, 7, 255, 16001])
def test_output_length_equals_input_length(length: int, causal: bool) -> None:
    model = WaveUNet(**TINY, causal=causal).eval()
    wav = torch.randn(2, 1, length)
    with torch.no_grad():
        out = model(wav)
    assert out.shape == (2, 1, length) and torch.isfinite(out).all()


def test_default_model_is_cpu_sized_and_lengths_hold() -> None:
    model = WaveUNet().eval()
    assert 1_000_000 <= mal.models.count_parameters(model) <= 1_500_000
    with torch.no_grad():
        assert model(torch.randn(1, 1, 16001)).shape == (1, 1, 16001)


@pytest.mark.parametrize("length", [1, 8, 9, 100, 595, 596, 597, 16000])
def test_valid_length_is_the_smallest_exactly_divisible_length(length: int) -> None:
    model = WaveUNet(depth=4, kernel_size=8, stride=4)
    valid = model.valid_length(length)

    def fits(n: int) -> bool:
        for _ in range(4):
            if n < 8 or (n - 8) % 4:
                return False
            n = (n - 8) // 4 + 1
        return True

    assert valid >= length and fits(valid)
    assert not any(fits(n) for n in range(length, valid))


def test_encoder_strides_and_channels() -> None:
    model = WaveUNet(depth=3, hidden=5, growth=2.0, lstm_layers=1)
    enc = model.encode(torch.randn(1, 1, 5000))
    assert [layer.shape[1] for layer in enc.layers] == [5, 10, 20]
    lengths = [layer.shape[-1] for layer in enc.layers]
    assert lengths[1] == (lengths[0] - 8) // 4 + 1 and lengths[2] == (lengths[1] - 8) // 4 + 1
    assert enc.bottleneck.shape == enc.layers[-1].shape
    assert enc.context["length"] == 5000


def test_normalized_model_is_scale_equivariant() -> None:
    model = WaveUNet(**TINY, floor=0.0).eval()
    wav = torch.randn(2, 1, 3000)
    with torch.no_grad():
        torch.testing.assert_close(model(10.0 * wav), 10.0 * model(wav), rtol=1e-4, atol=1e-5)
        # and each item is normalised by its own std
        torch.testing.assert_close(
            model.encode(wav * torch.tensor([1.0, 3.0])[:, None, None]).layers[0][1],
            model.encode(wav).layers[0][1],
            rtol=1e-4,
            atol=1e-5,
        )


def test_unnormalized_model_is_not_scale_equivariant() -> None:
    model = WaveUNet(**TINY, normalize=False).eval()
    wav = torch.randn(1, 1, 3000)
    with torch.no_grad():
        assert not torch.allclose(model(10.0 * wav), 10.0 * model(wav), rtol=1e-3, atol=1e-4)


def test_silence_gives_finite_output() -> None:
    with torch.no_grad():
        out = WaveUNet(**TINY).eval()(torch.zeros(1, 1, 2000))
    assert torch.isfinite(out).all()


def _perturb_after(model: WaveUNet, t: int, length: int = 6000) -> torch.Tensor:
    wav = torch.randn(1, 1, length)
    other = wav.clone()
    other[..., t:] += torch.randn(length - t)
    with torch.no_grad():
        return (model(wav) - model(other)).abs()[0, 0]


def test_causal_output_ignores_input_beyond_the_lookahead() -> None:
    model = WaveUNet(depth=3, hidden=4, lstm_layers=1, causal=True, normalize=False).eval()
    assert model.lookahead == 7 + 28 + 112
    t = 3000
    diff = _perturb_after(model, t)
    assert diff[: t - model.lookahead].max() == 0
    assert diff[t - model.lookahead :].max() > 0


def test_noncausal_output_depends_on_the_future() -> None:
    model = WaveUNet(depth=3, hidden=4, lstm_layers=1, causal=False, normalize=False).eval()
    t = 3000
    assert _perturb_after(model, t)[: t - model.lookahead].max() > 0


def test_causal_model_uses_a_unidirectional_lstm_without_linear() -> None:
    causal, full = WaveUNet(**TINY, causal=True), WaveUNet(**TINY, causal=False)
    assert not causal.encoder.sequence.lstm.bidirectional and causal.encoder.sequence.linear is None
    assert full.encoder.sequence.lstm.bidirectional and full.encoder.sequence.linear is not None


def test_rescale_shrinks_initial_conv_weights() -> None:
    torch.manual_seed(0)
    plain = WaveUNet(**TINY, rescale=0.0)
    torch.manual_seed(0)
    rescaled = WaveUNet(**TINY, rescale=0.1)
    w_plain = plain.encoder.blocks[1][0].weight
    w_rescaled = rescaled.encoder.blocks[1][0].weight
    torch.testing.assert_close(w_rescaled, w_plain / (w_plain.std() / 0.1) ** 0.5)


def test_decode_refuses_more_samples_than_encoded() -> None:
    model = WaveUNet(**TINY)
    enc = model.encode(torch.randn(1, 1, 100))
    with pytest.raises(ValueError, match="decode"):
        model.decode(enc, 100_000)


@pytest.mark.parametrize("hparams", [{"depth": 0}, {"hidden": 0}, {"lstm_layers": 0}, {"stride": 9}, {"stride": 0}])
def test_bad_hyperparameters_are_refused(hparams: dict) -> None:
    with pytest.raises(ValueError):
        WaveUNet(**hparams)
