"""The loss recipe of a training run: a typed config and the builder that turns it into a :class:`WeightedSum`.

Terms are named ``l1``, ``mrstft``, ``sisdr``, ``mal``, ``deep_feature`` and ``lossnet``; the breakdown of the
objective (and so the training logs) uses the same names. Only terms with a weight above 0 are built, so a
recipe without MAL never snapshots the model, and one without a deep feature loss never looks for weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from mal.config import ConfigBase, ConfigError
from mal.losses.combine import WeightedSum
from mal.losses.conventional import MultiResolutionSTFTLoss, SISDRLoss, WaveformL1
from mal.losses.model_as_loss import DISTANCES, INITS, LAYER_MODES, VARIANTS, ModelAsLoss
from mal.losses.spectral import CompressedSpectralLoss
from mal.models.base import SEModel

TERM_NAMES: tuple[str, ...] = ("l1", "mrstft", "spectral", "sisdr", "mal", "deep_feature", "lossnet")
# The LossConfig fields of the conventional loss (the rest belong to the feature terms a recipe switches on).
CONVENTIONAL_FIELDS: tuple[str, ...] = ("l1", "l1_normalise", "mrstft", "spectral", "sisdr")
DEEP_FEATURE_BACKBONES: tuple[str, ...] = ("wavlm_base", "wav2vec2_base", "hubert_base")


@dataclasses.dataclass
class LossConfig(ConfigBase):
    """Weights and settings of every loss term (``build_objective`` builds the terms whose weight is > 0)."""

    # Conventional terms (docs/method.md): the raw-scale L1 was ~5 % of L1 + MR-STFT and the model never learned
    # phase; the normalised L1 puts both on an O(1) scale, and normalised L1 + MR-STFT (1 : 1) learned fast.
    l1: float = 1.0  # weight of the waveform L1
    l1_normalise: bool = True  # L1 on ŷ/σ_y vs y/σ_y (σ_y: per-utterance std of the clean reference)
    mrstft: float = 1.0  # weight of the multi-resolution STFT loss (spectral convergence + log magnitude)
    # Compressed spectral loss (|X|^0.3 magnitude + complex MSE) on the model's own STFT when it has one.
    spectral: float = 0.0  # weight of CompressedSpectralLoss
    sisdr: float = 0.0  # weight of the negative SI-SDR (dB, so about -10..-20 for a good model)

    # Model as Loss (docs/method.md). The frozen snapshot is taken when build_objective runs.
    mal: float = 0.0  # weight λ_mal of the MAL term (see calibrate_weight to start it equal to the rest)
    mal_variant: str = "frozen"  # "frozen" | "frozen-fe" | "dynamic"
    mal_layers: str | list[int] = "bottleneck"  # "bottleneck" | "all" | "all-but-first" | indices into
    #                                              Encoded.features() (-1 = the bottleneck)
    mal_distance: str = "l1"  # "l1" | "l2"
    mal_encoder_grad: bool = False  # dynamic only: let the MAL gradient reach the encoder through E*(ŷ)
    mal_normalise: bool | None = None  # per-layer normalisation; None = on for "all"/lists, off for bottleneck
    mal_init: str = "trained"  # frozen only: E* is the trained model ("trained") or a seeded random init ("random")
    mal_init_seed: int = 0  # the seed of the random E* (mal_init="random")

    # Deep feature loss on a self-supervised speech model (torchaudio architecture).
    deep_feature: float = 0.0  # weight of the deep feature loss
    deep_feature_backbone: str = "wavlm_base"  # "wavlm_base" | "wav2vec2_base" | "hubert_base"
    deep_feature_layers: str | list[int] = "cnn"  # "cnn" | "cnn_last" | "transformer" | indices (0-6 CNN)
    deep_feature_weights: str = ""  # local weights file; "" = look in the torch hub cache
    deep_feature_random_init: bool = False  # allow random weights when none are found (labelled random-init)

    # Lossnet pretrained by mal (Germain et al. 2019 style; `pretrain_lossnet`).
    lossnet: float = 0.0  # weight of the lossnet feature loss
    lossnet_path: str = ""  # checkpoint written by pretrain_lossnet
    lossnet_layers: int = 6  # compare the first N layers (Germain: 6); capped at the network's depth

    def validate(self) -> None:
        weights = {name: getattr(self, name) for name in TERM_NAMES}
        for name, w in weights.items():
            if not math.isfinite(w) or w < 0:
                raise ConfigError(f"LossConfig.{name}: weights must be finite and ≥ 0; got {w}")
        if not any(w > 0 for w in weights.values()):
            raise ConfigError(f"LossConfig: every term weight is 0 ({', '.join(TERM_NAMES)}); nothing would train")
        if self.mal_variant not in VARIANTS:
            raise ConfigError(f"LossConfig.mal_variant: {self.mal_variant!r} is not one of {list(VARIANTS)}")
        if self.mal_distance not in DISTANCES:
            raise ConfigError(f"LossConfig.mal_distance: {self.mal_distance!r} is not one of {list(DISTANCES)}")
        if isinstance(self.mal_layers, str) and self.mal_layers not in LAYER_MODES:
            raise ConfigError(
                f"LossConfig.mal_layers: {self.mal_layers!r} is not one of {list(LAYER_MODES)} or a list of indices"
            )
        if isinstance(self.mal_layers, list) and not self.mal_layers:
            raise ConfigError("LossConfig.mal_layers: an empty list selects no layer")
        if self.mal_init not in INITS:
            raise ConfigError(f"LossConfig.mal_init: {self.mal_init!r} is not one of {list(INITS)}")
        if self.mal_init == "random" and self.mal_variant != "frozen":
            raise ConfigError(
                f"LossConfig.mal_init='random' replaces the frozen snapshot; mal_variant {self.mal_variant!r} "
                "judges with the live model's encoder (use mal_variant 'frozen')"
            )
        if self.mal_encoder_grad and self.mal_variant != "dynamic":
            raise ConfigError(
                f"LossConfig.mal_encoder_grad=True only applies to mal_variant 'dynamic' (got {self.mal_variant!r})"
            )
        if self.deep_feature_backbone not in DEEP_FEATURE_BACKBONES:
            raise ConfigError(
                f"LossConfig.deep_feature_backbone: {self.deep_feature_backbone!r} is not one of "
                f"{list(DEEP_FEATURE_BACKBONES)}"
            )
        if self.lossnet > 0 and not self.lossnet_path:
            raise ConfigError("LossConfig.lossnet > 0 needs lossnet_path (a checkpoint from pretrain_lossnet)")
        if self.lossnet_layers < 1:
            raise ConfigError(f"LossConfig.lossnet_layers must be ≥ 1, got {self.lossnet_layers}")

    def weights(self) -> dict[str, float]:
        """Term name → weight, for every term (including those at 0)."""
        return {name: float(getattr(self, name)) for name in TERM_NAMES}


def build_objective(cfg: LossConfig, model: SEModel | None = None) -> WeightedSum:
    """Build the weighted sum of the terms whose weight in ``cfg`` is above 0.

    Args:
        cfg: the recipe.
        model: the model being trained; needed when ``cfg.mal > 0``. Build the objective *after* the
            model's weights are in place: ``frozen`` snapshots the model here, and ``frozen-fe`` freezes
            ``model.encoder`` here (its parameters get ``requires_grad=False``).

    Returns:
        A :class:`WeightedSum` named by :data:`TERM_NAMES`, on the model's device when a model is given.

    Raises:
        ValueError: ``cfg.mal > 0`` without a model.
        FileNotFoundError: deep-feature or lossnet weights that are not where ``cfg`` says.
    """
    cfg.validate()
    terms: dict[str, torch.nn.Module] = {}
    if cfg.l1 > 0:
        terms["l1"] = WaveformL1(normalise=cfg.l1_normalise)
    if cfg.mrstft > 0:
        terms["mrstft"] = MultiResolutionSTFTLoss()
    if cfg.spectral > 0:
        terms["spectral"] = CompressedSpectralLoss(**model_stft(model))
    if cfg.sisdr > 0:
        terms["sisdr"] = SISDRLoss()
    if cfg.mal > 0:
        if model is None:
            raise ValueError("build_objective: LossConfig.mal > 0 needs the model (MAL runs the model's encoder)")
        layers = cfg.mal_layers if isinstance(cfg.mal_layers, str) else list(cfg.mal_layers)
        terms["mal"] = ModelAsLoss(
            model,
            variant=cfg.mal_variant,  # type: ignore[arg-type]  # validated above
            layers=layers,
            distance=cfg.mal_distance,
            encoder_grad=cfg.mal_encoder_grad,
            normalise=cfg.mal_normalise,
            init=cfg.mal_init,
            init_seed=cfg.mal_init_seed,
        )
    if cfg.deep_feature > 0:
        from mal.losses.deep_feature import DeepFeatureLoss

        layers = cfg.deep_feature_layers if isinstance(cfg.deep_feature_layers, str) else list(cfg.deep_feature_layers)
        terms["deep_feature"] = DeepFeatureLoss(
            cfg.deep_feature_backbone,
            layers=layers,
            weights_path=cfg.deep_feature_weights or None,
            random_init=cfg.deep_feature_random_init,
        )
    if cfg.lossnet > 0:
        from mal.losses.lossnet import LossNetFeatureLoss

        terms["lossnet"] = LossNetFeatureLoss(cfg.lossnet_path, layers=cfg.lossnet_layers)
    weights = {name: w for name, w in cfg.weights().items() if name in terms}
    objective = WeightedSum(terms, weights)
    if model is not None:
        param = next(model.parameters(), None)
        if param is not None:
            objective.to(param.device)
    return objective


def model_stft(model: SEModel | None) -> dict[str, int]:
    """The model's own STFT size and hop (``n_fft``, ``hop`` attributes), or ``{}`` for the loss's defaults."""
    if (
        model is None
        or not isinstance(getattr(model, "n_fft", None), int)
        or not isinstance(getattr(model, "hop", None), int)
    ):
        return {}
    return {"n_fft": model.n_fft, "hop": model.hop}


@torch.no_grad()
def calibrate_weight(
    objective: WeightedSum, term: str, estimate: torch.Tensor, reference: torch.Tensor, ratio: float = 1.0
) -> float:
    """The weight that makes ``term`` start at ``ratio`` × the weighted sum of the other terms on one batch.

    In the feasibility runs (docs/method.md) the one MAL setting that helped was "scaled to start equal to the
    conventional term" (λ_mal ≈ 1.75 there). It matches loss *values*, not gradients: the gradient dose it gives
    the MAL term is not controlled (see "What the quick study can and cannot say"); training calibrates by
    gradient norm (:func:`gradient_matched_weights`) unless ``TrainConfig.calibrate_by="value"``. Call this at the
    start of stage 2 with ``estimate = model(noisy)`` on a training batch, then ``objective.set_weight(term, w)``.
    The objective is not changed here.

    Args:
        objective: the weighted sum holding ``term`` (the term's current weight is ignored).
        term: the term to scale, e.g. ``"mal"``.
        estimate, reference: one batch, ``(B, T)`` or ``(B, 1, T)``.
        ratio: wanted ``w·term / Σ others``; 1 means equal.

    Returns:
        The weight, a positive float.

    Raises:
        KeyError: no such term. ValueError: the term is 0 or not finite on this batch (e.g. estimate ==
        reference), or the other terms sum to ≤ 0 (there is nothing positive to match).
    """
    if term not in objective.terms:
        raise KeyError(f"calibrate_weight: no term named {term!r}; terms are {list(objective.terms)}")
    if not ratio > 0:
        raise ValueError(f"calibrate_weight: ratio must be > 0; got {ratio}")
    value = float(objective.terms[term](estimate, reference))
    others = 0.0
    for name, module in objective.terms.items():
        weight = objective.weights[name]
        if name != term and weight > 0:
            others += weight * float(module(estimate, reference))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"calibrate_weight: term {term!r} is {value} on this batch; it must be finite and > 0 to be scaled "
            "(is the estimate identical to the reference?)"
        )
    if not math.isfinite(others) or others <= 0:
        raise ValueError(
            f"calibrate_weight: the other weighted terms sum to {others} on this batch; need a positive, finite "
            f"sum to match (terms with weight > 0: {[n for n, w in objective.weights.items() if w > 0 and n != term]})"
        )
    return ratio * others / value


def gradient_matched_weights(
    objective: WeightedSum,
    model: nn.Module,
    noisy: torch.Tensor,
    reference: torch.Tensor,
    ratios: Mapping[str, float],
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Weights that give each term in ``ratios`` a fixed share of the gradient and the sum the baseline's norm.

    Matching loss *values* (:func:`calibrate_weight`) left the MAL gradient 4.4× the conventional one on the quick
    study's warm-up (issue 13), so a MAL branch stepped 2–5× further than its baseline. This matches gradients
    instead, on one batch, over the parameters that train (``requires_grad``; for ``frozen-fe`` the decoder):

    1. ``g_c = ∇θ Σ_other w_i·L_i``, the conventional part with its current weights (the baseline's gradient);
    2. each term ``t`` in ``ratios`` gets ``w_t = r_t·‖g_c‖ / ‖∇θ L_t‖``, so its gradient is ``r_t`` × as long
       as the conventional one (``r = 1``: a MAL share α = r / (1 + r) = ½ of the mix, by norm);
    3. every weight (conventional and calibrated) is multiplied by ``s = ‖g_c‖ / ‖g_c + Σ_t w_t·∇L_t‖``.

    Step 3 makes the norm of the *sum* equal to the baseline's exactly on this batch: when the gradients are
    parallel, ``s = 1 / (1 + Σ r_t)`` and the result is the convex mix ``(1 − α)·L_conv + α·(‖g_c‖/‖g_t‖)·L_t``;
    when they are not (cosine < 1), the convex mix's norm would fall short of ``‖g_c‖`` and ``s`` is larger.

    Args:
        objective: the weighted sum; the terms not in ``ratios`` with weight > 0 are the conventional part.
        model: the model being trained, in the mode the step uses (its trainable parameters are measured).
        noisy, reference: one batch, ``(B, T)`` or ``(B, 1, T)``.
        ratios: term → gradient-norm ratio ``r_t > 0`` to the conventional part.
        autocast: the context the training step runs the model forward in (mixed precision).

    Returns:
        Term name → new weight for every term with weight > 0 (the objective is not changed here).

    Raises:
        KeyError: a term not in the objective. ValueError: nothing left to match (every weighted term is
        calibrated), no trainable parameter, or a gradient norm that is 0 or not finite on this batch.
    """
    unknown = sorted(set(ratios) - set(objective.terms))
    if unknown:
        raise KeyError(f"gradient_matched_weights: no term named {unknown}; terms are {list(objective.terms)}")
    bad = {t: r for t, r in ratios.items() if not r > 0}
    if bad:
        raise ValueError(f"gradient_matched_weights: ratios must be > 0; got {bad}")
    active = {name: w for name, w in objective.weights.items() if w > 0 or name in ratios}
    others = [name for name in active if name not in ratios]
    if not others:
        raise ValueError(
            f"gradient_matched_weights: every weighted term ({sorted(active)}) is calibrated; there is no "
            "conventional gradient to match"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("gradient_matched_weights: the model has no trainable parameter")

    with autocast():
        estimate = model(noisy)
    estimate = estimate.float()
    values = {name: objective.terms[name](estimate, reference) for name in active}

    def flat_grad(loss: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.cat(
            [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads, strict=True)]
        )

    def checked_norm(grad: torch.Tensor, what: str) -> float:
        norm = float(grad.norm())
        if not math.isfinite(norm) or norm <= 0:
            raise ValueError(
                f"gradient_matched_weights: the gradient norm of {what} is {norm} on this batch; it must be "
                "finite and > 0 to be matched"
            )
        return norm

    g_conv = flat_grad(sum(active[name] * values[name] for name in others))
    conv_norm = checked_norm(g_conv, f"the conventional terms {others}")
    weights = {name: active[name] for name in others}
    combined = g_conv.clone()
    for term, ratio in ratios.items():
        g_term = flat_grad(values[term])
        weights[term] = ratio * conv_norm / checked_norm(g_term, f"term {term!r}")
        combined += weights[term] * g_term
    scale = conv_norm / checked_norm(combined, "the calibrated sum")
    return {name: w * scale for name, w in weights.items()}
