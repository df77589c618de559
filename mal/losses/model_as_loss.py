"""Model as Loss (MAL): compare the enhanced and the clean signal in the feature space of the model's encoder.

    L_mal = Σ_l w_l · d(E*(ŷ)_l, sg[E*(y)_l])

ŷ is the estimate, y the clean reference, ``sg`` stop-gradient, ``d`` an L1 or L2 distance and ``l`` runs over
the chosen encoder outputs (``Encoded.features()`` = ``[*layers, bottleneck]``). E* is the *MAL encoder*; the
three variants of docs/method.md differ only in what E* is and which parameters it lets train:

========== ========================================== ===================================================
variant    E*                                         parameters the MAL term trains
========== ========================================== ===================================================
frozen     a frozen deep copy of the model, taken     the live encoder and decoder (gradients flow
           when the loss is built (end of warm-up),   through E* into ŷ); never E* itself
           or with ``init="random"`` a freshly
           initialised one (seeded)
frozen-fe  the model's own encoder, frozen in both    the decoder only: the encoder is frozen for the
           roles (``model.encoder.requires_grad_``    whole stage, its ``grad`` stays ``None``, and torch
           is switched off at construction)           optimisers skip such parameters (no step, no weight
                                                      decay), so only D trains
dynamic    the live encoder                           through ŷ: encoder and decoder as usual; through
                                                      E*(ŷ): the encoder only if ``encoder_grad=True``
========== ========================================== ===================================================

The target branch E*(y) always runs under ``torch.no_grad`` (no graph is built, nothing reaches it).
In ``dynamic`` mode the live encoder runs in whatever mode the trainer set, so in training mode its batch-norm
layers (if any) also update their running statistics from the ŷ and y passes; the registered models have none.

A frozen E* behaves as a fixed function: its normalisation and dropout layers stay in eval mode even when the
trainer calls ``model.train()`` or ``loss.train()`` (a forward pre-hook pins each submodule's mode). The one
exception is recurrent layers without dropout, which are put in training mode: they compute exactly the same
thing, and cuDNN refuses to backpropagate through an RNN in eval mode, which the estimate branch must do.

After every call ``loss.last_stats`` holds detached floats for logging: ``mal_feat_var`` (mean over the chosen
layers of the per-channel variance of E*(y) across batch and time; a collapsing encoder drives it to 0),
``mal_feat_abs`` (mean |E*(y)|), and per layer the raw distance ``mal_dist_<l>`` and the normalised one
``mal_rel_<l>`` (raw / mean|E*(y)_l|, the invariance collapse the feasibility runs saw in the dynamic variant:
the raw term falls while feature norms stay put).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

from mal.losses._checks import check_pair
from mal.losses._frozen import freeze, needs_cudnn_off
from mal.models.base import Encoded, SEModel, as_batch, check_encoded, check_model_contract

Variant = Literal["frozen", "frozen-fe", "dynamic"]
VARIANTS: tuple[str, ...] = ("frozen", "frozen-fe", "dynamic")
DISTANCES: tuple[str, ...] = ("l1", "l2")
LAYER_MODES: tuple[str, ...] = ("bottleneck", "all", "all-but-first")
# Where a frozen E* comes from: the trained model (the method) or a fresh, seeded initialisation of the same
# architecture (the control that asks whether *learned* features matter; Saddler et al. 2020 found random
# networks did not help as losses).
INITS: tuple[str, ...] = ("trained", "random")


def _fresh_copy(model: SEModel, seed: int) -> SEModel:
    """A newly initialised model of ``model``'s class and hyperparameters, from ``seed``, on its device."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = type(model)(**model.hparams)
    param = next(model.parameters(), None)
    return fresh.to(param.device) if param is not None else fresh


class _EncodeOnly(nn.Module):
    """Adapter so :func:`torch.func.functional_call` can run ``model.encode`` with substituted parameters."""

    def __init__(self, model: SEModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, wav: torch.Tensor) -> Encoded:
        return self.model.encode(wav)


