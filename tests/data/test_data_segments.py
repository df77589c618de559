"""Training segments: crops, padding, determinism per (seed, epoch, index), remixing, collation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from mal.data import SegmentDataset, collate_segments, open_dataset


@pytest.fixture()
def pairs(tmp_path: Path):
    rng = np.random.default_rng(0)
    for i, seconds in enumerate([1.0, 0.25, 2.0, 1.5]):
        n = int(seconds * 16000)
        clean = (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(n) / 16000)).astype(np.float32)
        noise = (0.05 * rng.standard_normal(n)).astype(np.float32)
        (tmp_path / "clean").mkdir(exist_ok=True)
        (tmp_path / "noisy").mkdir(exist_ok=True)
        sf.write(tmp_path / "clean" / f"u{i}.wav", clean, 16000, subtype="FLOAT")
        sf.write(tmp_path / "noisy" / f"u{i}.wav", clean + noise, 16000, subtype="FLOAT")
    return open_dataset("folders", tmp_path, "")


def test_crops_are_aligned_and_short_items_padded_at_the_end(pairs) -> None:
    seg = SegmentDataset(pairs, segment_seconds=0.5, seed=1)
    assert len(seg) == 4
    for i in range(len(seg)):
        noisy, clean, uid = seg[i]
        assert noisy.shape == clean.shape == (1, 8000) and uid == pairs.ids[i]
        full_noisy, full_clean = pairs.load_pair(i)
        # The crop is a contiguous window of the utterance, the same for noisy and clean.
        starts = [s for s in range(full_clean.shape[-1] - 7999) if torch.equal(full_clean[..., s : s + 8000], clean)]
        if full_clean.shape[-1] >= 8000:
            assert starts and torch.equal(full_noisy[..., starts[0] : starts[0] + 8000], noisy)
    noisy, clean, _ = seg[1]  # the 0.25 s item: data first, zeros after
    assert torch.equal(clean[..., :4000], pairs.load_pair(1)[1]) and clean[..., 4000:].abs().max() == 0
    assert noisy[..., 4000:].abs().max() == 0


def test_deterministic_per_seed_epoch_and_index(pairs) -> None:
    a, b = SegmentDataset(pairs, 0.5, seed=7), SegmentDataset(pairs, 0.5, seed=7)
    assert all(torch.equal(a[i][1], b[i][1]) for i in range(4))
    b[3]  # access order does not matter
    assert torch.equal(a[2][0], b[2][0])
    a.set_epoch(1)
    assert not torch.equal(a[2][1], b[2][1])  # a new crop in a new epoch
    b.set_epoch(1)
    assert torch.equal(a[2][1], b[2][1])
    assert not torch.equal(SegmentDataset(pairs, 0.5, seed=8)[2][1], SegmentDataset(pairs, 0.5, seed=7)[2][1])


def test_remix_keeps_clean_and_sets_a_new_snr(pairs) -> None:
    seg = SegmentDataset(pairs, 0.5, seed=3, remix=True, remix_snr_db=(5.0, 5.0))
    plain = SegmentDataset(pairs, 0.5, seed=3)
    for i in (0, 2, 3):
        noisy, clean, uid = seg[i]
        assert torch.equal(clean, plain[i][1]) and uid == pairs.ids[i]
        noise = (noisy - clean).double()
        snr = 10 * torch.log10(clean.double().pow(2).mean() / noise.pow(2).mean())
        assert float(snr) == pytest.approx(5.0, abs=0.01)
    seg.set_epoch(1)
    assert not torch.equal(seg[0][0], SegmentDataset(pairs, 0.5, seed=3, remix=True, remix_snr_db=(5, 5))[0][0])


def test_collate_keeps_ids_in_order(pairs) -> None:
    seg = SegmentDataset(pairs, 0.25, seed=0)
    noisy, clean, ids = next(iter(DataLoader(seg, batch_size=4, collate_fn=collate_segments)))
    assert noisy.shape == clean.shape == (4, 1, 4000) and ids == pairs.ids
    with pytest.raises(ValueError, match="different lengths"):
        collate_segments([(torch.zeros(1, 4), torch.zeros(1, 4), "a"), (torch.zeros(1, 5), torch.zeros(1, 5), "b")])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="segment_seconds"):
        SegmentDataset([], 0.0)  # type: ignore[arg-type]


def test_on_the_smoke_corpus(smoke_corpus: Path) -> None:
    seg = SegmentDataset(open_dataset("mal-offline", smoke_corpus, "train"), 2.0, seed=0, remix=True)
    noisy, clean, ids = collate_segments([seg[i] for i in range(4)])
    assert noisy.shape == (4, 1, 32000) and all(i.startswith("train_") for i in ids)
    assert float(noisy.abs().max()) <= 0.99 and not torch.equal(noisy, clean)


def test_remix_is_deterministic_per_seed_and_epoch(pairs) -> None:
    """The remix partner and SNR depend only on (seed, epoch, index): reruns see the same mixtures."""
    a = SegmentDataset(pairs, 0.5, seed=5, remix=True)
    b = SegmentDataset(pairs, 0.5, seed=5, remix=True)
    b[3]  # access order does not matter
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(4))
    a.set_epoch(2), b.set_epoch(2)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(4))
    other = SegmentDataset(pairs, 0.5, seed=6, remix=True)
    other.set_epoch(2)
    assert any(not torch.equal(a[i][0], other[i][0]) for i in range(4))


def test_augmentation_is_deterministic_changes_only_the_clean_speech_and_is_off_by_default(pairs) -> None:
    plain = SegmentDataset(pairs, 0.5, seed=3, remix=True)
    off = SegmentDataset(pairs, 0.5, seed=3, remix=True, speed_perturb=0.0, tilt=0.0)
    # Switched off, nothing extra is drawn: the segments are those of a dataset without the options.
    assert all(torch.equal(plain[i][0], off[i][0]) and torch.equal(plain[i][1], off[i][1]) for i in range(4))
    a = SegmentDataset(pairs, 0.5, seed=3, remix=True, speed_perturb=0.1, tilt=0.5)
    b = SegmentDataset(pairs, 0.5, seed=3, remix=True, speed_perturb=0.1, tilt=0.5)
    assert all(torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1]) for i in range(4))
    noisy, clean, _ = a[2]
    assert noisy.shape == clean.shape == (1, 8000)
    assert not torch.equal(clean, plain[2][1])  # the target is the augmented speech
    a.set_epoch(1)
    assert not torch.equal(a[2][1], clean)  # a new speed, tilt and crop every epoch


def test_augmentation_needs_remix_and_a_sane_range(pairs) -> None:
    with pytest.raises(ValueError, match="remix=True"):
        SegmentDataset(pairs, 0.5, speed_perturb=0.1)
    with pytest.raises(ValueError, match="speed_perturb"):
        SegmentDataset(pairs, 0.5, remix=True, speed_perturb=0.6)


def test_noise_augmentation_changes_the_noise_and_keeps_the_clean_speech(pairs) -> None:
    plain = SegmentDataset(pairs, 0.5, seed=4, remix=True)
    kw = {"noise_speed_perturb": 0.3, "noise_tilt": 0.9, "noise_mix": 0.99}
    a, b = SegmentDataset(pairs, 0.5, seed=4, remix=True, **kw), SegmentDataset(pairs, 0.5, seed=4, remix=True, **kw)
    for i in range(4):
        noisy, clean, _ = a[i]
        assert torch.equal(clean, plain[i][1])  # the speech draws come first and are untouched
        assert torch.equal(noisy, b[i][0]) and not torch.equal(noisy, plain[i][0])
        # The SNR is still set on the final (possibly two-source) noise: within the remix range, 0-15 dB.
        noise = (noisy - clean).double()
        snr = 10 * torch.log10(clean.double().pow(2).mean() / noise.pow(2).mean())
        if clean.abs().max() > 0 and noisy.abs().max() < 0.98:  # not rescaled for the peak, not padding only
            assert -0.01 <= float(snr) <= 15.01
    with pytest.raises(ValueError, match="noise_mix must be in"):
        SegmentDataset(pairs, 0.5, remix=True, noise_mix=1.0)
