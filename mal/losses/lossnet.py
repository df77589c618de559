"""A small loss network that ``mal`` pretrains offline, then uses frozen as a deep feature loss.

Germain, Chen and Koltun (2019) trained a 1-D conv net on audio classification tasks and used the L1 distance
between its activations on the enhanced and the clean signal as a loss, each layer weighted by the inverse of
its mean distance. No pretrained speech network can be downloaded here, so :func:`pretrain_lossnet` trains one
on the corpus's own training split, with the two labels every ``mal`` corpus carries:

- noise-type classification of *noisy* crops (what the network must notice to tell noise from speech),
- speaker classification of *clean* crops (what speech is made of).

The architecture follows Germain et al.: 1-D convolutions, kernel 3, stride 2, batch norm, leaky ReLU,
32 channels doubling every few layers, global average pooling into one linear head per task. The default is
8 layers (Germain: 14, doubling every 5) so that pretraining takes about a minute on a laptop CPU; the
receptive field is then 511 samples (32 ms at 16 kHz).

After training, the per-layer weights are measured on held-out items: ``w_l = 1 / mean_l |φ_l(noisy) −
φ_l(clean)|`` (Germain weight each layer by the inverse of its mean loss), so every layer contributes about 1
on a typical noisy input, and :class:`LossNetFeatureLoss` is about 1 for unprocessed noisy speech.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from mal.config import ConfigBase, ConfigError
from mal.io import atomic_torch_save, torch_load_checked
from mal.losses._checks import check_pair
from mal.losses._frozen import freeze
from mal.models.base import as_batch

LOSSNET_FORMAT = "mal-lossnet/1"
TASKS: tuple[str, ...] = ("noise_type", "speaker")  # task → meta key; noise_type on noisy, speaker on clean
BN_RECALIBRATION_BATCHES = 16


@dataclasses.dataclass
class LossNetConfig(ConfigBase):
    """Architecture and pretraining schedule of the lossnet (defaults: about a minute on one CPU thread)."""

    n_layers: int = 8  # conv layers (Germain et al.: 14); each halves the time resolution
    channels: int = 32  # channels of the first layer
    double_every: int = 3  # channels double every N layers (Germain: every 5)
    max_channels: int = 256  # cap on the channel count
    segment_seconds: float = 1.0  # length of the random training crops (s)
    batch_size: int = 16  # items per step; each gives one noisy crop and one clean crop
    steps: int = 300  # optimiser steps
    lr: float = 1e-3  # Adam learning rate
    valid_fraction: float = 0.15  # share of items held out for accuracy and the per-layer weights
    weight_pairs: int = 64  # held-out (noisy, clean) crop pairs that measure the per-layer weights
    seed: int = 0  # split, crops and initialisation
    device: str = "auto"  # "auto" (CUDA when available) | "cpu" | "cuda"
    sample_rate: int = 16000  # the corpus's sample rate (crops are counted in samples)
    progress: bool = True  # tqdm progress bars

    def validate(self) -> None:
        for name in ("n_layers", "channels", "double_every", "max_channels", "batch_size", "steps", "weight_pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LossNetConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.segment_seconds <= 0:
            raise ConfigError(f"LossNetConfig.segment_seconds must be > 0, got {self.segment_seconds}")
        if not 0 < self.valid_fraction < 1:
            raise ConfigError(f"LossNetConfig.valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if not self.lr > 0:
            raise ConfigError(f"LossNetConfig.lr must be > 0, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"LossNetConfig.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    def layer_channels(self) -> list[int]:
        return [min(self.channels * 2 ** (i // self.double_every), self.max_channels) for i in range(self.n_layers)]


class LossNet(nn.Module):
    """1-D conv stack (kernel 3, stride 2, batch norm, leaky ReLU) with one linear head per task.

    Args:
        channels: output channels of each conv layer (its length is the depth).
        n_classes: task name → number of classes (a head each; may be empty for a features-only net).

    Shape:
        :meth:`features`: ``(B, T)`` or ``(B, 1, T)`` → list of ``(B, C_l, ceil(T / 2^(l+1)))``.
        :meth:`forward`: → dict task → logits ``(B, n_classes)``.
    """

    def __init__(self, channels: Sequence[int], n_classes: dict[str, int]) -> None:
        super().__init__()
        ins = [1, *channels[:-1]]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False),
                nn.BatchNorm1d(c_out),
                nn.LeakyReLU(0.2),
            )
            for c_in, c_out in zip(ins, channels, strict=True)
        )
        self.heads = nn.ModuleDict({task: nn.Linear(channels[-1], n) for task, n in n_classes.items()})

    def features(self, wav: torch.Tensor, n_layers: int | None = None) -> list[torch.Tensor]:
        x = as_batch(wav)
        out = []
        for block in self.blocks[: n_layers or len(self.blocks)]:
            x = block(x)
            out.append(x)
        return out

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.features(wav)[-1].mean(dim=-1)
        return {task: head(pooled) for task, head in self.heads.items()}


# ---------------------------------------------------------------------------------------------- pretraining
def _mono(wav: Any, where: str) -> torch.Tensor:
    wav = torch.as_tensor(wav, dtype=torch.float32)
    if wav.dim() == 2 and wav.shape[0] == 1:
        wav = wav[0]
    if wav.dim() != 1 or wav.numel() == 0:
        raise ValueError(f"{where}: expected a mono waveform shaped (1, T) or (T,), got {tuple(wav.shape)}")
    return wav


def _read_item(dataset: Dataset, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    item = dataset[index]
    if not (isinstance(item, (tuple, list)) and len(item) == 3 and isinstance(item[2], dict)):
        raise ValueError(f"pretrain_lossnet: dataset item {index} is not (noisy, clean, meta dict)")
    noisy = _mono(item[0], f"pretrain_lossnet: item {index} noisy")
    clean = _mono(item[1], f"pretrain_lossnet: item {index} clean")
    if noisy.shape != clean.shape:
        raise ValueError(
            f"pretrain_lossnet: item {index}: noisy {tuple(noisy.shape)} and clean {tuple(clean.shape)} differ in "
            "length"
        )
    return noisy, clean, _check_meta(item[2], index)


def _check_meta(meta: dict[str, Any], index: int) -> dict[str, Any]:
    missing = [task for task in TASKS if meta.get(task) is None]
    if missing:
        raise ValueError(f"pretrain_lossnet: item {index} meta has no {missing} (keys: {sorted(meta)})")
    return meta


def _read_meta(dataset: Dataset, index: int) -> dict[str, Any]:
    """Item ``index``'s meta; through ``dataset.meta(index)`` when the dataset has it (no audio is decoded)."""
    meta_of = getattr(dataset, "meta", None)
    if callable(meta_of):
        return _check_meta(meta_of(index), index)
    return _read_item(dataset, index)[2]


