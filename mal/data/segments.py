"""Training-time data: fixed-length random segments of noisy/clean pairs, with optional on-the-fly remixing.

Rules:

* One segment per utterance per epoch. The crop offset (and any remix) is drawn from
  ``SeedSequence([seed, epoch, index])``, so a batch is the same whatever the number of DataLoader workers and
  whatever was drawn before. Call :meth:`SegmentDataset.set_epoch` before each epoch (before creating the
  DataLoader iterator: worker processes receive a copy of the dataset).
* Utterances shorter than the segment are zero-padded *at the end* (both noisy and clean, so the pair stays
  aligned and the padding is silence in both).
* Remixing (``remix=True``): the clean segment of item ``i`` is mixed with the noise ``noisy − clean`` of another
  item ``j`` (drawn per epoch) at an SNR drawn uniformly from ``remix_snr_db``; noise shorter than the segment is
  tiled. If the clean segment is digitally silent (a crop inside padding) the noise keeps its own level. The
  pair is then scaled together so its peak stays at most 0.99. Only use remixing on pairs whose
  ``noisy − clean`` is the noise, i.e. not on reverberant sets whose reference is dry speech.
* Voice and channel augmentation (remixing only; :mod:`mal.data.augment`): with ``speed_perturb = p`` the clean
  speech plays at a whole-percent speed drawn uniformly from ``[1 − p, 1 + p]``; with ``tilt = a`` it gets a
  spectral tilt with coefficient drawn uniformly from ``[−a, a]``. Both change the clean segment before the noise
  is added, so the target is the augmented speech. ``noise_speed_perturb``, ``noise_tilt`` do the same to the
  noise, and ``noise_mix`` adds a second utterance's noise with that probability. At 0 (the default) nothing
  extra is drawn, so the segments are exactly those of a dataset built without the options.
* Decoded waveforms are cached in memory on first access (``cache=True``): the corpora here are small (the quick
  train split is about 300 MB as float32), and decoding on every access costs more than the training step on CPU.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mal.audio import SAMPLE_RATE
from mal.data import augment
from mal.data.loaders import PairDataset

REMIX_PEAK = 0.99


def _crop(x: torch.Tensor, start: int, n: int) -> torch.Tensor:
    seg = x[..., start : start + n]
    if seg.shape[-1] < n:
        seg = torch.nn.functional.pad(seg, (0, n - seg.shape[-1]))
    return seg


class SegmentDataset(Dataset):
    """Random fixed-length segments of a :class:`PairDataset`.

    Args:
        pairs: the utterance-level dataset.
        segment_seconds: segment length in seconds (``S = round(segment_seconds * sample_rate)`` samples).
        seed: base seed of crops and remixes.
        remix: pair each clean segment with the noise of another utterance at a new SNR every epoch.
        remix_snr_db: SNR range (dB) for remixing, drawn uniformly.
        speed_perturb: largest relative speed change of the clean speech (0.1: 90–110 %); needs ``remix``.
        tilt: largest spectral-tilt coefficient of the clean speech (:func:`mal.data.augment.tilt`); needs ``remix``.
        noise_speed_perturb, noise_tilt: the same for the noise (its spectrum shifts and tilts); need ``remix``.
        noise_mix: probability of adding a second utterance's noise, 0-10 dB below the first; needs ``remix``.
        sample_rate: must match the pairs (16 kHz in mal).
        cache: keep decoded waveforms in memory after first access.

    Item ``i`` is ``(noisy (1, S), clean (1, S), id)`` where ``id`` is the utterance id of the clean speech.
    """

    def __init__(
        self,
        pairs: PairDataset,
        segment_seconds: float,
        seed: int = 0,
        remix: bool = False,
        remix_snr_db: tuple[float, float] = (0.0, 15.0),
        speed_perturb: float = 0.0,
        tilt: float = 0.0,
        noise_speed_perturb: float = 0.0,
        noise_tilt: float = 0.0,
        noise_mix: float = 0.0,
        sample_rate: int = SAMPLE_RATE,
        cache: bool = True,
    ):
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
        if remix_snr_db[0] > remix_snr_db[1]:
            raise ValueError(f"remix_snr_db must be (low, high), got {remix_snr_db}")
        if len(pairs) == 0:
            raise ValueError("SegmentDataset needs at least one pair")
        augment.check_settings(
            {
                "speed_perturb": speed_perturb,
                "tilt": tilt,
                "noise_speed_perturb": noise_speed_perturb,
                "noise_tilt": noise_tilt,
                "noise_mix": noise_mix,
            },
            remix,
        )
        self.pairs = pairs
        self.segment_samples = int(round(segment_seconds * sample_rate))
        self.seed = int(seed)
        self.remix = remix
        self.remix_snr_db = (float(remix_snr_db[0]), float(remix_snr_db[1]))
        # Whole-percent speeds (a small resampling ratio); 0 draws nothing, keeping the un-augmented stream.
        self.speed_percent = int(round(speed_perturb * augment.SPEED_STEP))
        self.tilt = float(tilt)
        self.noise_speed_percent = int(round(noise_speed_perturb * augment.SPEED_STEP))
        self.noise_tilt = float(noise_tilt)
        self.noise_mix = float(noise_mix)
        self.cache = cache
        self.epoch = 0
        self._audio: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._ids = pairs.ids

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose crops (and remixes) ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index in self._audio:
            return self._audio[index]
        noisy, clean = self.pairs.load_pair(index)
        if self.cache:
            self._audio[index] = (noisy, clean)
        return noisy, clean

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} segments")
        rng = self._rng(index)
        n = self.segment_samples
        noisy, clean = self._load(index)
        clean_seg, start = _augmented_crop(clean, n, rng, self.speed_percent, self.tilt, tile=False)
        if not self.remix:
            return _crop(noisy, start, n), clean_seg, self._ids[index]
        noise = self._noise_of(self._other(index, rng), n, rng)
        if self.noise_mix and float(rng.uniform()) < self.noise_mix:
            # A second noise of another utterance, 0-10 dB below the first: scenes more varied than one source.
            second = self._noise_of(self._other(index, rng), n, rng)
            p1, p2 = float(noise.double().pow(2).mean()), float(second.double().pow(2).mean())
            if p1 > 0 and p2 > 0:
                noise = noise + second * float(np.sqrt(p1 / p2 * 10 ** (rng.uniform(-10.0, 0.0) / 10)))
        snr = float(rng.uniform(*self.remix_snr_db))
        p_clean = float(clean_seg.double().pow(2).mean())
        p_noise = float(noise.double().pow(2).mean())
        if p_clean > 0 and p_noise > 0:
            noise = noise * float(np.sqrt(p_clean / (p_noise * 10 ** (snr / 10))))
        mixed = clean_seg + noise
        peak = float(torch.maximum(mixed.abs().max(), clean_seg.abs().max()))
        if peak > REMIX_PEAK:
            mixed, clean_seg = mixed * (REMIX_PEAK / peak), clean_seg * (REMIX_PEAK / peak)
        return mixed.float(), clean_seg.float(), self._ids[index]

    def _other(self, index: int, rng: np.random.Generator) -> int:
        """Another item than ``index``, uniformly (``index`` itself when there is no other)."""
        if len(self) == 1:
            return index
        j = int(rng.integers(len(self) - 1))
        return j + int(j >= index)

    def _noise_of(self, j: int, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``n`` samples of item ``j``'s noise ``noisy − clean`` (tiled when short), with the noise augmentation."""
        other_noisy, other_clean = self._load(j)
        segment, _ = _augmented_crop(other_noisy - other_clean, n, rng, self.noise_speed_percent, self.noise_tilt, True)
        return segment


