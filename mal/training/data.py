"""Batches that depend only on (seed, global step): exact resume and identical batches for every branch.

The training segments form one endless stream: epoch ``e`` is a permutation of the segment indices drawn
from ``(seed, e)``, and the epochs are laid end to end. Global step ``s`` with ``W`` processes of batch ``B``
consumes stream positions ``[s·W·B, (s+1)·W·B)``; process ``r`` takes the ``r``-th slice of ``B``. So

- a run resumed at step ``k`` loads exactly the batches the uninterrupted run loaded from step ``k`` on;
- every stage-2 branch that starts from the same warm-up checkpoint sees the same batches;
- DDP ranks see disjoint parts of one global batch (this replaces ``DistributedSampler``, whose position
  inside an epoch cannot be restored).

The epoch travels with each index, and the dataset wrapper calls ``set_epoch`` right before it reads the
item, so the segment crop (and remix partner) of ``SegmentDataset`` follow the epoch inside worker
processes too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from mal.training.config import DataConfig

# Mixed into the permutation seed so the data order is not correlated with the model-init RNG stream.
_ORDER_SALT = 0x5EED_DA7A


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: a permutation of ``range(num_items)`` fixed by ``(seed, epoch)``."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch + _ORDER_SALT) % (2**63))
    return torch.randperm(num_items, generator=gen)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for every global step in ``[start_step, end_step)``, this rank's ``[(epoch, index), ...]``.

    Args:
        num_items: number of items in the dataset.
        batch_size: items per step per process.
        seed: data-order seed.
        start_step, end_step: global steps to cover.
        rank, world_size: this process's slice of the global batch.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        start_step: int,
        end_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_items < 1:
            raise ValueError("StepBatchSampler: the dataset is empty")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.end_step = end_step
        self.rank = rank
        self.world_size = world_size
        self._perms: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def batch_at(self, step: int) -> list[tuple[int, int]]:
        """This rank's ``(epoch, index)`` pairs for global ``step``."""
        first = (step * self.world_size + self.rank) * self.batch_size
        out = []
        for pos in range(first, first + self.batch_size):
            epoch, offset = divmod(pos, self.num_items)
            if epoch not in self._perms:
                # Only the current epoch or two are ever needed; forget older ones.
                self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
                self._perms[epoch] = epoch_permutation(self.num_items, self.seed, epoch)
            out.append((epoch, int(self._perms[epoch][offset])))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.end_step):
            yield self.batch_at(step)


class EpochIndexed(Dataset):
    """Wraps a dataset with ``set_epoch(epoch)`` so that it is indexed by ``(epoch, index)`` pairs."""

    def __init__(self, dataset: Any) -> None:
        if not hasattr(dataset, "set_epoch"):
            raise TypeError(f"{type(dataset).__name__} has no set_epoch(epoch); EpochIndexed needs one")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


def open_pairs(cfg: DataConfig, split: str) -> Any:
    """The (noisy, clean, meta) pair dataset of ``split`` through ``mal.data.open_dataset``."""
    from mal.data import open_dataset

    return open_dataset(cfg.loader, cfg.root, split)


def segment_dataset(cfg: DataConfig, seed: int) -> Any:
    """The training split cut into ``segment_seconds`` segments (``mal.data.SegmentDataset``)."""
    from mal.data import SegmentDataset

    pairs = open_pairs(cfg, cfg.train_split)
    if cfg.exclude_speakers:
        pairs = pairs.without("speaker", cfg.exclude_speakers)
    if cfg.exclude_noise_types:
        pairs = pairs.without("noise_type", cfg.exclude_noise_types)
    return SegmentDataset(pairs, segment_seconds=cfg.segment_seconds, seed=seed, remix=cfg.remix, **cfg.augmentation())


def batch_at(cfg: DataConfig, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank 0's training batch of global ``step`` (noisy, clean ``(B, 1, S)``), read without a loader."""
    from mal.data import collate_segments

    segments = EpochIndexed(segment_dataset(cfg, seed))
    keys = StepBatchSampler(len(segments), cfg.batch_size, seed, step, step + 1).batch_at(step)
    noisy, clean, *_ = collate_segments([segments[k] for k in keys])
    return noisy, clean


def training_loader(
    cfg: DataConfig,
    seed: int,
    start_step: int,
    end_step: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A loader yielding one ``(noisy, clean, ids)`` batch per global step in ``[start_step, end_step)``.

    Shape: noisy and clean are ``(B, 1, S)`` with ``S = segment_seconds · 16000``.
    """
    from mal.data import collate_segments

    segments = segment_dataset(cfg, seed)
    sampler = StepBatchSampler(len(segments), cfg.batch_size, seed, start_step, end_step, rank, world_size)
    return torch.utils.data.DataLoader(
        EpochIndexed(segments),
        batch_sampler=sampler,
        collate_fn=collate_segments,
        num_workers=cfg.num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        # Its own generator: creating the iterator must not draw from the global RNG, or a resumed run's
        # RNG stream would differ from the uninterrupted run's (the batches themselves come from the sampler).
        generator=torch.Generator().manual_seed(seed),
        prefetch_factor=4 if cfg.num_workers > 0 else None,
    )


def validation_items(cfg: DataConfig) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """The fixed validation subset: the first ``valid_files`` pairs of ``valid_split``, optionally cropped.

    Returns:
        ``[(noisy (1, T), clean (1, T), id), ...]`` in dataset order, float32 at 16 kHz.
    """
    if cfg.valid_files == 0:
        return []
    pairs = open_pairs(cfg, cfg.valid_split)
    if len(pairs) == 0:
        raise ValueError(f"{cfg.root}: split {cfg.valid_split!r} is empty; cannot validate")
    items = []
    for i in range(min(cfg.valid_files, len(pairs))):
        noisy, clean, meta = pairs[i]
        noisy, clean = torch.as_tensor(noisy).float(), torch.as_tensor(clean).float()
        if noisy.dim() == 1:
            noisy, clean = noisy[None], clean[None]
        if cfg.valid_max_seconds > 0:
            n = int(cfg.valid_max_seconds * 16000)
            noisy, clean = noisy[..., :n], clean[..., :n]
        item_id = meta.get("id", str(i)) if isinstance(meta, dict) else str(meta)
        items.append((noisy, clean, str(item_id)))
    return items
