"""Deep feature loss: distance between a frozen self-supervised speech model's features of ŷ and of y.

The backbone is a torchaudio architecture (``wavlm_base``, ``wav2vec2_base`` or ``hubert_base``). Its weights
come from a local file, or from the torch hub cache where ``torchaudio.pipelines`` would have stored them
(``<torch.hub.get_dir()>/checkpoints/<bundle file>``); nothing is downloaded. Without weights the loss refuses
to run unless ``random_init=True`` is asked for explicitly, and then its ``label`` says "random-init" and
``pretrained`` is ``False``, so no table can pass a random network off as a pretrained one.

Layers are numbered over the whole network: ``0 … 6`` are the outputs of the seven CNN feature-extractor
blocks, ``7 … 18`` the outputs of transformer layers 1 … 12. The default compares the CNN outputs: Close et
al. (2023) found the CNN feature-encoder outputs a better loss than the transformer layers, and FINALLY
(Babaev et al. 2024) uses the WavLM conv extractor. When no transformer layer is asked for, the transformer is
not even kept in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from mal.losses._checks import check_pair, flat
from mal.losses._frozen import freeze

# Backbone → file name of torchaudio's pretrained bundle (WAVLM_BASE, WAV2VEC2_BASE, HUBERT_BASE). torch.hub
# caches a bundle under this name, so a machine that ever ran ``bundle.get_model()`` has it there.
BUNDLE_FILES: dict[str, str] = {
    "wavlm_base": "wavlm_base.pth",
    "wav2vec2_base": "wav2vec2_fairseq_base_ls960.pth",
    "hubert_base": "hubert_fairseq_base_ls960.pth",
}
LAYER_GROUPS: tuple[str, ...] = ("cnn", "cnn_last", "transformer")
# The CNN extractor's receptive field (400 samples = 25 ms at 16 kHz): shorter input gives no frame at all.
MIN_SAMPLES = 400


def _builder(backbone: str) -> Callable[..., nn.Module]:
    import torchaudio.models

    return getattr(torchaudio.models, backbone)


def hub_cache_path(backbone: str) -> Path:
    """Where the torch hub cache keeps ``backbone``'s torchaudio weights (the file may not exist)."""
    if backbone not in BUNDLE_FILES:
        raise ValueError(f"unknown deep-feature backbone {backbone!r}; choose one of {sorted(BUNDLE_FILES)}")
    return Path(torch.hub.get_dir()) / "checkpoints" / BUNDLE_FILES[backbone]


def find_weights(backbone: str, weights_path: str | Path | None = None) -> Path | None:
    """The weights file to use: ``weights_path`` if given (it must exist), else the hub cache file if present.

    Raises:
        FileNotFoundError: ``weights_path`` was given and is not a file.
    """
    if weights_path is not None and str(weights_path) != "":
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"deep-feature weights for {backbone}: {path} does not exist or is not a file")
        return path
    cached = hub_cache_path(backbone)
    return cached if cached.is_file() else None


