"""Pretraining the offline deep-feature loss network: the notebook-level entry (notebook 05).

A deep feature loss needs a *pretrained* network, and no pretrained speech model can be downloaded here.
So ``mal`` pretrains a small Germain-style loss network (:class:`mal.losses.LossNet`) on the corpus's
train split (noise-type classification of noisy crops, speaker classification of clean crops), freezes it,
and the ``lossnet`` recipe of notebook 02 uses it as a baseline objective next to MAL.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, ClassVar

import torch

from mal.config import ConfigBase, ConfigError
from mal.io import atomic_write_json
from mal.losses import LossNetConfig, load_lossnet, pretrain_lossnet

CHECKPOINT_NAME = "lossnet.pt"


@dataclasses.dataclass
class LossNetPretrainConfig(ConfigBase):
    """What notebook 05 does: which data, which schedule, where the results go."""

    # Notebook 05's parameters: flat name → field; other LossNetConfig fields travel in ``overrides``.
    PARAMETERS: ClassVar[dict[str, str]] = {
        "run_dir": "run_dir",
        "dataset": "dataset",
        "data_root": "data_root",
        "split": "split",
        "steps": "lossnet.steps",
        "n_layers": "lossnet.n_layers",
        "batch_size": "lossnet.batch_size",
        "segment_seconds": "lossnet.segment_seconds",
        "seed": "lossnet.seed",
        "device": "lossnet.device",
        "threads": "threads",
    }

    run_dir: str = "runs/05_lossnet_pretraining"  # outputs: lossnet.pt, config.yaml, summary.json, figures/
    dataset: str = "mal-offline"  # mal.data.open_dataset name
    data_root: str = "data/corpora/quick"  # root of that dataset
    split: str = "train"  # split to pretrain on (never a test split)
    lossnet: LossNetConfig = dataclasses.field(default_factory=LossNetConfig)  # architecture and schedule
    threads: int = 1  # torch CPU threads

    def validate(self) -> None:
        if self.split.startswith("test"):
            raise ConfigError(f"LossNetPretrainConfig.split: refusing to pretrain on a test split ({self.split!r})")
        if self.threads < 1:
            raise ConfigError(f"LossNetPretrainConfig.threads must be ≥ 1, got {self.threads}")

    @property
    def checkpoint(self) -> Path:
        return Path(self.run_dir) / CHECKPOINT_NAME


def run_lossnet_pretraining(cfg: LossNetPretrainConfig) -> dict[str, Any]:
    """Pretrain, save ``<run_dir>/lossnet.pt`` and ``<run_dir>/summary.json``; returns the summary.

    The summary holds the checkpoint path, held-out accuracy and chance level per task, the per-layer
    weights and the wall time.
    """
    from mal.data import open_dataset

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    torch.set_num_threads(cfg.threads)
    dataset = open_dataset(cfg.dataset, cfg.data_root, cfg.split, cache=True)
    start = time.perf_counter()
    path = pretrain_lossnet(dataset, cfg.lossnet, cfg.checkpoint)
    seconds = time.perf_counter() - start
    _, ckpt = load_lossnet(path)
    summary = {
        "checkpoint": str(path),
        "items": len(dataset),
        "labels": {task: len(names) for task, names in ckpt["labels"].items()},
        "metrics": ckpt["metrics"],
        "layer_weights": ckpt["layer_weights"],
        "seconds": seconds,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def plot_lossnet_summary(summary: dict[str, Any], stem: str | Path | None = None):
    """Bar charts: held-out accuracy vs chance per task, and the per-layer weights of the feature loss."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from mal.plots import save_figure

    metrics = summary["metrics"]
    tasks = [k.removeprefix("valid_acc_") for k in metrics if k.startswith("valid_acc_")]
    acc = pd.DataFrame(
        [{"task": t, "kind": "held-out accuracy", "value": metrics[f"valid_acc_{t}"]} for t in tasks]
        + [{"task": t, "kind": "chance (majority class)", "value": metrics[f"chance_{t}"]} for t in tasks]
    )
    weights = pd.DataFrame({"layer": range(len(summary["layer_weights"])), "weight": summary["layer_weights"]})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    sns.barplot(acc, x="task", y="value", hue="kind", ax=axes[0])
    axes[0].set(ylim=(0, 1), ylabel="accuracy", title="Pretraining tasks (held-out items)")
    sns.barplot(weights, x="layer", y="weight", color="C2", ax=axes[1])
    axes[1].set(title="Per-layer weight (1 / mean noisy–clean distance)")
    fig.tight_layout()
    if stem is not None:
        save_figure(fig, stem)
    return fig
