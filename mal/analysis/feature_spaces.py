"""Comparison feature spaces: the handcrafted and borrowed features that the encoder's own space is measured against.

Each space is a distance ``d(estimate, clean)`` over waveforms, with the (estimate, reference) order of
``mal.losses``:

* ``logmel``: mean |log(mel(ŷ) + ε) − log(mel(y) + ε)| over an 80-band log-mel spectrogram (512-point FFT,
  hop 128, ε = 1e-5): the classic handcrafted perceptual-ish feature space.
* ``mrstft``: ``mal.losses.MultiResolutionSTFTLoss`` (spectral convergence + log-magnitude at several
  resolutions), the usual conventional loss.
* ``deep:<backbone>``: ``mal.losses.DeepFeatureLoss`` on a self-supervised speech model (e.g. ``wavlm_base``).
  Pretrained weights only when a local file (or the torch hub cache) gives them; the space is labelled
  ``deep:<backbone> (pretrained)`` or ``deep:<backbone> (random-init)``, so that nobody mistakes a random network's
  features for WavLM's.
* ``lossnet``: ``mal.losses.LossNetFeatureLoss`` with a lossnet checkpoint pretrained by ``mal`` (Germain et al.
  2019 style); skipped, with the reason recorded, when no checkpoint is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torchaudio
from torch import nn

from mal.analysis.features import model_device

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LogMelDistance(nn.Module):
    """Mean absolute difference of log-mel spectrograms.

    Shape:
        estimate, reference ``(B, 1, T)`` or ``(B, T)`` → scalar (mean over batch, bands and frames).
    """

    def __init__(
        self, sample_rate: int = 16000, n_fft: int = 512, hop_length: int = 128, n_mels: int = 80, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        self.eps = eps

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if estimate.shape != reference.shape:
            raise ValueError(f"LogMelDistance: shapes differ {tuple(estimate.shape)} vs {tuple(reference.shape)}")
        est = self.mel(estimate.reshape(estimate.shape[0], -1))
        ref = self.mel(reference.reshape(reference.shape[0], -1))
        return (torch.log(est + self.eps) - torch.log(ref + self.eps)).abs().mean()


@dataclasses.dataclass
class ComparisonSpace:
    """A named waveform distance used as a comparison row in the correlation table.

    Attributes:
        name: column / row label (``logmel``, ``mrstft``, ``deep:wavlm_base``, ``deep:wavlm_base (random-init)``…).
        module: the distance; called as ``module(estimate (1, 1, T), reference (1, 1, T))`` → scalar tensor.
        description: one line for tables and the notebook.
    """

    name: str
    module: nn.Module
    description: str

    @torch.inference_mode()
    def __call__(self, estimate: torch.Tensor, reference: torch.Tensor) -> float:
        """Distance of one pair of ``(1, 1, T)`` waveforms, computed on the space's device."""
        device = model_device(self.module)
        return float(self.module(estimate.to(device), reference.to(device)).item())


def build_spaces(
    names: Sequence[str],
    device: torch.device | str = "cpu",
    deep_weights: str | None = None,
    lossnet_checkpoint: str | None = None,
) -> tuple[list[ComparisonSpace], dict[str, str]]:
    """Build the requested comparison spaces.

    Args:
        names: any of ``logmel``, ``mrstft``, ``deep:<backbone>``, ``lossnet``.
        device: where the distances run.
        deep_weights: local file with pretrained weights for the ``deep:`` backbone; ``None`` → the torch hub cache
            if it holds them, else a random-init backbone (labelled so).
        lossnet_checkpoint: a lossnet pretrained by ``mal``; ``None`` → ``lossnet`` is skipped with a reason.

    Returns:
        ``(spaces, skipped)``: the built spaces, and ``{name: reason}`` for those that could not be built honestly.
    """
    spaces: list[ComparisonSpace] = []
    skipped: dict[str, str] = {}
    for raw in names:
        name = raw.strip()
        if name == "logmel":
            spaces.append(ComparisonSpace("logmel", LogMelDistance().to(device), "L1 between 80-band log-mel spectra"))
        elif name == "mrstft":
            from mal.losses import MultiResolutionSTFTLoss

            spaces.append(
                ComparisonSpace("mrstft", MultiResolutionSTFTLoss().to(device).eval(), "multi-resolution STFT loss")
            )
        elif name.startswith("deep:"):
            from mal.losses.deep_feature import DeepFeatureLoss, find_weights

            backbone = name.split(":", 1)[1]
            # pretrained only when a file really provides the weights (given path, or the torch hub cache)
            weights = find_weights(backbone, deep_weights or None)
            module = DeepFeatureLoss(backbone, weights_path=weights, random_init=weights is None).to(device).eval()
            tag = "pretrained" if module.pretrained else "random-init"
            description = f"{backbone} feature distance ({tag}, layers {list(module.layers)})"
            spaces.append(ComparisonSpace(f"deep:{backbone} ({tag})", module, description))
        elif name == "lossnet":
            if not lossnet_checkpoint:
                skipped["lossnet"] = "no lossnet checkpoint given (parameter lossnet_checkpoint)"
                continue
            from mal.losses import LossNetFeatureLoss

            module = LossNetFeatureLoss(lossnet_checkpoint).to(device).eval()
            spaces.append(ComparisonSpace("lossnet", module, module.label))
        else:
            raise ValueError(f"unknown comparison space {name!r}; choose from logmel, mrstft, deep:<backbone>, lossnet")
    return spaces, skipped
