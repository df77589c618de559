"""A weighted sum of named loss terms that reports each term under its name (for logging)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mal.losses._checks import check_pair


def term_label(term: nn.Module) -> str:
    """A human-readable description of a loss term: its ``label`` if it has one, else class and settings."""
    label = getattr(term, "label", None)
    if isinstance(label, str):
        return label
    extra = term.extra_repr()
    return f"{type(term).__name__}({extra})" if extra else type(term).__name__


class WeightedSum(nn.Module):
    """``total = Σ_name weight[name] · term[name](estimate, reference)``, with a per-term breakdown.

    Args:
        terms: name → loss module (each called as ``loss(estimate, reference)`` → scalar tensor). The name
            ``"total"`` is reserved for the breakdown.
        weights: name → weight ≥ 0, for exactly the names in ``terms``. A term whose weight is 0 is not
            computed at all (so a switched-off deep feature network costs nothing).

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)``, identical.

    Returns:
        ``(total, breakdown)``: ``total`` is a scalar tensor with gradient; ``breakdown`` maps each computed
        term's name to its detached, *unweighted* value as a float, plus ``"total"`` (the weighted sum), so
        logs and validation tables use the same names as the recipe.
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        missing = sorted(set(terms) - set(weights))
        extra = sorted(set(weights) - set(terms))
        if missing or extra:
            raise ValueError(
                f"WeightedSum: weights must name exactly the terms {sorted(terms)}; "
                f"missing weights for {missing}, weights for unknown terms {extra}"
            )
        if "total" in terms:
            raise ValueError("WeightedSum: 'total' is reserved for the weighted sum; rename that term")
        if not terms:
            raise ValueError("WeightedSum: no terms given")
        self.terms = nn.ModuleDict(dict(terms))
        self.weights: dict[str, float] = {}
        for name in terms:
            self.set_weight(name, weights[name])
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError(f"WeightedSum: every weight is 0 ({self.weights}); nothing would be trained")

    def set_weight(self, name: str, weight: float) -> None:
        """Change one term's weight (e.g. after :func:`mal.losses.calibrate_weight`)."""
        if name not in self.terms:
            raise KeyError(f"WeightedSum: no term named {name!r}; terms are {list(self.terms)}")
        weight = float(weight)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"WeightedSum: weight of {name!r} must be finite and ≥ 0; got {weight}")
        self.weights[name] = weight

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        check_pair(estimate, reference, type(self).__name__)
        values: dict[str, torch.Tensor] = {}
        total: torch.Tensor | None = None
        for name, term in self.terms.items():
            weight = self.weights[name]
            if weight == 0:
                continue
            value = term(estimate, reference)
            values[name] = value
            total = weight * value if total is None else total + weight * value
        assert total is not None  # the constructor guarantees a positive weight
        # One device→host copy for the whole breakdown.
        floats = torch.stack([v.detach().float() for v in (*values.values(), total)]).tolist()
        breakdown = dict(zip([*values, "total"], floats, strict=True))
        return total, breakdown

    def describe(self) -> dict[str, Any]:
        """Weights and a label per term, e.g. to record next to results (labels say "random-init" where true)."""
        return {
            "weights": dict(self.weights),
            "terms": {name: term_label(term) for name, term in self.terms.items()},
        }

    def extra_repr(self) -> str:
        return ", ".join(f"{name}×{w:g}" for name, w in self.weights.items())
