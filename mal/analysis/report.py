"""The steps of notebook 03 that are not analysis proper: load systems and data, write tables, figures and summary.

Output layout under ``run_dir`` (stable names, so a README can link the figures)::

    config.yaml                         the AnalysisConfig used
    summary.json                        headline numbers (correlation table, best layer, k-curves, decay)
    tables/pairs.csv                    one row per (file, estimate): distances and metrics
    tables/correlation.csv              Spearman ρ(distance, metric) with CIs
    tables/self_consistency_curves.csv  mean per system, metric and k, with CIs
    tables/self_consistency_values.csv  every file, system, k and metric
    tables/self_consistency_decay.csv   change from k = 1 to K per system and metric, with CIs
    tables/self_consistency_vs_reference.csv  that change minus the reference system's, paired over files
    figures/<stem>.png and .svg         correlation_heatmap, distance_vs_<metric>, projection_<method>,
                                        self_consistency_curves, self_consistency_spectrograms
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from mal.analysis.config import AnalysisConfig
from mal.analysis.correlation import best_space
from mal.io import atomic_open, atomic_write_json
from mal.models.base import SEModel
from mal.plots import save_figure


def prepare_runtime(device: str = "auto", threads: int = 1) -> torch.device:
    """Limit torch to ``threads`` CPU threads and resolve ``device`` (see :func:`resolve_device`)."""
    torch.set_num_threads(threads)
    return resolve_device(device)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else as given (``cuda`` without a GPU is an error)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available here; use device='auto' or 'cpu'")
    return device


def load_systems(checkpoints: Mapping[str, str | Path], device: torch.device | str = "cpu") -> dict[str, SEModel]:
    """Load every ``label → checkpoint`` with ``mal.models.load``, in eval mode on ``device``.

    Raises:
        FileNotFoundError: a checkpoint is missing; the message names the label and the path.
    """
    from mal.models import load

    systems = {}
    for label, path in checkpoints.items():
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"checkpoint for {label!r} not found: {path} (train it first, e.g. with notebook 02, "
                "or point the 'checkpoints' parameter at existing files)"
            )
        systems[label] = load(path).to(device).eval()
    return systems


class Spread:
    """A lazy, evenly spaced selection of ``n`` items from a sized dataset (all when ``n`` is 0 or ≥ its length).

    The corpus manifest may be ordered (by speaker, SNR …), so taking the first ``n`` items could cover one
    condition only; evenly spaced indices cover the whole split. Items are read only when iterated.
    """

    def __init__(self, dataset: Any, n: int) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"{type(dataset).__name__} is not a sized dataset (needs __len__ and __getitem__)")
        total = len(dataset)
        if total == 0:
            raise ValueError("the dataset is empty")
        count = total if n <= 0 or n >= total else n
        self.dataset = dataset
        self.indices = [int(i) for i in np.unique(np.linspace(0, total - 1, count).round().astype(int))]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def __iter__(self) -> Iterator[Any]:
        return (self.dataset[i] for i in self.indices)


def open_items(cfg: AnalysisConfig, n: int) -> Spread:
    """The ``n`` files of ``cfg``'s dataset split to analyse (evenly spaced; 0 = all)."""
    from mal.data import open_dataset

    return Spread(open_dataset(cfg.dataset, cfg.data_root, cfg.split), n)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` as CSV, atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        table.to_csv(fh, index=False)
    return Path(path)


def publish(figures: Mapping[str, plt.Figure], figures_dir: str | Path, show: bool = True) -> list[str]:
    """Show each figure (in a notebook), save it as ``<stem>.png`` and ``.svg`` under ``figures_dir``, close it.

    Returns:
        The PNG paths written.
    """
    written = []
    for stem, fig in figures.items():
        if show:
            from IPython.display import display

            display(fig)
        written.append(str(save_figure(fig, Path(figures_dir) / stem)[0]))
        plt.close(fig)
    return written


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in table.to_dict("records")
    ]


def best_layers(
    table: pd.DataFrame, encoder_columns: Sequence[str], metrics: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per metric: the encoder layer with the most negative ρ, and the best feature space of all (with CIs)."""
    out = {}
    for metric in metrics:
        entry: dict[str, Any] = {}
        for key, spaces in (("best_layer", list(encoder_columns)), ("best_space", None)):
            try:
                row = best_space(table, metric, spaces)
            except ValueError as err:
                entry[key] = {"space": None, "reason": str(err)}
                continue
            entry[key] = {
                "space": row["space"],
                "rho": float(row["rho"]),
                "ci_low": float(row["ci_low"]),
                "ci_high": float(row["ci_high"]),
                "n_files": int(row["n_files"]),
            }
        out[metric] = entry
    return out


def build_summary(
    cfg: AnalysisConfig,
    study: Any,
    table: pd.DataFrame,
    sc_summary: pd.DataFrame,
    decay: pd.DataFrame,
    decay_vs_reference: pd.DataFrame,
    figures: Sequence[str],
    skipped_spaces: Mapping[str, str],
) -> dict[str, Any]:
    """The headline numbers of the analysis as a JSON-ready dict (NaN becomes null)."""
    sources = list(dict.fromkeys(study.pairs["source"]))
    return {
        "config": cfg.to_dict(),
        "sign_convention": "rho = Spearman(distance, metric); negative = the distance falls as quality rises",
        "n_files": int(study.pairs["file_id"].nunique()),
        "n_pairs": len(study.pairs),
        "sources": sources,
        "judges": cfg.judge_labels,
        "distance_columns": study.distance_columns,
        "skipped_spaces": dict(skipped_spaces),
        "correlation": _records(table),
        "best": best_layers(table, study.encoder_columns, study.metric_columns),
        "self_consistency": {
            "k_max": cfg.k_max,
            "n_files": int(sc_summary["n"].max()) if len(sc_summary) else 0,
            "curves": _records(sc_summary),
            "decay": _records(decay),
            "reference": cfg.reference,
            "decay_vs_reference": _records(decay_vs_reference),
        },
        "figures": list(figures),
    }


def write_summary(run_dir: str | Path, summary: Mapping[str, Any]) -> Path:
    """Write ``<run_dir>/summary.json`` atomically."""
    return atomic_write_json(Path(run_dir) / "summary.json", dict(summary))


def headline(summary: Mapping[str, Any]) -> str:
    """The answer in a few Markdown lines: the best layer and space per metric, and each system's k = 1 → K change."""

    def fmt(entry: Mapping[str, Any]) -> str:
        if entry.get("space") is None:
            return f"n/a ({entry.get('reason', '')})"
        return f"`{entry['space']}` ρ = {entry['rho']:+.3f} [{entry['ci_low']:+.3f}, {entry['ci_high']:+.3f}]"

    lines = [f"**{summary['n_files']} files, {summary['n_pairs']} pairs** (ρ < 0 = distance tracks quality)", ""]
    for metric, entry in summary["best"].items():
        lines.append(f"- {metric}: best judge layer {fmt(entry['best_layer'])}; best space {fmt(entry['best_space'])}")
    sc = summary["self_consistency"]
    lines += ["", f"**Self-consistency**, change from k = 1 to k = {sc['k_max']} ({sc['n_files']} files):", ""]
    for row in sc["decay"]:
        if row["change"] is None:
            continue
        ci = "" if row["ci_low"] is None else f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
        lines.append(
            f"- {row['system']} · {row['metric']}: {row['value_from']:.3f} → {row['value_to']:.3f} "
            f"(Δ {row['change']:+.3f}{ci})"
        )
    if sc.get("decay_vs_reference"):
        lines += ["", f"Change minus `{sc['reference']}`'s change, paired over files (> 0: decays less):", ""]
        for row in sc["decay_vs_reference"]:
            if row["difference"] is None:
                continue
            ci = "" if row["ci_low"] is None else f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
            lines.append(f"- {row['system']} · {row['metric']}: {row['difference']:+.3f}{ci}")
    return "\n".join(lines)