def _load_weights(net: nn.Module, path: Path, backbone: str, layers: str | Sequence[int]) -> None:
    """Load ``path`` into ``net``; the file must cover every part the chosen layers use, and nothing else.

    A file holding only the CNN feature extractor (``feature_extractor.*``) is enough for CNN layers, so a
    4 M-parameter extract of a 95 M-parameter checkpoint can be shipped for the default loss.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for corrupt or foreign files
        raise ValueError(f"DeepFeatureLoss: cannot read {path} as a state_dict ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise ValueError(f"DeepFeatureLoss: {path} holds a {type(state).__name__}, not a state_dict")
    expected = net.state_dict()
    unexpected = sorted(k for k in state if k not in expected)
    n_conv = len(net.feature_extractor.conv_layers)
    needs_transformer = isinstance(layers, str) and layers == "transformer"
    needs_transformer |= not isinstance(layers, str) and any(i >= n_conv for i in layers)
    prefixes = ("feature_extractor.", "encoder.") if needs_transformer else ("feature_extractor.",)
    missing = sorted(k for k in expected if k.startswith(prefixes) and k not in state)
    if unexpected or missing:
        raise ValueError(
            f"DeepFeatureLoss: {path} is not a state_dict for torchaudio.models.{backbone}() covering the chosen "
            f"layers: {len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    mismatched = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if mismatched:
        raise ValueError(f"DeepFeatureLoss: {path}: tensors of the wrong shape for {backbone}: {mismatched[:3]}")
    net.load_state_dict(state, strict=False)


class DeepFeatureLoss(nn.Module):
    """L1 (or L2) distance between frozen backbone features of the estimate and of the (detached) reference.

    Args:
        backbone: ``"wavlm_base"``, ``"wav2vec2_base"`` or ``"hubert_base"``.
        layers: ``"cnn"`` (the seven CNN block outputs, default), ``"cnn_last"`` (the last one),
            ``"transformer"`` (all transformer layers) or a list of layer numbers (see the module docstring).
        weights_path: a ``state_dict`` file for the torchaudio architecture; ``None`` looks in the hub cache.
        random_init: with no weights found, build a randomly initialised backbone (seeded by ``seed``)
            instead of refusing. The loss then labels itself "random-init".
        distance: ``"l1"`` (mean absolute difference) or ``"l2"`` (mean squared difference).
        normalise: divide each layer's distance by the detached mean ``|φ_l(y)|`` (L1) or ``φ_l(y)²`` (L2)
            so layers of very different scale count equally.
        seed: seed of the random initialisation (random-init only), so random features are reproducible.

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)`` at 16 kHz, identical, ``T ≥ 400``.

    Returns:
        Scalar tensor: mean over the chosen layers of the (normalised) distance.

    Raises:
        FileNotFoundError: no weights found and ``random_init`` is ``False``; the message lists the paths
            searched and how to supply weights.
    """

    def __init__(
        self,
        backbone: str = "wavlm_base",
        layers: str | Sequence[int] = "cnn",
        weights_path: str | Path | None = None,
        random_init: bool = False,
        distance: str = "l1",
        normalise: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if backbone not in BUNDLE_FILES:
            raise ValueError(f"DeepFeatureLoss: unknown backbone {backbone!r}; choose one of {sorted(BUNDLE_FILES)}")
        if distance not in ("l1", "l2"):
            raise ValueError(f"DeepFeatureLoss: unknown distance {distance!r}; choose 'l1' or 'l2'")
        path = find_weights(backbone, weights_path)
        if path is None and not random_init:
            searched = hub_cache_path(backbone)
            raise FileNotFoundError(
                f"DeepFeatureLoss: no pretrained weights for {backbone}. Searched: {searched} (torch hub cache; "
                f"set TORCH_HOME to move it). Supply weights with weights_path=<file> (LossConfig."
                f"deep_feature_weights): a state_dict for torchaudio.models.{backbone}(), e.g. the file torchaudio's "
                f"pipelines bundle downloads ({BUNDLE_FILES[backbone]}), copied here from a machine with internet. "
                "Or pass random_init=True (LossConfig.deep_feature_random_init) to use a randomly initialised "
                "network, which every result will label 'random-init'."
            )
        if path is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = _builder(backbone)()
        else:
            net = _builder(backbone)()
            _load_weights(net, path, backbone, layers)
        n_conv = len(net.feature_extractor.conv_layers)
        n_tf = len(net.encoder.transformer.layers)
        self.layers = self._resolve_layers(layers, n_conv, n_tf)
        if path is None:
            warnings.warn(
                f"DeepFeatureLoss: {backbone} has RANDOM weights (random_init=True); results are labelled "
                "'random-init' and are not a pretrained deep feature loss",
                stacklevel=2,
            )
        self.n_conv = n_conv
        self.extractor = net.feature_extractor
        # The transformer is kept only when a transformer layer is compared (it is ~95 % of the parameters),
        # and only up to the deepest layer compared.
        n_keep = max(self.layers) - n_conv + 1
        if n_keep > 0:
            net.encoder.transformer.layers = net.encoder.transformer.layers[:n_keep]
            self.transformer = net.encoder
        else:
            self.transformer = None
        freeze(self)
        self.backbone = backbone
        self.weights_path = path
        self.pretrained = path is not None
        self.distance = distance
        self.normalise = normalise
        self.eps = 1e-8

    @staticmethod
    def _resolve_layers(layers: str | Sequence[int], n_conv: int, n_tf: int) -> tuple[int, ...]:
        total = n_conv + n_tf
        if isinstance(layers, str):
            groups = {
                "cnn": tuple(range(n_conv)),
                "cnn_last": (n_conv - 1,),
                "transformer": tuple(range(n_conv, total)),
            }
            if layers not in groups:
                raise ValueError(f"DeepFeatureLoss: layers must be one of {list(groups)} or a list of layer numbers")
            return groups[layers]
        chosen = tuple(layers)
        bad = [i for i in chosen if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < total]
        if not chosen or bad:
            raise ValueError(
                f"DeepFeatureLoss: layers {list(chosen)} must be a non-empty list of numbers in 0..{total - 1} "
                f"(0..{n_conv - 1}: CNN blocks, {n_conv}..{total - 1}: transformer layers 1..{n_tf})"
            )
        return tuple(sorted(set(chosen)))

    @property
    def label(self) -> str:
        """E.g. ``"wavlm_base[cnn 0-6] (random-init)"`` or ``"wavlm_base[cnn 0-6] (pretrained: wavlm_base.pth)"``."""
        where = f"pretrained: {self.weights_path.name}" if self.pretrained else "random-init"
        return f"{self.backbone}[{self._layer_text()}] ({where})"

    def _layer_text(self) -> str:
        def span(name: str, idx: list[int]) -> str:
            if len(idx) == 1:
                return f"{name} {idx[0]}"
            if idx == list(range(idx[0], idx[-1] + 1)):
                return f"{name} {idx[0]}-{idx[-1]}"
            return f"{name} {','.join(map(str, idx))}"

        conv = [i for i in self.layers if i < self.n_conv]
        tf = [i - self.n_conv + 1 for i in self.layers if i >= self.n_conv]
        parts = [span(name, idx) for name, idx in (("cnn", conv), ("transformer", tf)) if idx]
        return "; ".join(parts)

    def extra_repr(self) -> str:
        return f"{self.label}, distance={self.distance}, normalise={self.normalise}"

    def features(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """The chosen layers' outputs for ``wav`` ``(B, T)``, in layer order, each ``(B, C, frames)``."""
        wanted = set(self.layers)
        last = max(self.layers)
        out: dict[int, torch.Tensor] = {}
        x = wav[:, None]
        for i, block in enumerate(self.extractor.conv_layers):
            if i > last:
                break
            x, _ = block(x, None)
            if i in wanted:
                out[i] = x
        if self.transformer is not None:
            hidden = self.transformer.extract_features(x.transpose(1, 2), None)
            for k, h in enumerate(hidden):
                if self.n_conv + k in wanted:
                    out[self.n_conv + k] = h.transpose(1, 2)
        return [out[i] for i in self.layers]

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        check_pair(estimate, reference, name)
        if estimate.shape[-1] < MIN_SAMPLES:
            raise ValueError(
                f"{name}: input of {estimate.shape[-1]} samples is shorter than the backbone's receptive field "
                f"({MIN_SAMPLES} samples = 25 ms at 16 kHz)"
            )
        est, ref = flat(estimate), flat(reference)
        with torch.no_grad():
            target = self.features(ref)
        feats = self.features(est)
        total = est.new_zeros((), dtype=torch.float32)
        for a, b in zip(feats, target, strict=True):
            a, b = a.float(), b.float()
            diff = a - b
            dist = diff.abs().mean() if self.distance == "l1" else diff.square().mean()
            if self.normalise:
                scale = b.abs().mean() if self.distance == "l1" else b.square().mean()
                dist = dist / scale.clamp_min(self.eps)
            total = total + dist
        return total / len(feats)
