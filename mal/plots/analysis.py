"""Figures of the feature-space analysis: correlation heatmap, distance scatter, projections, k-curves, spectrograms.

Every function returns a matplotlib Figure; save it with :func:`mal.plots.save_figure` (PNG + SVG). File stems used
by :mod:`mal.analysis.report`, so that a README can link them: ``correlation_heatmap``, ``distance_vs_<metric>``,
``projection_<method>``, ``self_consistency_curves``, ``self_consistency_spectrograms``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from mal.plots import metric_label


def plot_correlation_heatmap(
    table: pd.DataFrame, spaces: Sequence[str] | None = None, metrics: Sequence[str] | None = None
) -> plt.Figure:
    """Heatmap of Spearman ρ(distance, metric): rows are feature spaces, columns metrics, cells ρ and its 95 % CI.

    Blue (negative ρ) means the distance falls as quality rises: the space tracks quality. Encoder layers
    (names containing ``/``) come first, separated from the comparison spaces by a line.
    """
    spaces = list(dict.fromkeys(table["space"])) if spaces is None else list(spaces)
    metrics = list(dict.fromkeys(table["metric"])) if metrics is None else list(metrics)
    cell = table.set_index(["space", "metric"])
    rho = np.full((len(spaces), len(metrics)), np.nan)
    text = np.full(rho.shape, "", dtype=object)
    for i, s in enumerate(spaces):
        for j, m in enumerate(metrics):
            if (s, m) in cell.index:
                row = cell.loc[(s, m)]
                rho[i, j] = row["rho"]
                ci = "" if np.isnan(row["ci_low"]) else f"\n[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
                text[i, j] = "n/a" if np.isnan(row["rho"]) else f"{row['rho']:+.2f}{ci}"
    fig, ax = plt.subplots(figsize=(1.9 * len(metrics) + 3, 0.55 * len(spaces) + 1.6))
    sns.heatmap(
        pd.DataFrame(rho, index=spaces, columns=[metric_label(m) for m in metrics]),
        annot=text,
        fmt="",
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        center=0,
        cbar_kws={"label": "Spearman ρ(distance, metric)"},
        annot_kws={"fontsize": 8},
        ax=ax,
    )
    n_layers = sum("/" in s for s in spaces)
    if 0 < n_layers < len(spaces):
        ax.axhline(n_layers, color="black", lw=1.5)
    ax.set_xlabel("")
    ax.set_ylabel("feature space (encoder layers, then comparisons)")
    ax.set_title("Rank correlation of feature distance with quality\n(more negative = tracks quality better)")
    fig.tight_layout()
    return fig


def plot_distance_vs_metric(
    pairs: pd.DataFrame, spaces: Sequence[str], metric: str, hue: str = "source", max_cols: int = 4
) -> plt.Figure:
    """Scatter of each distance against ``metric``, one panel per space (wrapped), points coloured by ``hue``."""
    n_cols = min(max_cols, len(spaces))
    n_rows = -(-len(spaces) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 3.2 * n_rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(spaces):
            ax.set_visible(False)
            continue
        space = spaces[i]
        sns.scatterplot(data=pairs, x=space, y=metric, hue=hue, s=18, ax=ax, legend=i == 0)
        if (pairs[space] > 0).all():
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log range overlap
        ax.set_xlabel(f"d({space})", fontsize=9)
        ax.set_ylabel(metric_label(metric) if i % n_cols == 0 else "")
    if axes[0, 0].get_legend() is not None:
        sns.move_legend(axes[0, 0], "lower left", bbox_to_anchor=(0, 1.02), fontsize=8, ncol=4, title=None)
    fig.suptitle(f"Feature distance to the clean reference vs {metric_label(metric)} (one point per estimate)", y=1.0)
    fig.tight_layout()
    return fig


def plot_projections(
    coords: pd.DataFrame, method: str, hues: Sequence[str] = ("signal", "snr_db", "noise_type", "speaker")
) -> plt.Figure:
    """Grid of 2-D projections: one row per layer, one column per colouring (signal, SNR, noise type, speaker)."""
    data = coords[coords["method"] == method]
    if data.empty:
        raise ValueError(f"no projection computed with method {method!r}")
    layers = list(dict.fromkeys(data["layer"]))
    hues = [h for h in hues if h in data.columns and data[h].notna().any()]
    fig, axes = plt.subplots(len(layers), len(hues), figsize=(3.4 * len(hues), 3.0 * len(layers)), squeeze=False)
    for i, layer in enumerate(layers):
        chunk = data[data["layer"] == layer]
        for j, hue in enumerate(hues):
            ax = axes[i, j]
            numeric = pd.api.types.is_numeric_dtype(chunk[hue])
            sns.scatterplot(
                data=chunk,
                x="x",
                y="y",
                hue=hue,
                style="role" if hue == "signal" else None,
                palette="viridis" if numeric else "tab10",
                s=16,
                ax=ax,
                legend=i == 0,
            )
            if i == 0 and ax.get_legend() is not None:
                sns.move_legend(ax, "lower center", bbox_to_anchor=(0.5, 1.05), fontsize=7, title=hue, ncol=2)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("")
            ax.set_ylabel(layer if j == 0 else "")
    fig.suptitle(f"{method.upper()} of pooled encoder features (channel mean and std per utterance)", y=1.0)
    fig.tight_layout()
    return fig


def plot_k_curves(summary: pd.DataFrame, metrics: Sequence[str] | None = None) -> plt.Figure:
    """Quality against the number of enhancement passes k, one panel per metric, one line per system (mean, 95 % CI).

    ``k = 0`` is the noisy input, common to all systems.
    """
    metrics = list(dict.fromkeys(summary["metric"])) if metrics is None else list(metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.5 * len(metrics), 3.3), squeeze=False)
    systems = list(dict.fromkeys(summary["system"]))
    colours = dict(zip(systems, sns.color_palette("tab10", len(systems)), strict=True))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for system in systems:
            rows = summary[(summary["system"] == system) & (summary["metric"] == metric)].sort_values("k")
            ax.plot(rows["k"], rows["mean"], marker="o", ms=3, label=system, color=colours[system])
            ax.fill_between(rows["k"], rows["ci_low"], rows["ci_high"], alpha=0.2, color=colours[system])
        ax.set_xlabel("k (passes; 0 = noisy input)")
        ax.set_title(metric_label(metric), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    fig.suptitle("Self-consistency: ŷ_k = f(ŷ_{k-1}), scored against the clean reference")
    fig.tight_layout()
    return fig


def log_spectrogram(wav: np.ndarray, sample_rate: int = 16000, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Log-power STFT in dB (Hann window), shape ``(n_fft // 2 + 1, frames)``."""
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    return 10 * np.log10(power.T + 1e-10)