def _crop(noisy: torch.Tensor, clean: torch.Tensor, length: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    if noisy.numel() < length:
        pad = length - noisy.numel()
        return F.pad(noisy, (0, pad)), F.pad(clean, (0, pad))
    return noisy[start : start + length], clean[start : start + length]


def _random_start(total: int, length: int, gen: torch.Generator) -> int:
    return int(torch.randint(0, max(total - length, 0) + 1, (), generator=gen))


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pretrain_lossnet(dataset: Dataset, cfg: LossNetConfig, out_path: str | Path) -> Path:
    """Pretrain a :class:`LossNet` on ``dataset`` and save it (atomically) for :class:`LossNetFeatureLoss`.

    Args:
        dataset: items ``(noisy (1, T), clean (1, T), meta)`` with string labels ``meta["noise_type"]`` and
            ``meta["speaker"]``: the training split of a corpus (``mal.data.open_dataset(..., "train")``).
        cfg: architecture and schedule.
        out_path: where to write the checkpoint.

    Returns:
        ``out_path``. The checkpoint holds the state, the config, the label names of each task, the per-layer
        weights and ``metrics`` (held-out accuracy and chance level per task, final training loss).

    Raises:
        ValueError: fewer than 2 items, malformed items, or no task with at least 2 classes.
    """
    cfg.validate()
    n_items = len(dataset)  # type: ignore[arg-type]
    if n_items < 2:
        raise ValueError(f"pretrain_lossnet: need at least 2 items (one to train on, one held out); got {n_items}")
    device = _resolve_device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)

    metas: list[dict[str, Any]] = []
    for i in tqdm(range(n_items), desc="lossnet: reading labels", disable=not cfg.progress, leave=False):
        metas.append(_read_meta(dataset, i))
    labels = {task: sorted({str(m[task]) for m in metas}) for task in TASKS}
    tasks = [task for task in TASKS if len(labels[task]) >= 2]
    if not tasks:
        found = {t: labels[t] for t in TASKS}
        raise ValueError(f"pretrain_lossnet: every task has a single class ({found}); nothing to learn")
    targets = {task: torch.tensor([labels[task].index(str(m[task])) for m in metas]) for task in tasks}

    order = torch.randperm(n_items, generator=gen)
    n_valid = min(max(1, math.ceil(cfg.valid_fraction * n_items)), n_items - 1)
    valid_idx, train_idx = order[:n_valid].tolist(), order[n_valid:].tolist()

    torch.manual_seed(cfg.seed)
    net = LossNet(cfg.layer_channels(), {task: len(labels[task]) for task in tasks}).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    length = cfg.segment_samples
    net.train()
    running = math.nan
    bar = tqdm(range(cfg.steps), desc="lossnet pretraining", disable=not cfg.progress)
    for _ in bar:
        # One forward over noisy and clean crops together: the batch norm sees both kinds of input.
        picks, wav = _training_batch(dataset, train_idx, cfg, gen)
        wav = wav.to(device)
        logits = net(wav)
        picks_t = torch.tensor(picks)
        loss = wav.new_zeros(())
        for task in tasks:
            half = slice(0, cfg.batch_size) if task == "noise_type" else slice(cfg.batch_size, None)
            loss = loss + F.cross_entropy(logits[task][half], targets[task][picks_t].to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running = loss.item() if math.isnan(running) else 0.9 * running + 0.1 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")

    _recalibrate_batch_norm(net, dataset, train_idx, cfg, gen, device)
    net.eval()
    metrics: dict[str, float] = {"train_loss": running, "train_items": float(len(train_idx))}
    metrics["valid_items"] = float(n_valid)
    metrics.update(_held_out_accuracy(net, dataset, valid_idx, targets, tasks, length, device))
    layer_weights = _layer_weights(net, dataset, valid_idx, cfg.weight_pairs, length, gen, device)
    payload = {
        "format": LOSSNET_FORMAT,
        "config": cfg.to_dict(),
        "channels": cfg.layer_channels(),
        "labels": {task: labels[task] for task in tasks},
        "state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "layer_weights": layer_weights,
        "metrics": metrics,
    }
    return atomic_torch_save(payload, out_path)


def _training_batch(
    dataset: Dataset, train_idx: list[int], cfg: LossNetConfig, gen: torch.Generator
) -> tuple[list[int], torch.Tensor]:
    """``batch_size`` random training items → their indices and ``(2·batch_size, 1, L)``: noisy crops, then clean."""
    length = cfg.segment_samples
    picks = [train_idx[int(j)] for j in torch.randint(len(train_idx), (cfg.batch_size,), generator=gen)]
    noisy_batch, clean_batch = [], []
    for i in picks:
        noisy, clean, _ = _read_item(dataset, i)
        n, c = _crop(noisy, clean, length, _random_start(noisy.numel(), length, gen))
        noisy_batch.append(n)
        clean_batch.append(c)
    return picks, torch.stack(noisy_batch + clean_batch)[:, None]


@torch.no_grad()
def _recalibrate_batch_norm(
    net: LossNet, dataset: Dataset, train_idx: list[int], cfg: LossNetConfig, gen: torch.Generator, device: torch.device
) -> None:
    """Re-estimate the batch-norm statistics with the final weights ("precise BN").

    The running averages kept during training mix statistics of earlier, different weights; a frozen loss
    network runs in eval mode on exactly these statistics, so they should describe the final network.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    net.train()
    for _ in range(BN_RECALIBRATION_BATCHES):
        net.features(_training_batch(dataset, train_idx, cfg, gen)[1].to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


@torch.no_grad()
def _held_out_accuracy(
    net: LossNet,
    dataset: Dataset,
    valid_idx: list[int],
    targets: dict[str, torch.Tensor],
    tasks: list[str],
    length: int,
    device: torch.device,
    crops_per_item: int = 4,
) -> dict[str, float]:
    """Accuracy per task over evenly spaced crops of the held-out items, and the majority-class chance level."""
    correct = dict.fromkeys(tasks, 0)
    total = 0
    for i in valid_idx:
        noisy, clean, _ = _read_item(dataset, i)
        starts = torch.linspace(0, max(noisy.numel() - length, 0), crops_per_item).long().tolist()
        crops = [_crop(noisy, clean, length, s) for s in starts]
        logits = net(torch.stack([n for n, _ in crops] + [c for _, c in crops]).to(device))
        for task in tasks:
            half = slice(0, len(crops)) if task == "noise_type" else slice(len(crops), None)
            correct[task] += int((logits[task][half].argmax(-1).cpu() == targets[task][i]).sum())
        total += len(crops)
    out = {}
    for task in tasks:
        out[f"valid_acc_{task}"] = correct[task] / total
        counts = torch.bincount(targets[task][valid_idx])
        out[f"chance_{task}"] = float(counts.max()) / len(valid_idx)
    return out


@torch.no_grad()
def _layer_weights(
    net: LossNet,
    dataset: Dataset,
    valid_idx: list[int],
    n_pairs: int,
    length: int,
    gen: torch.Generator,
    device: torch.device,
) -> list[float]:
    """``1 / mean |φ_l(noisy) − φ_l(clean)|`` per layer over ``n_pairs`` random held-out crops."""
    sums = torch.zeros(len(net.blocks), dtype=torch.float64)
    for k in range(n_pairs):
        noisy, clean, _ = _read_item(dataset, valid_idx[k % len(valid_idx)])
        n, c = _crop(noisy, clean, length, _random_start(noisy.numel(), length, gen))
        feats_n = net.features(n[None].to(device))
        feats_c = net.features(c[None].to(device))
        sums += torch.tensor([(a - b).abs().mean().item() for a, b in zip(feats_n, feats_c, strict=True)])
    means = sums / n_pairs
    if not bool((means > 0).all()):
        raise ValueError(
            f"pretrain_lossnet: held-out noisy and clean features coincide in some layer ({means.tolist()}); "
            "are the noisy and clean signals identical?"
        )
    return (1.0 / means).tolist()


# ---------------------------------------------------------------------------------------------- the loss
class LossNetError(RuntimeError):
    """A lossnet checkpoint is missing, unreadable or was not written by :func:`pretrain_lossnet`."""


def load_lossnet(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[LossNet, dict[str, Any]]:
    """Rebuild a pretrained :class:`LossNet` in eval mode; returns it and the checkpoint (labels, metrics...)."""
    path = Path(path)
    hint = " (write one with mal.losses.pretrain_lossnet)"
    ckpt = torch_load_checked(path, "lossnet checkpoint", LossNetError, map_location, missing_hint=hint)
    if not isinstance(ckpt, dict) or ckpt.get("format") != LOSSNET_FORMAT:
        raise LossNetError(f"{path}: not a lossnet checkpoint (missing format {LOSSNET_FORMAT!r})")
    net = LossNet(ckpt["channels"], {task: len(names) for task, names in ckpt["labels"].items()})
    net.load_state_dict(ckpt["state"])
    return net.eval(), ckpt


class LossNetFeatureLoss(nn.Module):
    """Weighted L1 distance between a frozen pretrained lossnet's features of the estimate and the reference.

    ``loss = (1/L) Σ_{l<L} w_l · mean |φ_l(ŷ) − φ_l(sg[y])|`` with the per-layer weights stored by
    :func:`pretrain_lossnet` (about 1 per layer for unprocessed noisy speech).

    Args:
        path: checkpoint from :func:`pretrain_lossnet`.
        layers: compare the first ``layers`` layers (Germain et al.: 6); capped at the network's depth.
            ``None`` means 6.

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)``, identical.

    Returns:
        Scalar tensor.
    """

    def __init__(self, path: str | Path, layers: int | None = 6) -> None:
        super().__init__()
        net, ckpt = load_lossnet(path)
        depth = len(net.blocks)
        n = depth if layers is None else int(layers)
        if n < 1:
            raise ValueError(f"LossNetFeatureLoss: layers must be ≥ 1, got {layers}")
        self.n_layers = min(n, depth)
        self.net = net
        freeze(self.net)
        self.register_buffer("layer_weights", torch.tensor(ckpt["layer_weights"][: self.n_layers]), persistent=False)
        self.path = Path(path)
        self.metrics: dict[str, float] = dict(ckpt.get("metrics", {}))
        self.pretrained = True

    @property
    def label(self) -> str:
        return f"lossnet[first {self.n_layers} layers] ({self.path.name})"

    def extra_repr(self) -> str:
        return self.label

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_pair(estimate, reference, type(self).__name__)
        with torch.no_grad():
            target = self.net.features(reference, self.n_layers)
        feats = self.net.features(estimate, self.n_layers)
        total = estimate.new_zeros((), dtype=torch.float32)
        for w, a, b in zip(self.layer_weights, feats, target, strict=True):
            total = total + w * (a.float() - b.float()).abs().mean()
        return total / self.n_layers
