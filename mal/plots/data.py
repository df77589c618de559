"""Figures and the listening widget of the data-preparation notebook.

Every plotting function takes the manifest table of :func:`mal.data.summary.corpus_frame` (or a dataset) and
returns a matplotlib Figure; :func:`mal.plots.save_figure` writes it as PNG and SVG.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from mal.data.loaders import PairDataset

N_FFT = 512
HOP = 128


def plot_durations(frame: pd.DataFrame) -> plt.Figure:
    """Minutes of audio per split (left) and per speaker within each split (right, in-domain speakers coloured)."""
    minutes = frame.groupby("split", observed=True)["duration_s"].sum().div(60).reset_index(name="minutes")
    per_speaker = frame.groupby(["split", "speaker"], observed=True)["duration_s"].sum().div(60)
    per_speaker = per_speaker.reset_index(name="minutes")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2]})
    sns.barplot(data=minutes, x="split", y="minutes", ax=axes[0], color="tab:blue")
    axes[0].set_title("Audio per split")
    axes[0].set_ylabel("minutes")
    for container in axes[0].containers:
        axes[0].bar_label(container, fmt="%.1f", fontsize=8)
    in_domain = per_speaker[~per_speaker["speaker"].astype(str).str.startswith("ktuberling-")]
    sns.barplot(data=in_domain, x="split", y="minutes", hue="speaker", ax=axes[1])
    n_ood = per_speaker[per_speaker["speaker"].astype(str).str.startswith("ktuberling-")]["speaker"].nunique()
    axes[1].set_title(f"Per in-domain speaker (test_ood: {n_ood} KTuberling voices, not shown)")
    axes[1].set_ylabel("minutes")
    axes[1].legend(title="speaker", fontsize=8)
    for ax in axes:
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def plot_snr_histogram(frame: pd.DataFrame) -> plt.Figure:
    """SNR distribution per split: uniform in train, fixed levels elsewhere."""
    splits = list(frame["split"].cat.categories) if hasattr(frame["split"], "cat") else sorted(frame["split"].unique())
    fig, axes = plt.subplots(1, len(splits), figsize=(3.2 * len(splits), 3), sharex=True, squeeze=False)
    lo, hi = float(frame["snr_db"].min()), float(frame["snr_db"].max())
    # 1.25 dB bins centred on multiples of 1.25 dB, so fixed levels such as 2.5 or 7.5 dB sit mid-bin.
    bins = np.arange(np.floor(lo / 1.25) * 1.25 - 0.625, hi + 1.25, 1.25)
    for ax, split in zip(axes[0], splits, strict=True):
        sns.histplot(frame[frame["split"] == split], x="snr_db", bins=bins, ax=ax, color="tab:orange")
        ax.set_title(split)
        ax.set_xlabel("SNR (dB)")
    fig.suptitle("SNR per utterance")
    fig.tight_layout()
    return fig


def plot_noise_types(frame: pd.DataFrame) -> plt.Figure:
    """How many mixtures of each noise type every split holds."""
    fig, ax = plt.subplots(figsize=(10, 3.5))
    sns.countplot(data=frame, x="noise_type", hue="split", ax=ax)
    ax.set_xlabel("noise type")
    ax.set_ylabel("mixtures")
    ax.set_title("Noise types per split (in-domain: music, ambience, keyboard, colour, hum; OOD: the rest)")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def log_spectrogram(wav: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Magnitude STFT in dB (floor -100 dB), ``(freq, frames)``, from ``wav`` ``(1, T)`` or ``(T,)``."""
    x = wav.reshape(-1).float()
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    return (20 * torch.log10(spec.clamp_min(1e-5))).numpy()


def plot_example_pairs(items: list[tuple[PairDataset, int]], sample_rate: int = 16000) -> plt.Figure:
    """Clean (left) and noisy (right) spectrograms, one row per ``(dataset, index)`` item, same colour scale."""
    fig, axes = plt.subplots(len(items), 2, figsize=(12, 2.6 * len(items)), squeeze=False, sharey=True)
    for row, (dataset, index) in enumerate(items):
        noisy, clean, meta = dataset[index]
        for col, (wav, name) in enumerate(((clean, "clean"), (noisy, "noisy"))):
            spec = log_spectrogram(wav)
            extent = (0, wav.shape[-1] / sample_rate, 0, sample_rate / 2000)
            im = axes[row, col].imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=-80, vmax=10)
            title = f"{meta['id']} {name} ({meta.get('speaker')}, {meta.get('language')})"
            if name == "noisy":
                title = f"{meta['id']} noisy: {meta.get('noise_type')} at {meta.get('snr_db'):.1f} dB"
                if meta.get("room"):
                    title += f", {meta['room']} (RT60 {meta.get('rt60_s', 0):.2f} s)"
            axes[row, col].set_title(title, fontsize=9)
            axes[row, col].set_ylabel("kHz" if col == 0 else "")
        fig.colorbar(im, ax=axes[row, 1], label="dB")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def pair_player(datasets: dict[str, PairDataset], sample_rate: int = 16000) -> Any:
    """An ipywidgets box to pick a split and item and listen to its clean and noisy audio side by side.

    Audio is played as stored (not normalised), so clean and noisy keep their relative level. Players are widget
    values, never output captured in an ``Output`` widget (see :mod:`mal.plots.widgets` for why).
    """
    import ipywidgets as widgets

    from mal.plots.widgets import audio_player, facts_html, refill

    split_box = widgets.Dropdown(options=list(datasets), description="split")
    item_box = widgets.Dropdown(description="item")
    facts = widgets.HTML()
    players = widgets.VBox()

    def show(*_: Any) -> None:
        if item_box.value is None:  # an empty split
            facts.value, players.children = "", []
            return
        noisy, clean, meta = datasets[split_box.value][item_box.value]
        keys = ("speaker", "language", "prompt", "noise_type", "snr_db", "room")
        facts.value = facts_html({k: meta.get(k) for k in keys})
        players.children = [audio_player("clean", clean, sample_rate), audio_player("noisy", noisy, sample_rate)]

    def pick_split(*_: Any) -> None:
        refill(item_box, [(item_id, n) for n, item_id in enumerate(datasets[split_box.value].ids)], show)

    split_box.observe(pick_split, names="value")
    item_box.observe(show, names="value")
    pick_split()
    return widgets.VBox([widgets.HBox([split_box, item_box]), facts, players])
