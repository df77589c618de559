"""The encoder's feature space: extract, pool and compare features of any :class:`~mal.models.base.SEModel`.

"The feature space" of a model is what its encoder ``E`` returns: the output of every encoder block
(``Encoded.layers``) and the bottleneck (``Encoded.bottleneck``), in that order (``Encoded.features()``). MAL's loss
is a distance in this space; this module measures the same distance between an estimate and its clean reference,
so that :mod:`mal.analysis.correlation` can ask whether it tracks perceived quality.

Memory stays bounded whatever the dataset size: distances are computed per utterance at full resolution and
reduced to one number per layer at once, and only a pooled summary of each feature map (mean and standard
deviation over time, per channel) is kept for the 2-D projections.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mal.models.base import SEModel, as_batch

LayerSpec = str | Sequence[int]


def layer_names(n_features: int) -> list[str]:
    """Names of the feature maps of ``Encoded.features()``: ``layer0 … layer{L-1}``, then ``bottleneck``."""
    if n_features < 1:
        raise ValueError("an encoder must return at least the bottleneck")
    return [f"layer{i}" for i in range(n_features - 1)] + ["bottleneck"]


def resolve_layers(spec: LayerSpec, n_features: int) -> list[int]:
    """Turn a layer choice into sorted, unique, non-negative indices into ``Encoded.features()``.

    Args:
        spec: ``"all"``, ``"bottleneck"``, ``"blocks"`` (every block but not the bottleneck), a comma-separated
            string of indices (``"0,2,-1"``) or a sequence of ints; negative indices count from the end
            (``-1`` is the bottleneck).
        n_features: ``len(Encoded.features())`` of the model.
    """
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(range(n_features))
        if text == "bottleneck":
            return [n_features - 1]
        if text == "blocks":
            return list(range(n_features - 1))
        try:
            spec = [int(part) for part in text.split(",") if part.strip()]
        except ValueError as err:
            raise ValueError(
                f"layers={spec!r}: use 'all', 'bottleneck', 'blocks' or comma-separated indices like '0,2,-1'"
            ) from err
    indices = []
    for i in spec:
        j = i + n_features if i < 0 else i
        if not 0 <= j < n_features:
            raise ValueError(
                f"layer index {i} out of range: the encoder has {n_features} feature maps (0..{n_features - 1})"
            )
        indices.append(j)
    if not indices:
        raise ValueError("no layer selected")
    return sorted(set(indices))


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.inference_mode()
def encoder_features(model: SEModel, wav: torch.Tensor) -> list[torch.Tensor]:
    """Every feature map of ``model``'s encoder for ``wav``.

    Args:
        model: any model with ``encode()``; used as is (call ``.eval()`` first for inference behaviour).
        wav: ``(T,)``, ``(B, T)`` or ``(B, 1, T)`` audio at the model's sample rate; moved to the model's device.

    Returns:
        ``Encoded.features()``: a list of ``(B, C_l, ...)`` tensors, the blocks then the bottleneck.
    """
    wav = as_batch(torch.as_tensor(wav, dtype=torch.float32)).to(model_device(model))
    return model.encode(wav).features()


def pool(feature: torch.Tensor) -> torch.Tensor:
    """Summarise a feature map by the mean and standard deviation over every axis after the channel axis.

    Shape:
        ``(B, C, ...)`` → ``(B, 2C)`` (means first, then standard deviations).
    """
    if feature.dim() < 2:
        raise ValueError(f"a feature map must be (B, C, ...); got shape {tuple(feature.shape)}")
    flat = feature.reshape(feature.shape[0], feature.shape[1], -1).float()
    std = flat.std(dim=-1, unbiased=False)
    return torch.cat([flat.mean(dim=-1), std], dim=-1)


def feature_distance(
    estimate: torch.Tensor, reference: torch.Tensor, distance: str = "l1", normalise: bool = True
) -> torch.Tensor:
    """Distance between two feature maps of the same layer, per batch item.

    ``l1``: mean |e − r|; ``l2``: mean (e − r)². With ``normalise`` the value is divided by the same statistic of
    the reference alone (mean |r|, resp. mean r²), which makes layers of different scale comparable; this is the
    per-layer normalisation MAL uses on all layers (docs/method.md).

    Shape:
        ``(B, C, ...)`` and ``(B, C, ...)`` → ``(B,)``.
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"feature maps differ in shape: {tuple(estimate.shape)} vs {tuple(reference.shape)}")
    diff = (estimate - reference).reshape(estimate.shape[0], -1).float()
    ref = reference.reshape(reference.shape[0], -1).float()
    if distance == "l1":
        value, scale = diff.abs().mean(-1), ref.abs().mean(-1)
    elif distance == "l2":
        value, scale = diff.pow(2).mean(-1), ref.pow(2).mean(-1)
    else:
        raise ValueError(f"distance={distance!r}: choose 'l1' or 'l2'")
    return value / scale.clamp_min(1e-12) if normalise else value


def layer_distances(
    features_estimate: Sequence[torch.Tensor],
    features_reference: Sequence[torch.Tensor],
    layers: Sequence[int],
    distance: str = "l1",
    normalise: bool = True,
) -> list[float]:
    """:func:`feature_distance` of one utterance at each selected layer (batch of one) → one float per layer."""
    if len(features_estimate) != len(features_reference):
        raise ValueError("estimate and reference have a different number of feature maps")
    out = []
    for i in layers:
        value = feature_distance(features_estimate[i], features_reference[i], distance, normalise)
        if value.numel() != 1:
            raise ValueError("layer_distances expects a batch of one utterance")
        out.append(float(value.item()))
    return out
