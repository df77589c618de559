"""An ipywidgets explorer of the feature space: pick an utterance, a layer and a system; see the feature maps; listen.

For the chosen signal (clean, noisy, or a system's output) it shows the spectrogram, the judge encoder's feature map
at the chosen layer, and the absolute difference to the clean reference's feature map (titled with the normalised
distance that the correlation study uses), and it puts the signal into an audio player (played as stored, not
normalised, so levels compare across systems).

Only the first ``max_items`` utterances are loaded, and enhanced outputs are computed on first view and cached, so
memory stays bounded and opening the explorer is quick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from mal.analysis.features import encoder_features, feature_distance, layer_names
from mal.analysis.inference import Enhancer, enhance_once
from mal.analysis.study import Item, checked_items
from mal.audio import wav_bytes
from mal.models.base import SEModel
from mal.plots.analysis import log_spectrogram
from mal.plots.widgets import figure_png


def as_image(feature: torch.Tensor) -> np.ndarray:
    """A feature map ``(1, C, ..., T')`` as a 2-D image ``(rows, T')``: every axis but the last is stacked as rows."""
    f = feature[0].float().cpu()
    return f.reshape(-1, f.shape[-1]).numpy() if f.dim() > 1 else f[None].numpy()


class FeatureExplorer(widgets.VBox):
    """The explorer widget (see the module docstring); :meth:`render` draws one view as a Figure."""

    def __init__(
        self,
        items: Iterable[Item],
        judge: SEModel,
        systems: Mapping[str, SEModel],
        max_items: int = 16,
        sample_rate: int = 16000,
        enhancer: Enhancer = enhance_once,
    ) -> None:
        self.judge = judge.eval()
        self.systems = dict(systems)
        self.sample_rate = sample_rate
        self.enhancer = enhancer
        self.items: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = [
            (noisy, clean, meta) for meta, noisy, clean in checked_items(items, max_items, "explorer")
        ]
        if not self.items:
            raise ValueError("FeatureExplorer: the dataset yielded no items")
        self._cache: dict[tuple[int, str], torch.Tensor] = {}
        n_features = len(encoder_features(self.judge, self.items[0][1]))
        self.layer_names = layer_names(n_features)

        self.utterance = widgets.Dropdown(
            options=[(self._label(m), i) for i, (_, _, m) in enumerate(self.items)], description="utterance"
        )
        self.layer = widgets.Dropdown(options=self.layer_names, value=self.layer_names[-1], description="layer")
        self.system = widgets.Dropdown(options=["clean", "noisy", *self.systems], value="noisy", description="system")
        self.figure = widgets.Image(format="png")
        self.audio = widgets.Audio(format="wav", autoplay=False, loop=False)
        self.status = widgets.HTML()
        for control in (self.utterance, self.layer, self.system):
            control.observe(self._on_change, names="value")
        super().__init__(
            [widgets.HBox([self.utterance, self.layer, self.system]), self.status, self.figure, self.audio]
        )
        self.refresh()

    @staticmethod
    def _label(meta: Mapping[str, Any]) -> str:
        extras = [f"{meta['snr_db']:g} dB" if meta.get("snr_db") is not None else None, meta.get("noise_type")]
        extras = [e for e in extras if e]
        return f"{meta['file_id']} ({', '.join(extras)})" if extras else meta["file_id"]

    def signal(self, index: int, system: str) -> torch.Tensor:
        """The audio ``(1, T)`` of ``system`` (``clean``, ``noisy`` or a system label) for utterance ``index``."""
        noisy, clean, _ = self.items[index]
        if system == "clean":
            return clean
        if system == "noisy":
            return noisy
        if system not in self.systems:
            raise KeyError(f"unknown system {system!r}; have clean, noisy, {', '.join(self.systems)}")
        key = (index, system)
        if key not in self._cache:
            self._cache[key] = self.enhancer(self.systems[system], noisy)
        return self._cache[key]

    def render(self, index: int, layer: str, system: str) -> tuple[plt.Figure, float]:
        """Spectrogram, feature map and difference to clean for one view → (figure, normalised L1 distance)."""
        wav = self.signal(index, system)
        li = self.layer_names.index(layer)
        feat = encoder_features(self.judge, wav)[li]
        ref = encoder_features(self.judge, self.items[index][1])[li]
        dist = float(feature_distance(feat, ref)[0])
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
        duration = wav.shape[-1] / self.sample_rate
        axes[0].imshow(
            log_spectrogram(wav.numpy(), self.sample_rate),
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, duration, 0, self.sample_rate / 2000),
        )
        axes[0].set(title=f"{system}: spectrogram", xlabel="time (s)", ylabel="kHz")
        image = as_image(feat)
        im = axes[1].imshow(image, origin="lower", aspect="auto", cmap="viridis", extent=(0, duration, 0, len(image)))
        axes[1].set(title=f"{layer} features ({tuple(feat.shape[1:])})", xlabel="time (s)", ylabel="channel")
        fig.colorbar(im, ax=axes[1])
        diff = np.abs(image - as_image(ref))
        im = axes[2].imshow(diff, origin="lower", aspect="auto", cmap="magma", extent=(0, duration, 0, len(diff)))
        axes[2].set(title=f"|E({system}) − E(clean)|, d = {dist:.3f}", xlabel="time (s)", ylabel="channel")
        fig.colorbar(im, ax=axes[2])
        fig.tight_layout()
        return fig, dist

    def refresh(self) -> None:
        """Redraw for the current selection and load its audio into the player."""
        index, layer, system = self.utterance.value, self.layer.value, self.system.value
        fig, dist = self.render(index, layer, system)
        self.audio.value = wav_bytes(self.signal(index, system), self.sample_rate)
        meta = self.items[index][2]
        known = [
            f"{name} {meta[key]}{unit}"
            for key, name, unit in (("speaker", "speaker", ""), ("noise_type", "noise", ""), ("snr_db", "SNR", " dB"))
            if meta.get(key) is not None
        ]
        self.status.value = (
            f"<b>{meta['file_id']}</b>{': ' + ', '.join(known) if known else ''}; "
            f"judge-encoder distance to clean at {layer}: <b>{dist:.4f}</b>"
        )
        # A widget value, not output captured in an Output widget: see mal.plots.widgets for why.
        self.figure.value = figure_png(fig)

    def _on_change(self, _change: Mapping[str, Any]) -> None:
        self.refresh()


def feature_explorer(
    items: Iterable[Item],
    judge: SEModel,
    systems: Mapping[str, SEModel],
    max_items: int = 16,
    sample_rate: int = 16000,
    enhancer: Enhancer = enhance_once,
) -> FeatureExplorer:
    """Build the explorer widget; display it as the last expression of a notebook cell."""
    return FeatureExplorer(items, judge, systems, max_items, sample_rate, enhancer)
