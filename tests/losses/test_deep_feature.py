"""DeepFeatureLoss: refuses without weights, labels random init, loads a local file or the hub cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchaudio
from loss_helpers import add_noise, speechlike

from mal.losses import DeepFeatureLoss, LossConfig, build_objective
from mal.losses.deep_feature import BUNDLE_FILES, hub_cache_path


@pytest.fixture
def empty_hub(tmp_path: Path) -> Iterator[Path]:
    """Point the torch hub cache at an empty folder for the test."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        yield tmp_path / "hub"
    finally:
        torch.hub.set_dir(old)


def _extractor_state(seed: int) -> dict[str, torch.Tensor]:
    """The CNN part of a randomly initialised wavlm_base, as a pretrained file would hold it."""
    torch.manual_seed(seed)
    net = torchaudio.models.wavlm_base()
    return {k: v for k, v in net.state_dict().items() if k.startswith("feature_extractor.")}


def test_bundle_file_names_match_torchaudio() -> None:
    for backbone, name in BUNDLE_FILES.items():
        bundle = getattr(torchaudio.pipelines, backbone.upper())
        assert Path(bundle._path).name == name


def test_refuses_without_weights_and_names_the_searched_path(empty_hub: Path) -> None:
    expected = empty_hub / "checkpoints" / "wavlm_base.pth"
    assert hub_cache_path("wavlm_base") == expected
    with pytest.raises(FileNotFoundError, match="random_init=True") as info:
        DeepFeatureLoss("wavlm_base")
    assert str(expected) in str(info.value)
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist"):
        DeepFeatureLoss("wavlm_base", weights_path=empty_hub / "nope.pth")
    with pytest.raises(FileNotFoundError, match="hubert_fairseq_base_ls960.pth"):
        build_objective(LossConfig(deep_feature=1.0, deep_feature_backbone="hubert_base"))


def test_random_init_is_labelled_and_behaves_like_a_loss(empty_hub: Path) -> None:
    with pytest.warns(UserWarning, match="RANDOM weights"):
        loss = DeepFeatureLoss("wavlm_base", random_init=True)
    assert not loss.pretrained and loss.label == "wavlm_base[cnn 0-6] (random-init)"
    assert loss.transformer is None  # CNN layers only: the transformer is not kept
    clean = speechlike(seconds=0.25)
    assert loss(clean, clean.clone()).item() == 0.0
    values = torch.tensor([loss(add_noise(clean, s), clean).item() for s in (30.0, 15.0, 0.0, -15.0)])
    assert bool((values.diff() > 0).all()), values
    estimate = add_noise(clean, 5.0).requires_grad_(True)
    loss(estimate, clean).backward()
    assert estimate.grad is not None and estimate.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())
    with pytest.raises(ValueError, match=r"\(2, 1, 4000\) vs reference \(2, 1, 3999\)"):
        loss(torch.zeros(2, 1, 4000), torch.zeros(2, 1, 3999))
    with pytest.raises(ValueError, match="receptive field"):
        loss(torch.zeros(2, 1, 399), torch.zeros(2, 1, 399))


def test_random_init_objective_says_so(empty_hub: Path) -> None:
    cfg = LossConfig(deep_feature=1.0, deep_feature_random_init=True, deep_feature_layers=[6])
    with pytest.warns(UserWarning, match="RANDOM"):
        objective = build_objective(cfg)
    assert objective.describe()["terms"]["deep_feature"] == "wavlm_base[cnn 6] (random-init)"


def test_loads_a_local_file_and_the_hub_cache(tmp_path: Path, empty_hub: Path) -> None:
    state = _extractor_state(seed=7)
    local = tmp_path / "extractor.pt"
    torch.save(state, local)
    loss = DeepFeatureLoss("wavlm_base", weights_path=local)
    assert loss.pretrained and loss.label == "wavlm_base[cnn 0-6] (pretrained: extractor.pt)"
    for k, v in state.items():
        torch.testing.assert_close(loss.extractor.state_dict()[k.removeprefix("feature_extractor.")], v)

    cached = hub_cache_path("wavlm_base")
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    from_cache = DeepFeatureLoss("wavlm_base", layers="cnn_last")
    assert from_cache.weights_path == cached and from_cache.label.endswith("(pretrained: wavlm_base.pth)")
    clean = speechlike(seconds=0.25)
    noisy = add_noise(clean, 0.0)
    with torch.no_grad():
        direct = torchaudio.models.wavlm_base()
        direct.load_state_dict(state, strict=False)
        a = direct.feature_extractor(noisy[:, 0], None)[0]
        b = direct.feature_extractor(clean[:, 0], None)[0]
    expected = ((a - b).abs().mean() / b.abs().mean()).item()
    assert from_cache(noisy, clean).item() == pytest.approx(expected, rel=1e-5)


def test_refuses_a_file_that_does_not_cover_the_layers(tmp_path: Path) -> None:
    local = tmp_path / "extractor.pt"
    torch.save(_extractor_state(seed=1), local)
    with pytest.raises(ValueError, match=r"missing keys \['encoder"):
        DeepFeatureLoss("wavlm_base", layers=[7], weights_path=local)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="unexpected keys"):
        DeepFeatureLoss("wavlm_base", weights_path=foreign)


def test_transformer_layers_are_truncated_to_the_deepest_used(empty_hub: Path) -> None:
    with pytest.warns(UserWarning):
        loss = DeepFeatureLoss("hubert_base", layers=[6, 8], random_init=True)
    assert loss.label == "hubert_base[cnn 6; transformer 2] (random-init)"
    assert len(loss.transformer.transformer.layers) == 2
    clean = speechlike(seconds=0.25)
    assert loss(add_noise(clean, 0.0), clean).item() > 0
    with pytest.raises(ValueError, match="0..18"):
        DeepFeatureLoss("hubert_base", layers=[19], random_init=True)
