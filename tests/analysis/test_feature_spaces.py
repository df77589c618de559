from __future__ import annotations

import pytest
import torch
from analysis_helpers import mixtures

from mal.analysis import LogMelDistance, build_spaces
from mal.losses import LossNetConfig, pretrain_lossnet


def test_logmel_distance() -> None:
    x = torch.randn(2, 1, 8000)
    dist = LogMelDistance()
    assert dist(x, x).item() == 0.0
    assert dist(x + 0.5 * torch.randn_like(x), x).item() > dist(x + 0.05 * torch.randn_like(x), x).item() > 0
    with pytest.raises(ValueError, match="shapes differ"):
        dist(x, x[..., :4000])


def test_every_space_is_labelled_honestly(tmp_path, monkeypatch) -> None:
    # With no weights file (an empty torch hub cache), the deep backbone must say random-init in its row name.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.warns(UserWarning, match="RANDOM"):
        spaces, skipped = build_spaces(["logmel", "mrstft", "deep:wavlm_base", "lossnet"])
    assert [s.name for s in spaces] == ["logmel", "mrstft", "deep:wavlm_base (random-init)"]
    assert skipped == {"lossnet": "no lossnet checkpoint given (parameter lossnet_checkpoint)"}
    x, y = torch.randn(1, 1, 8000), torch.randn(1, 1, 8000)
    assert all(s(x, x) == 0.0 and s(x, y) > 0 for s in spaces[:2])
    assert spaces[2](x, y) > spaces[2](x, x) >= 0
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_spaces(["deep:wavlm_base"], deep_weights=str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="unknown comparison space 'mfcc'"):
        build_spaces(["mfcc"])


def test_lossnet_space_from_a_pretrained_checkpoint(tmp_path) -> None:
    cfg = LossNetConfig(
        n_layers=3, channels=4, steps=2, batch_size=4, weight_pairs=4, valid_fraction=0.25, progress=False
    )
    path = pretrain_lossnet(
        mixtures([0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0], same_clean=False), cfg, tmp_path / "ln.pt"
    )
    (space,), skipped = build_spaces(["lossnet"], lossnet_checkpoint=str(path))
    assert space.name == "lossnet" and "ln.pt" in space.description and not skipped
    x = torch.randn(1, 1, 16000)
    assert space(x, x) == 0.0 and space(x, torch.randn_like(x)) > 0
