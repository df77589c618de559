"""Lossnet: pretraining on a toy corpus learns both tasks; the frozen feature loss behaves like a loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from loss_helpers import ToyCorpus, add_noise

from mal.config import ConfigError
from mal.losses import LossConfig, LossNetConfig, LossNetFeatureLoss, build_objective, load_lossnet, pretrain_lossnet
from mal.losses.lossnet import BN_RECALIBRATION_BATCHES, LossNetError

TINY = {"steps": 40, "batch_size": 8, "segment_seconds": 0.25, "weight_pairs": 16, "valid_fraction": 0.25}


@pytest.fixture(scope="module")
def lossnet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = LossNetConfig.from_params({**TINY, "progress": False, "device": "cpu"})
    return pretrain_lossnet(ToyCorpus(), cfg, tmp_path_factory.mktemp("lossnet") / "lossnet.pt")


def test_pretraining_beats_chance_on_both_tasks(lossnet_path: Path) -> None:
    net, ckpt = load_lossnet(lossnet_path)
    metrics = ckpt["metrics"]
    assert ckpt["labels"] == {"noise_type": ["brown", "white"], "speaker": ["high", "low", "mid"]}
    assert metrics["valid_items"] == 9 and metrics["train_items"] == 27
    for task in ("noise_type", "speaker"):
        assert metrics[f"valid_acc_{task}"] >= metrics[f"chance_{task}"] + 0.25, metrics
    assert len(ckpt["layer_weights"]) == len(net.blocks) == 8
    assert all(w > 0 for w in ckpt["layer_weights"])
    assert not net.training


def test_feature_loss_is_zero_at_identity_and_grows_as_snr_drops(lossnet_path: Path) -> None:
    loss = LossNetFeatureLoss(lossnet_path)
    assert loss.n_layers == 6 and loss.label == "lossnet[first 6 layers] (lossnet.pt)"
    noisy, clean, _ = ToyCorpus(per_class=1, seed=3)[0]
    clean, noisy = clean[None], noisy[None]
    assert loss(clean, clean.clone()).item() == 0.0
    values = torch.tensor([loss(add_noise(clean, s), clean).item() for s in (30.0, 20.0, 10.0, 0.0, -10.0)])
    assert bool((values.diff() > 0).all()), values
    # the per-layer weights put an unprocessed noisy item of the corpus at about 1
    assert 0.3 < loss(noisy, clean).item() < 3.0


def test_feature_loss_gradients_and_frozen_network(lossnet_path: Path) -> None:
    loss = LossNetFeatureLoss(lossnet_path, layers=None)
    assert loss.n_layers == 8
    _, clean, _ = ToyCorpus(per_class=1, seed=4)[1]
    estimate = add_noise(clean[None], 5.0).requires_grad_(True)
    loss.train()  # the trainer may flip modes; the frozen net must still use its stored statistics
    running_mean = loss.net.blocks[0][1].running_mean.clone()
    loss(estimate, clean[None]).backward()
    assert estimate.grad is not None and estimate.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())
    assert torch.equal(running_mean, loss.net.blocks[0][1].running_mean)
    with pytest.raises(ValueError, match=r"\(1, 1, 100\) vs reference \(1, 1, 101\)"):
        loss(torch.zeros(1, 1, 100), torch.zeros(1, 1, 101))
    assert LossNetFeatureLoss(lossnet_path, layers=50).n_layers == 8  # capped at the depth


def test_objective_with_lossnet(lossnet_path: Path) -> None:
    objective = build_objective(LossConfig(lossnet=0.5, lossnet_path=str(lossnet_path), lossnet_layers=3))
    assert objective.describe()["terms"]["lossnet"] == "lossnet[first 3 layers] (lossnet.pt)"
    noisy, clean, _ = ToyCorpus(per_class=1)[0]
    _, breakdown = objective(noisy[None], clean[None])
    assert set(breakdown) == {"l1", "mrstft", "lossnet", "total"}


def test_bad_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LossNetError, match="not found"):
        LossNetFeatureLoss(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(LossNetError, match="not a lossnet checkpoint"):
        load_lossnet(other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(LossNetError, match="unreadable"):
        load_lossnet(garbage)


class _NoSpeaker(ToyCorpus):
    def __getitem__(self, index: int):
        noisy, clean, meta = super().__getitem__(index)
        return noisy, clean, {"noise_type": meta["noise_type"]}


def test_pretraining_refuses_bad_datasets(tmp_path: Path) -> None:
    cfg = LossNetConfig.from_params({**TINY, "steps": 1, "progress": False})
    with pytest.raises(ValueError, match=r"item 0 meta has no \['speaker'\]"):
        pretrain_lossnet(_NoSpeaker(per_class=1), cfg, tmp_path / "x.pt")
    one = ToyCorpus(per_class=1)
    one.items = one.items[:1]
    with pytest.raises(ValueError, match="at least 2 items"):
        pretrain_lossnet(one, cfg, tmp_path / "x.pt")
    same = ToyCorpus(per_class=2)
    same.items = same.items[:2]  # one speaker, one noise type
    with pytest.raises(ValueError, match="single class"):
        pretrain_lossnet(same, cfg, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(ConfigError, match="valid_fraction"):
        LossNetConfig.from_params({"valid_fraction": 1.0})


def test_pretraining_on_a_pair_dataset_reads_labels_without_decoding(tmp_path: Path) -> None:
    """mal's PairDataset (files on disk) works as the corpus; labels come from ``meta()`` alone."""
    from mal.audio import write_audio
    from mal.data.loaders import PairDataset, PairEntry

    entries = []
    for k, (noisy, clean, meta) in enumerate(ToyCorpus(per_class=1, seconds=0.3)):
        n_path = write_audio(tmp_path / f"noisy_{k}.wav", noisy, subtype="FLOAT")
        c_path = write_audio(tmp_path / f"clean_{k}.wav", clean, subtype="FLOAT")
        entries.append(PairEntry(n_path, c_path, {**meta, "id": f"item{k}", "dataset": "toy", "split": "train"}))

    class CountingPairs(PairDataset):
        decoded = 0

        def load_pair(self, index: int):
            CountingPairs.decoded += 1
            return super().load_pair(index)

    dataset = CountingPairs(entries, name="toy")
    cfg = LossNetConfig.from_params({**TINY, "steps": 2, "weight_pairs": 2, "progress": False, "device": "cpu"})
    path = pretrain_lossnet(dataset, cfg, tmp_path / "out" / "lossnet.pt")
    _, ckpt = load_lossnet(path)
    assert ckpt["labels"]["speaker"] == ["high", "low", "mid"]
    n_valid = int(ckpt["metrics"]["valid_items"])
    # training batches, batch-norm recalibration, held-out accuracy, layer weights: and nothing for the labels
    assert CountingPairs.decoded == (cfg.steps + BN_RECALIBRATION_BATCHES) * cfg.batch_size + n_valid + cfg.weight_pairs