def _augmented_crop(
    x: torch.Tensor, n: int, rng: np.random.Generator, speed_percent: int, tilt: float, tile: bool
) -> tuple[torch.Tensor, int]:
    """A random ``(1, n)`` crop of ``x``, sped up or slowed down and tilted when asked; also the crop's start.

    Nothing is drawn for a switched-off option, so with both off the draws (one start) and the crop are those of
    a plain random crop. ``tile``: repeat a short ``x`` to the length needed (noise) instead of zero-padding.
    """
    percent = augment.SPEED_STEP
    if speed_percent:
        percent += int(rng.integers(-speed_percent, speed_percent + 1))
    m = augment.speed_input_samples(n, percent) if percent != augment.SPEED_STEP else n
    if tile and x.shape[-1] < m:
        x = x.repeat(1, -(-m // x.shape[-1]))
    start = int(rng.integers(0, max(1, x.shape[-1] - m + 1)))
    segment = _crop(x, start, m)
    if percent != augment.SPEED_STEP:
        segment = augment.change_speed(segment, percent, n)
    if tilt:
        segment = augment.tilt(segment, float(rng.uniform(-tilt, tilt)))
    return segment, start


def collate_segments(
    batch: list[tuple[torch.Tensor, torch.Tensor, str]],
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack segments: ``(noisy (B, 1, S), clean (B, 1, S), ids)``. All segments must share one length."""
    lengths = {b[0].shape[-1] for b in batch} | {b[1].shape[-1] for b in batch}
    if len(lengths) != 1:
        raise ValueError(f"collate_segments: segments of different lengths {sorted(lengths)}; use SegmentDataset")
    noisy = torch.stack([b[0] for b in batch])
    clean = torch.stack([b[1] for b in batch])
    return noisy, clean, [b[2] for b in batch]
