"""bandcrn: bands, identity start, lengths, phase-awareness, causality, level invariance and checkpoints."""

from __future__ import annotations

import pytest
import torch

import mal.models
from mal.models.bandcrn import BandCRN, band_edges, band_matrices, run_gru, run_gru_fused

TINY = {"channels": 4, "rnn_blocks": 1}


def test_band_edges_cover_every_bin_once() -> None:
    edges = band_edges(257, 65, 64, 16000)
    assert edges[:66] == list(range(66)) and edges[-1] == 257 and len(edges) == 65 + 64 + 1
    assert all(b > a for a, b in zip(edges, edges[1:], strict=False))
    widths = [b - a for a, b in zip(edges[65:], edges[66:], strict=False)]
    # ERB bands widen towards high frequencies (up to rounding to whole bins): 1–2 bins at 2 kHz, 5–6 at 8 kHz.
    assert max(widths[:8]) <= 2 and min(widths[-8:]) >= 4
    merge, split = band_matrices(edges)
    assert merge.shape == (257, 129) and split.shape == (129, 257)
    torch.testing.assert_close(merge.sum(dim=0), torch.ones(129))  # each band averages its bins
    torch.testing.assert_close(split.sum(dim=0), torch.ones(257))  # each bin belongs to one band
    with pytest.raises(ValueError, match="linear_bins"):
        band_edges(257, 0, 64, 16000)
    with pytest.raises(ValueError, match="n_bands"):
        band_edges(257, 250, 64, 16000)


def test_untrained_model_returns_its_input() -> None:
    """The mask starts as 1 + 0i: training starts from the noisy floor, not from a muted signal."""
    model = BandCRN(**TINY)
    wav = 0.1 * torch.randn(2, 1, 8000)
    torch.testing.assert_close(model(wav), wav, atol=1e-5, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [1, 7, 255, 256, 16001])
def test_output_length_equals_input_length(length: int, causal: bool) -> None:
    model = BandCRN(**TINY, causal=causal)
    torch.nn.init.normal_(model.decoder.up[-1].conv.weight, std=0.1)  # leave the identity start
    with torch.no_grad():
        out = model(torch.randn(2, 1, length))
    assert out.shape == (2, 1, length) and torch.isfinite(out).all()


@pytest.mark.parametrize("bidirectional", [True, False])
def test_fused_gru_matches_pytorchs(bidirectional: bool) -> None:
    """One GRU of twice the width with block-diagonal weights is the bidirectional GRU, to float rounding."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 4, batch_first=True, bidirectional=bidirectional)
    seq = torch.randn(3, 50, 6)
    fused, plain = run_gru_fused(gru, seq), run_gru(gru, seq)
    assert fused.shape == plain.shape == (3, 50, 8 if bidirectional else 4)
    torch.testing.assert_close(fused, plain, atol=1e-6, rtol=1e-5)
    # The backward direction is really there: changing the second frame changes the first output.
    late = seq.clone()
    late[:, 1] += 1.0
    assert (run_gru_fused(gru, late)[:, 0] != fused[:, 0]).any() == bidirectional


@pytest.mark.parametrize("causal", [False, True])
def test_inference_mode_gives_the_training_paths_output(causal: bool) -> None:
    """Enhancement (inference mode, fused GRUs) and validation (no_grad, PyTorch's GRUs) agree on a trained-like
    model, and training itself never takes the fused path."""
    torch.manual_seed(0)
    model = BandCRN(**TINY, causal=causal).eval()
    torch.nn.init.normal_(model.decoder.up[-1].conv.weight, std=0.1)  # leave the identity start
    wav = 0.1 * torch.randn(2, 1, 16000)
    with torch.no_grad():
        plain = model(wav)
    with torch.inference_mode():
        fused = model(wav)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-4)
    assert torch.equal(model(wav), plain)  # with gradients (training) the path is validation's, bit for bit
    assert not torch.equal(plain, wav)  # the comparison is not trivially between two copies of the input


def test_encoder_sees_phase() -> None:
    """Two signals with equal STFT magnitudes but different phases give different encoder features."""
    model = BandCRN(**TINY)
    wav = torch.randn(1, 1, 4000)
    flipped = -wav  # every bin's phase rotated by π, magnitudes unchanged
    with torch.no_grad():
        a, b = model.encode(wav).layers[0], model.encode(flipped).layers[0]
    assert not torch.allclose(a, b, atol=1e-4)


def test_mask_can_change_phase() -> None:
    """A mask of 0 + 1i (set through the last layer's bias) rotates every bin by 90°: no real mask can."""
    model = BandCRN(**TINY)
    with torch.no_grad():
        bias = model.decoder.up[-1].conv.bias
        bias.zero_()
        bias[1] = bias[3] = 1.0  # the imaginary channel, both sub-pixel phases
        wav = torch.randn(1, 1, 8000)
        out = model(wav)
    spec_in = torch.stft(wav[0], 512, 256, window=torch.hann_window(512), return_complex=True)
    spec_out = torch.stft(out[0], 512, 256, window=torch.hann_window(512), return_complex=True)
    # The cross-spectrum of output and input: a 90° rotation puts (almost) all of it on the imaginary axis.
    inner = (spec_out[:, 5:-5] * spec_in[:, 5:-5].conj()).sum()
    assert inner.imag / inner.abs() > 0.95 and abs(inner.real) / inner.abs() < 0.1


@pytest.mark.parametrize("causal", [True, False])
def test_causal_mode_looks_ahead_at_most_one_window(causal: bool) -> None:
    torch.manual_seed(0)
    model = BandCRN(**TINY, causal=causal).eval()
    torch.nn.init.normal_(model.decoder.up[-1].conv.weight, std=0.5)
    wav = torch.randn(1, 1, 16000)
    changed = wav.clone()
    t0 = 12000
    changed[..., t0:] += torch.randn(16000 - t0)
    with torch.no_grad():
        diff = (model(wav) - model(changed)).abs()[0, 0]
    before = diff[: t0 - model.n_fft]
    if causal:
        assert before.max() == 0  # nothing earlier than one STFT window before the change moves
    else:
        assert before.max() > 1e-4  # the bidirectional model does look ahead


def test_level_invariant() -> None:
    """The input is normalised and the mask multiplies the raw STFT, so a gain passes straight through."""
    torch.manual_seed(0)
    model = BandCRN(**TINY).eval()
    torch.nn.init.normal_(model.decoder.up[-1].conv.weight, std=0.5)
    wav = 0.05 * torch.randn(1, 1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(model(10 * wav), 10 * model(wav), atol=1e-4, rtol=1e-3)


def test_checkpoint_round_trip(tmp_path) -> None:
    model = BandCRN(**TINY, causal=True)
    torch.nn.init.normal_(model.decoder.up[-1].conv.weight, std=0.1)
    path = mal.models.save(model, tmp_path / "bandcrn.pt")
    back = mal.models.load(path)
    wav = torch.randn(1, 1, 3000)
    assert back.hparams == model.hparams and isinstance(back, BandCRN)
    with torch.no_grad():
        assert torch.equal(back(wav), model.eval()(wav))
    assert not any(k in back.state_dict() for k in ("merge", "split"))  # derived from hparams, not stored


@pytest.mark.parametrize(
    "bad, message",
    [({"hop": 300}, "hop"), ({"compress": 0.0}, "compress"), ({"channels": 5}, "even"), ({"rnn_blocks": 0}, ">= 1")],
)
def test_bad_hyperparameters(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BandCRN(**bad)