class ModelAsLoss(nn.Module):
    """MAL feature-matching loss in the encoder space of an :class:`~mal.models.base.SEModel`.

    Works for any model that keeps the ``encode()/decode()`` contract of :mod:`mal.models.base`, including one
    ``mal`` did not define (docs/own_model.md); a model that does not is refused with a
    :class:`~mal.models.base.ContractError` that says what to change.

    Args:
        model: the model being trained (the live one; ``frozen`` copies it, the others use it in place).
        variant: ``"frozen"``, ``"frozen-fe"`` or ``"dynamic"`` (see the module docstring).
        layers: ``"bottleneck"`` (default, as in the paper), ``"all"`` (every entry of ``Encoded.features()``:
            each encoder block and the bottleneck), ``"all-but-first"`` (all without the first block, which is
            close to a compressed-magnitude loss that the baseline lacks) or a list of indices into
            ``Encoded.features()`` (negative indices count from the end, so ``-1`` is the bottleneck).
        distance: ``"l1"`` (mean absolute difference, default) or ``"l2"`` (mean squared difference).
        encoder_grad: ``dynamic`` only: whether the MAL term's gradient through E*(ŷ) reaches the live
            encoder's parameters. ``False`` (default) guards against the invariance collapse in docs/method.md:
            the encoder cannot learn to map ŷ and y together; the decoder still learns through ŷ.
        layer_weights: ``w_l`` per selected layer, in the order of ``layers``; default ``1/L`` each (a mean).
        normalise: divide each layer's distance by the detached mean ``|E*(y)_l|`` (L1) or mean ``E*(y)_l²``
            (L2), so layers of different scale count equally. ``None`` (default) means ``True`` for ``"all"``
            and lists and ``False`` for ``"bottleneck"``; the feasibility runs found all layers, normalised and
            frozen the only setting that helped.
        eps: floor on the normalisation scale.
        init: ``frozen`` only: ``"trained"`` (default) snapshots the model; ``"random"`` builds a new model of the
            same class and hyperparameters from ``init_seed`` instead (the global RNG is left as it was, so the
            run's data order and crops do not change).
        init_seed: the seed of the random E*.

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)``, identical, at the model's sample rate.

    Returns:
        Scalar tensor (float32).

    State:
        ``frozen`` registers its snapshot as the submodule ``snapshot`` (parameters with
        ``requires_grad=False``), so it moves with ``.to(device)`` and is saved in ``loss.state_dict()``; an
        optimiser built from the *model's* parameters never sees it. The live model is deliberately *not* a
        submodule of the loss (it is not duplicated in the loss's state dict, and ``loss.to()`` does not move
        it; the trainer moves the model).
    """

    def __init__(
        self,
        model: SEModel,
        variant: Variant = "frozen",
        layers: str | Sequence[int] = "bottleneck",
        distance: str = "l1",
        encoder_grad: bool = False,
        layer_weights: Sequence[float] | None = None,
        normalise: bool | None = None,
        eps: float = 1e-8,
        init: str = "trained",
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        check_model_contract(model)
        if variant not in VARIANTS:
            raise ValueError(f"ModelAsLoss: unknown variant {variant!r}; choose one of {list(VARIANTS)}")
        if distance not in DISTANCES:
            raise ValueError(f"ModelAsLoss: unknown distance {distance!r}; choose one of {list(DISTANCES)}")
        if init not in INITS:
            raise ValueError(f"ModelAsLoss: unknown init {init!r}; choose one of {list(INITS)}")
        if init == "random" and variant != "frozen":
            raise ValueError(
                f"ModelAsLoss: init='random' replaces the frozen snapshot; variant {variant!r} judges with the "
                "live model's own encoder"
            )
        if encoder_grad and variant != "dynamic":
            raise ValueError(
                f"ModelAsLoss: encoder_grad=True only applies to variant 'dynamic' (got {variant!r}: its MAL "
                "encoder is frozen)"
            )
        if isinstance(layers, str):
            if layers not in LAYER_MODES:
                raise ValueError(
                    f"ModelAsLoss: layers must be one of {list(LAYER_MODES)} or a list of indices into "
                    f"Encoded.features(); got {layers!r}"
                )
            self.layers: str | tuple[int, ...] = layers
        else:
            idx = tuple(layers)
            if not idx or not all(isinstance(i, int) and not isinstance(i, bool) for i in idx):
                raise ValueError(f"ModelAsLoss: layers must be a non-empty list of integers; got {layers!r}")
            self.layers = idx
        if layer_weights is not None:
            weights = [float(w) for w in layer_weights]
            if any(w < 0 for w in weights) or sum(weights) == 0:
                raise ValueError(f"ModelAsLoss: layer_weights must be ≥ 0 and not all 0; got {weights}")
            if isinstance(self.layers, tuple) and len(weights) != len(self.layers):
                raise ValueError(
                    f"ModelAsLoss: {len(weights)} layer_weights for {len(self.layers)} layers {list(self.layers)}"
                )
            if self.layers == "bottleneck" and len(weights) != 1:
                raise ValueError(f"ModelAsLoss: layers='bottleneck' takes one layer weight; got {weights}")
            self.layer_weights: tuple[float, ...] | None = tuple(weights)
        else:
            self.layer_weights = None
        self.variant = variant
        self.distance = distance
        self.encoder_grad = encoder_grad
        self.normalise = (self.layers != "bottleneck") if normalise is None else bool(normalise)
        self.eps = eps
        self.init = init
        self.last_stats: dict[str, float] = {}
        # The live model is held outside the module tree on purpose (see "State" above).
        object.__setattr__(self, "_model", model)
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []

        if variant == "frozen":
            snapshot = copy.deepcopy(model) if init == "trained" else _fresh_copy(model, init_seed)
            self._hooks = freeze(snapshot)
            self.snapshot = snapshot
            self._cudnn_off = needs_cudnn_off(snapshot)
        elif variant == "frozen-fe":
            self._hooks = freeze(model.encoder)
            self._cudnn_off = needs_cudnn_off(model.encoder)
        else:
            self._cudnn_off = False
            object.__setattr__(self, "_encode_only", _EncodeOnly(model))

    @property
    def model(self) -> SEModel:
        """The live model this loss was built for."""
        return self._model

    @property
    def label(self) -> str:
        layers = self.layers if isinstance(self.layers, str) else "[" + ",".join(map(str, self.layers)) + "]"
        extra = f", encoder_grad={self.encoder_grad}" if self.variant == "dynamic" else ""
        norm = ", normalised" if self.normalise else ""
        init = " random-init" if self.init == "random" else ""
        return f"MAL {self.variant}{init} ({layers}, {self.distance}{norm}{extra})"

    def extra_repr(self) -> str:
        return self.label

    def train(self, mode: bool = True) -> ModelAsLoss:
        super().train(mode)
        if self.variant == "frozen":
            self.snapshot.eval()  # the pre-hooks pin the mode at forward time anyway; keep the flag honest
        return self

    def release(self) -> None:
        """``frozen-fe`` only: give the model its trainable encoder back (undo what construction did).

        Use it when the same model object goes on training with another objective after this stage.
        """
        if self.variant != "frozen-fe":
            raise RuntimeError(f"release() undoes the encoder freeze of 'frozen-fe'; this loss is {self.variant!r}")
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self.model.encoder.requires_grad_(True)

    # ------------------------------------------------------------------ feature extraction
    def _mal_encoder(self) -> SEModel:
        return self.snapshot if self.variant == "frozen" else self.model

    def _encode_estimate(self, wav: torch.Tensor) -> Encoded:
        if self.variant == "dynamic" and not self.encoder_grad:
            # Run the live encoder with detached copies of its parameters: the gradient reaches ŷ (and so the
            # decoder, and the encoder through the main forward) but not the encoder through E*(ŷ).
            params = {f"model.{name}": p.detach() for name, p in self.model.named_parameters()}
            return functional_call(self._encode_only, params, (wav,), strict=False)
        ctx = torch.backends.cudnn.flags(enabled=False) if self._cudnn_off else contextlib.nullcontext()
        with ctx:
            return self._mal_encoder().encode(wav)

    def _select(self, feats: list[torch.Tensor]) -> list[int]:
        n = len(feats)
        if self.layers == "bottleneck":
            return [n - 1]
        if self.layers == "all":
            return list(range(n))
        if self.layers == "all-but-first":
            if n < 2:
                raise ValueError("ModelAsLoss: layers='all-but-first' needs an encoder with at least two features")
            return list(range(1, n))
        chosen = []
        for i in self.layers:
            if not -n <= i < n:
                raise ValueError(
                    f"ModelAsLoss: layer index {i} out of range: the model's Encoded.features() has {n} entries "
                    f"(indices {-n}..{n - 1}; -1 is the bottleneck)"
                )
            chosen.append(i % n)
        return chosen

    def _weights(self, count: int) -> list[float]:
        if self.layer_weights is None:
            return [1.0 / count] * count
        if len(self.layer_weights) != count:
            raise ValueError(
                f"ModelAsLoss: {len(self.layer_weights)} layer_weights for {count} selected layers "
                f"(layers={self.layers!r})"
            )
        return list(self.layer_weights)

    # ------------------------------------------------------------------ loss
    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_pair(estimate, reference, type(self).__name__)
        est = as_batch(estimate)
        ref = as_batch(reference)
        with torch.no_grad():
            target = self._mal_encoder().encode(ref)
        check_encoded(target, type(self.model).__name__, need_layers=self.layers != "bottleneck")
        target_feats = target.features()
        chosen = self._select(target_feats)
        est_feats = self._encode_estimate(est).features()
        if len(est_feats) != len(target_feats):
            raise RuntimeError(
                f"ModelAsLoss: the encoder returned {len(est_feats)} feature maps for the estimate but "
                f"{len(target_feats)} for the reference"
            )
        weights = self._weights(len(chosen))

        total = est.new_zeros((), dtype=torch.float32)
        raw, rel, var, mean_abs = [], [], [], []
        for w, idx in zip(weights, chosen, strict=True):
            a = est_feats[idx].float()
            b = target_feats[idx].float()
            if a.shape != b.shape:
                raise RuntimeError(
                    f"ModelAsLoss: feature {idx} has shape {tuple(a.shape)} for the estimate but {tuple(b.shape)} "
                    "for the reference"
                )
            diff = a - b
            dist = diff.abs().mean() if self.distance == "l1" else diff.square().mean()
            abs_b = b.abs().mean()
            scale = abs_b if self.distance == "l1" else b.square().mean()
            scale = scale.clamp_min(self.eps)
            term = dist / scale if self.normalise else dist
            total = total + w * term
            raw.append(dist.detach())
            l1 = dist if self.distance == "l1" else diff.abs().mean()
            rel.append(l1.detach() / abs_b.clamp_min(self.eps))
            var.append(b.var(dim=[0, *range(2, b.dim())], unbiased=False).mean())  # per channel, then mean
            mean_abs.append(abs_b)
        self._record_stats(chosen, len(target_feats), raw, rel, var, mean_abs)
        return total

    def _record_stats(
        self,
        chosen: list[int],
        n_feats: int,
        raw: list[torch.Tensor],
        rel: list[torch.Tensor],
        var: list[torch.Tensor],
        mean_abs: list[torch.Tensor],
    ) -> None:
        # One device→host copy for all statistics (one sync per step on a GPU, not one per number).
        values = torch.stack([*raw, *rel, torch.stack(var).mean(), torch.stack(mean_abs).mean()]).tolist()
        names = ["bottleneck" if i == n_feats - 1 else f"l{i}" for i in chosen]
        k = len(chosen)
        stats = {f"mal_dist_{n}": v for n, v in zip(names, values[:k], strict=True)}
        stats.update({f"mal_rel_{n}": v for n, v in zip(names, values[k : 2 * k], strict=True)})
        stats["mal_feat_var"] = values[2 * k]
        stats["mal_feat_abs"] = values[2 * k + 1]
        self.last_stats = stats
