from __future__ import annotations

import pytest
import torch
from analysis_helpers import IdentityModel

from mal.analysis import encoder_features, feature_distance, layer_distances, layer_names, pool, resolve_layers


def test_resolve_layers() -> None:
    assert resolve_layers("all", 4) == [0, 1, 2, 3]
    assert resolve_layers("bottleneck", 4) == [3]
    assert resolve_layers("blocks", 4) == [0, 1, 2]
    assert resolve_layers("2, 0,-1", 4) == [0, 2, 3]
    assert resolve_layers([-1, 3], 4) == [3]
    assert layer_names(3) == ["layer0", "layer1", "bottleneck"]
    with pytest.raises(ValueError, match="out of range"):
        resolve_layers([4], 4)
    with pytest.raises(ValueError, match="comma-separated"):
        resolve_layers("first", 4)


def test_pool_is_channel_mean_then_std() -> None:
    x = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]])  # (B=1, C=2, T=2)
    assert pool(x).tolist() == [[2.0, 2.0, 1.0, 0.0]]
    assert pool(torch.ones(2, 3, 4, 5)).shape == (2, 6)  # 2-D feature maps pool over all trailing axes
    with pytest.raises(ValueError, match="B, C"):
        pool(torch.ones(3))


def test_feature_distance_and_normalisation() -> None:
    ref = torch.randn(2, 3, 10)
    assert feature_distance(ref, ref).tolist() == [0.0, 0.0]
    est = ref + 1.0
    raw = feature_distance(est, ref, "l1", normalise=False)
    assert torch.allclose(raw, torch.ones(2))
    # normalised distances do not change when both feature maps are scaled together
    assert torch.allclose(feature_distance(5 * est, 5 * ref), feature_distance(est, ref))
    assert torch.allclose(feature_distance(est, ref, "l2", normalise=False), torch.ones(2))
    with pytest.raises(ValueError, match="shape"):
        feature_distance(ref, ref[..., :5])
    with pytest.raises(ValueError, match="l1"):
        feature_distance(ref, ref, "cosine")


def test_encoder_features_of_any_semodel() -> None:
    model = IdentityModel().eval()
    wav = torch.randn(1, 1600)
    feats = encoder_features(model, wav)
    assert [f.shape[1] for f in feats] == [4, 6, 3]
    assert all(not f.requires_grad for f in feats)
    assert len(encoder_features(model, wav[0])) == 3  # (T,) is accepted
    d = layer_distances(feats, encoder_features(model, 2 * wav), [0, 1, 2], normalise=True)
    # a linear encoder (with biases) keeps distances finite and positive when the input doubles
    assert all(v > 0 for v in d) and len(d) == 3
