"""The encode()/decode() contract (docs/method.md) for every registered model, plus build/save/load/describe."""

from __future__ import annotations

import pytest
import torch

import mal.models
from mal.models.registry import REGISTRY, CheckpointError


def test_every_registered_model_has_tiny_settings(tiny_hparams: dict) -> None:
    assert set(tiny_hparams) == set(REGISTRY)


def test_forward_equals_decode_of_encode(tiny_model: mal.models.SEModel) -> None:
    wav = torch.randn(2, 1, 1234)
    with torch.no_grad():
        enc = tiny_model.encode(wav)
        assert torch.equal(tiny_model(wav), tiny_model.decode(enc, 1234))


def test_encoded_has_layers_and_a_sequence_bottleneck(
    tiny_model: mal.models.SEModel, tiny_layers: dict[str, int]
) -> None:
    wav = torch.randn(3, 1, 4000)
    enc = tiny_model.encode(wav)
    assert len(enc.layers) == tiny_layers[tiny_model.name]
    assert all(layer.shape[0] == 3 for layer in enc.layers)
    assert enc.bottleneck.dim() == 3 and enc.bottleneck.shape[0] == 3
    assert enc.features()[-1] is enc.bottleneck


def test_parameters_split_into_encoder_and_decoder(tiny_model: mal.models.SEModel) -> None:
    names = [name for name, _ in tiny_model.named_parameters()]
    assert names and all(name.startswith(("encoder.", "decoder.")) for name in names)
    assert mal.models.count_parameters(tiny_model.encoder) > 0
    assert mal.models.count_parameters(tiny_model.decoder) > 0
    assert mal.models.count_parameters(tiny_model) == mal.models.count_parameters(
        tiny_model.encoder
    ) + mal.models.count_parameters(tiny_model.decoder)


@pytest.mark.parametrize("shape", [(800,), (2, 800), (2, 1, 800)])
def test_accepted_input_shapes_come_back_unchanged(tiny_model: mal.models.SEModel, shape: tuple[int, ...]) -> None:
    wav = torch.randn(shape)
    with torch.no_grad():
        out = tiny_model(wav)
        enc = tiny_model.encode(wav)  # encode accepts the same shapes (MAL feeds it (B, T) batches)
    assert out.shape == wav.shape and out.dtype == torch.float32
    assert enc.bottleneck.shape[0] == (1 if len(shape) == 1 else 2)


def test_stereo_input_is_refused(tiny_model: mal.models.SEModel) -> None:
    with pytest.raises(ValueError, match=r"mono.*\(2, 2, 800\)"):
        tiny_model(torch.randn(2, 2, 800))
    with pytest.raises(ValueError, match="mono"):
        tiny_model.encode(torch.randn(2, 2, 800))


def test_float64_input_gives_float32_output(tiny_model: mal.models.SEModel) -> None:
    wav = torch.randn(1, 1, 500, dtype=torch.float64)
    with torch.no_grad():
        out = tiny_model(wav)
        ref = tiny_model(wav.float())
    assert out.dtype == torch.float32 and torch.equal(out, ref)


def test_gradients_reach_every_encoder_and_decoder_parameter(tiny_model: mal.models.SEModel) -> None:
    tiny_model.train()
    with torch.no_grad():  # leave any zero-initialised layer (bandcrn starts as the identity), as one step would
        for param in tiny_model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    wav = torch.randn(2, 1, 3000, requires_grad=True)
    tiny_model(wav).square().mean().backward()
    for name, param in tiny_model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    for half in (tiny_model.encoder, tiny_model.decoder):
        assert sum(p.grad.abs().sum() for p in half.parameters()) > 0
    # MAL backpropagates through E*(ŷ) to ŷ, so the input gradient must exist and be finite too.
    assert wav.grad is not None and torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0


def test_encoder_gradient_is_finite_on_silence(tiny_model: mal.models.SEModel) -> None:
    wav = torch.zeros(1, 1, 2000, requires_grad=True)
    sum(f.square().mean() for f in tiny_model.encode(wav).features()).backward()
    assert torch.isfinite(wav.grad).all()


def test_save_load_round_trip_gives_identical_outputs(tiny_model: mal.models.SEModel, tmp_path) -> None:
    wav = torch.randn(2, 1, 2500)
    path = mal.models.save(tiny_model, tmp_path / "model.pt", config={"note": "test"})
    loaded = mal.models.load(path)
    assert type(loaded) is type(tiny_model) and loaded.hparams == tiny_model.hparams
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(wav), tiny_model(wav))


def test_load_rejects_missing_corrupt_and_foreign_files(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found.*missing.pt"):
        mal.models.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02 definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt: unreadable checkpoint"):
        mal.models.load(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: not a mal checkpoint"):
        mal.models.load(foreign)


def test_truncated_checkpoint_is_reported(tiny_model: mal.models.SEModel, tmp_path) -> None:
    path = mal.models.save(tiny_model, tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        mal.models.load(path)


def test_describe_reports_sizes_and_macs(tiny_model: mal.models.SEModel) -> None:
    info = mal.models.describe(tiny_model)
    assert info["model"] == tiny_model.name and info["hparams"] == tiny_model.hparams
    assert info["params"] == info["params_encoder"] + info["params_decoder"] > 0
    assert info["macs_per_second"] > info["params"]  # every weight is used at least once per second of audio


def test_build_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        mal.models.build("nope")


def test_cpu_autocast_runs_and_returns_float32(tiny_model: mal.models.SEModel) -> None:
    wav = torch.randn(2, 1, 3000)
    with torch.no_grad():
        ref = tiny_model(wav)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = tiny_model(wav)
    assert out.dtype == torch.float32 and out.shape == wav.shape
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max() < 0.1 * ref.abs().max() + 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_runs_under_amp(tiny_model: mal.models.SEModel) -> None:
    wav = torch.randn(2, 1, 16001)
    with torch.no_grad():
        ref = tiny_model(wav)
        model = tiny_model.to("cuda")
        out = model(wav.cuda())
        with torch.autocast("cuda", dtype=torch.float16):
            amp = model(wav.cuda())
    assert out.device.type == "cuda" and out.dtype == torch.float32
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-3)
    assert amp.dtype == torch.float32 and torch.isfinite(amp).all()
    model.train()
    with torch.autocast("cuda", dtype=torch.float16):
        model(wav.cuda()).square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