def plot_spectrogram_panels(example: Mapping[str, Any], k_max: int, sample_rate: int = 16000) -> plt.Figure:
    """Clean and noisy on the first row, then per system the output after 1 and after K passes (shared dB scale)."""
    systems = list(example["outputs"])
    rows = [("clean", example["clean"], "noisy", example["noisy"])]
    rows += [(f"{s}, k=1", example["outputs"][s][1], f"{s}, k={k_max}", example["outputs"][s][k_max]) for s in systems]
    specs = [(log_spectrogram(a, sample_rate), log_spectrogram(b, sample_rate)) for _, a, _, b in rows]
    vmax = max(max(a.max(), b.max()) for a, b in specs)
    duration = len(example["clean"]) / sample_rate
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 2.2 * len(rows)), squeeze=False, sharex=True, sharey=True)
    for i, ((title_a, _, title_b, _), (spec_a, spec_b)) in enumerate(zip(rows, specs, strict=True)):
        for ax, spec, title in ((axes[i, 0], spec_a, title_a), (axes[i, 1], spec_b, title_b)):
            image = ax.imshow(
                spec,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=vmax - 80,
                vmax=vmax,
                extent=(0, duration, 0, sample_rate / 2000),
            )
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.colorbar(image, ax=axes, label="dB", shrink=0.6)
    fig.suptitle(f"{example['file_id']}: spectrograms after 1 and {k_max} passes")
    return fig
