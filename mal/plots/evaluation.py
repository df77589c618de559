"""Figures of the cross-dataset evaluation: distributions, per-SNR curves, paired differences, and an A/B player.

Every plotting function takes the tidy tables of :mod:`mal.evaluate` and returns a matplotlib Figure; save it with
:func:`mal.plots.save_figure`. The listening widget needs a live kernel (ipywidgets), so notebooks build it only
when their ``interactive`` parameter is true.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mal.plots import metric_label


def _ordered(values: pd.Series, first: Sequence[str] = ("noisy", "spectral-gating")) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [s for s in first if s in seen] + [s for s in seen if s not in first]


def plot_distributions(
    per_file: pd.DataFrame, metrics: Sequence[str], kind: str = "box", systems: Sequence[str] | None = None
) -> plt.Figure:
    """One panel per (metric row × dataset column): the per-file distribution of every system.

    Args:
        kind: ``"box"`` (median, quartiles, outliers) or ``"violin"`` (density, with quartile lines).
    """
    if kind not in ("box", "violin"):
        raise ValueError(f"kind must be 'box' or 'violin', got {kind!r}")
    data = per_file[per_file["metric"].isin(metrics) & per_file["value"].notna()]
    if systems is not None:
        data = data[data["system"].isin(systems)]
    datasets = list(dict.fromkeys(per_file["dataset"]))
    order = _ordered(data["system"])
    metrics = [m for m in metrics if m in set(data["metric"])]
    if not metrics:
        raise ValueError("no finite values for the requested metrics")
    fig, axes = plt.subplots(
        len(metrics), len(datasets), figsize=(2.2 + 1.1 * len(order) * len(datasets), 2.6 * len(metrics)),
        squeeze=False, sharey="row",
    )  # fmt: skip
    palette = dict(zip(order, sns.color_palette("colorblind", len(order)), strict=False))
    for r, metric in enumerate(metrics):
        for c, dataset in enumerate(datasets):
            ax = axes[r, c]
            cell = data[(data["metric"] == metric) & (data["dataset"] == dataset)]
            if cell.empty:
                ax.set_visible(False)
                continue
            common = dict(data=cell, x="system", y="value", hue="system", order=order, palette=palette, ax=ax)
            if kind == "box":
                sns.boxplot(**common, legend=False, width=0.6, fliersize=2)
            else:
                sns.violinplot(**common, legend=False, inner="quart", cut=0, density_norm="width")
            ax.set_xlabel("")
            ax.set_ylabel(metric_label(metric) if c == 0 else "")
            ax.set_title(dataset if r == 0 else "")
            ax.tick_params(axis="x", rotation=35)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def plot_snr_curves(per_file: pd.DataFrame, metrics: Sequence[str], systems: Sequence[str] | None = None) -> plt.Figure:
    """Mean (with a 95 % bootstrap band from seaborn) of each metric against the input SNR, per dataset."""
    if "snr_db" not in per_file:
        raise ValueError("per_file has no snr_db column: the datasets do not record input SNRs")
    data = per_file[per_file["metric"].isin(metrics) & per_file["value"].notna() & per_file["snr_db"].notna()]
    if systems is not None:
        data = data[data["system"].isin(systems)]
    datasets = list(dict.fromkeys(data["dataset"]))
    metrics = [m for m in metrics if m in set(data["metric"])]
    if not metrics or not datasets:
        raise ValueError("no finite values with a known SNR for the requested metrics")
    order = _ordered(data["system"])
    fig, axes = plt.subplots(
        len(metrics), len(datasets), figsize=(3.6 * len(datasets) + 1.6, 2.7 * len(metrics)), squeeze=False
    )
    for r, metric in enumerate(metrics):
        for c, dataset in enumerate(datasets):
            ax = axes[r, c]
            cell = data[(data["metric"] == metric) & (data["dataset"] == dataset)].copy()
            cell["snr_db"] = cell["snr_db"].astype(float)
            sns.lineplot(
                data=cell, x="snr_db", y="value", hue="system", hue_order=order, marker="o", errorbar=("ci", 95),
                n_boot=500, seed=0, ax=ax, legend=(r == 0 and c == len(datasets) - 1), palette="colorblind",
            )  # fmt: skip
            ax.set_xlabel("input SNR (dB)" if r == len(metrics) - 1 else "")
            ax.set_ylabel(metric_label(metric) if c == 0 else "")
            ax.set_title(dataset if r == 0 else "")
            ax.grid(alpha=0.3)
    legend_ax = axes[0, len(datasets) - 1]
    if legend_ax.get_legend() is not None:
        sns.move_legend(legend_ax, "upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, title="system")
    fig.tight_layout()
    return fig


def plot_paired_differences(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Forest plot of paired differences (``mal.stats.improvement_table`` or a list of ``paired_difference``
    rows): mean ``a − b`` and its 95 % CI per metric, dataset and system; the dashed line marks no difference."""
    table = table.dropna(subset=["mean_diff"])
    if table.empty:
        raise ValueError("no finite paired differences to plot")
    metrics = list(dict.fromkeys(table["metric"]))
    height = max(2.4, 0.9 + 0.55 * int(table.groupby("metric").size().max()))  # two-line labels need room
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), height), squeeze=False)
    colors = dict(zip(dict.fromkeys(table["dataset"]), sns.color_palette("colorblind"), strict=False))
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = table[table["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for yi, (_, row) in zip(y, rows.iterrows(), strict=True):
            lo = row["mean_diff"] - row["ci_low"] if np.isfinite(row["ci_low"]) else 0.0
            hi = row["ci_high"] - row["mean_diff"] if np.isfinite(row["ci_high"]) else 0.0
            ax.errorbar(row["mean_diff"], yi, xerr=[[lo], [hi]], fmt="o", color=colors[row["dataset"]], capsize=3)
        ax.axvline(0.0, color="0.4", ls="--", lw=1)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r.system_a} − {r.system_b}\n{r.dataset} (n={r.n_files})" for r in rows.itertuples()]
                           if ax is axes[0, 0] else [])  # fmt: skip
        ax.set_title(f"Δ {metric_label(metric)}")
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def listening_widget(out_dir: str | Path, dataset: str | None = None):
    """ipywidgets A/B player over the audio examples an evaluation wrote (``audio_examples > 0``).

    Pick a dataset and a file; every version (noisy, each system, clean) gets its own player. Audio is played as
    stored (not normalised), so relative loudness is preserved between versions. Players are widget values, never
    output captured in an ``Output`` widget (see :mod:`mal.plots.widgets` for why).
    """
    import ipywidgets as widgets

    from mal.audio import read_audio
    from mal.plots.widgets import audio_player, refill

    root = Path(out_dir) / "audio"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no audio examples; run the evaluation with audio_examples > 0")
    datasets = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not datasets:
        raise FileNotFoundError(f"{root}: no dataset folders; run the evaluation with audio_examples > 0")
    pick_dataset = widgets.Dropdown(options=datasets, value=dataset if dataset in datasets else datasets[0],
                                    description="dataset")  # fmt: skip
    pick_file = widgets.Dropdown(description="file")
    players = widgets.VBox()

    def versions(ds: str) -> list[str]:
        names = sorted(p.name for p in (root / ds).iterdir() if p.is_dir())
        # The "noisy" system's output is the input itself: it is shown once, as "noisy".
        systems = [n for n in names if n.lstrip("_") not in ("noisy", "clean")]
        return ["_noisy", *_ordered(pd.Series(systems)), "_clean"]

    def show(*_):
        if not pick_file.value:
            players.children = []
            return
        shown = []
        for version in versions(pick_dataset.value):
            path = root / pick_dataset.value / version / f"{pick_file.value}.wav"
            if path.exists():
                # read_audio names the file if it is corrupt; the player keeps the file's own rate.
                audio, sr = read_audio(path, sample_rate=None)
                shown.append(audio_player(version.strip("_"), audio, sr))
        players.children = shown

    def pick(*_):
        refill(pick_file, sorted(p.stem for p in (root / pick_dataset.value / "_noisy").glob("*.wav")), show)

    pick_dataset.observe(pick, names="value")
    pick_file.observe(show, names="value")
    pick()
    return widgets.VBox([widgets.HBox([pick_dataset, pick_file]), players])
