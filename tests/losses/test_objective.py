"""WeightedSum (total + breakdown), LossConfig validation and round trip, build_objective, calibrate_weight."""

from __future__ import annotations

import pytest
import torch
from loss_helpers import TinyUNet, add_noise, speechlike

from mal.config import ConfigError
from mal.losses import (
    LossConfig,
    ModelAsLoss,
    MultiResolutionSTFTLoss,
    SISDRLoss,
    WaveformL1,
    WeightedSum,
    build_objective,
    calibrate_weight,
    gradient_matched_weights,
)


class _Exploding(torch.nn.Module):
    """A term that must never run (its weight is 0)."""

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a term with weight 0 was computed")


def test_weighted_sum_total_and_unweighted_breakdown() -> None:
    clean = speechlike()
    noisy = add_noise(clean, 5.0).requires_grad_(True)
    l1, stft = WaveformL1(), MultiResolutionSTFTLoss()
    objective = WeightedSum({"l1": l1, "mrstft": stft, "off": _Exploding()}, {"l1": 2.0, "mrstft": 0.5, "off": 0.0})
    total, breakdown = objective(noisy, clean)
    expected_l1, expected_stft = l1(noisy, clean).item(), stft(noisy, clean).item()
    assert list(breakdown) == ["l1", "mrstft", "total"]
    assert breakdown["l1"] == pytest.approx(expected_l1, rel=1e-6)
    assert breakdown["mrstft"] == pytest.approx(expected_stft, rel=1e-6)
    assert total.item() == pytest.approx(2.0 * expected_l1 + 0.5 * expected_stft, rel=1e-6)
    assert breakdown["total"] == pytest.approx(total.item(), rel=1e-6)
    assert all(isinstance(v, float) for v in breakdown.values())
    total.backward()
    assert noisy.grad is not None


@pytest.mark.parametrize(
    ("terms", "weights", "message"),
    [
        ({"l1": WaveformL1()}, {"l1": 1.0, "sisdr": 1.0}, r"weights for unknown terms \['sisdr'\]"),
        ({"l1": WaveformL1(), "sisdr": SISDRLoss()}, {"l1": 1.0}, r"missing weights for \['sisdr'\]"),
        ({"l1": WaveformL1()}, {"l1": 0.0}, "every weight is 0"),
        ({"l1": WaveformL1()}, {"l1": -1.0}, "finite and ≥ 0"),
        ({"total": WaveformL1()}, {"total": 1.0}, "reserved"),
    ],
)
def test_weighted_sum_refuses_bad_weights(terms: dict, weights: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeightedSum(terms, weights)


def test_weighted_sum_checks_shapes_first() -> None:
    objective = WeightedSum({"l1": WaveformL1()}, {"l1": 1.0})
    with pytest.raises(ValueError, match=r"WeightedSum: .*\(1, 100\) vs reference \(1, 101\)"):
        objective(torch.zeros(1, 100), torch.zeros(1, 101))


def test_loss_config_defaults_and_yaml_round_trip(tmp_path) -> None:
    cfg = LossConfig()
    assert cfg.weights() == {
        "l1": 1.0,
        "mrstft": 1.0,
        "spectral": 0.0,
        "sisdr": 0.0,
        "mal": 0.0,
        "deep_feature": 0.0,
        "lossnet": 0.0,
    }
    custom = LossConfig.from_params({"mal": 1.75, "mal_layers": [0, 1, -1], "mal_variant": "frozen-fe"})
    path = custom.save(tmp_path / "loss.yaml")
    assert LossConfig.load(path) == custom
    assert LossConfig.load(path).mal_layers == [0, 1, -1]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mal": 1.0, "mal_variant": "ema"}, "mal_variant"),
        ({"mal_distance": "cosine"}, "mal_distance"),
        ({"mal_layers": "middle"}, "mal_layers"),
        ({"mal_layers": []}, "empty list"),
        ({"mal_variant": "frozen", "mal_encoder_grad": True}, "only applies to mal_variant 'dynamic'"),
        ({"lossnet": 1.0}, "needs lossnet_path"),
        ({"l1": 0.0, "mrstft": 0.0}, "every term weight is 0"),
        ({"sisdr": -1.0}, "finite and ≥ 0"),
        ({"deep_feature_backbone": "whisper"}, "deep_feature_backbone"),
        ({"mal_wieght": 1.0}, "unknown parameter"),
        ({"mal": "lots"}, "expected a number"),
        ({"mal_init": "imagenet"}, "mal_init"),
        ({"mal_variant": "dynamic", "mal_init": "random"}, "replaces the frozen snapshot"),
    ],
)
def test_loss_config_rejects_bad_recipes(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LossConfig.from_params(params)


def test_build_objective_builds_only_weighted_terms(tiny_model: TinyUNet) -> None:
    objective = build_objective(LossConfig())
    assert list(objective.terms) == ["l1", "mrstft"]
    cfg = LossConfig.from_params(
        {"l1": 1.0, "mrstft": 0.0, "sisdr": 0.5, "mal": 2.0, "mal_variant": "frozen-fe", "mal_layers": "all"}
    )
    objective = build_objective(cfg, tiny_model)
    assert list(objective.terms) == ["l1", "sisdr", "mal"]
    assert objective.weights == {"l1": 1.0, "sisdr": 0.5, "mal": 2.0}
    mal = objective.terms["mal"]
    assert isinstance(mal, ModelAsLoss) and mal.variant == "frozen-fe" and mal.normalise
    assert not any(p.requires_grad for p in tiny_model.encoder.parameters())
    clean = speechlike()
    _, breakdown = objective(tiny_model(add_noise(clean, 5.0)), clean)
    assert set(breakdown) == {"l1", "sisdr", "mal", "total"}
    described = objective.describe()
    assert described["terms"]["mal"] == "MAL frozen-fe (all, l1, normalised)"


def test_build_objective_needs_the_model_for_mal() -> None:
    with pytest.raises(ValueError, match="needs the model"):
        build_objective(LossConfig(mal=1.0))


def test_calibrate_weight_makes_the_term_equal_to_the_rest(tiny_model: TinyUNet) -> None:
    cfg = LossConfig.from_params({"mal": 1.0, "mal_layers": "all"})
    objective = build_objective(cfg, tiny_model)
    clean = speechlike()
    with torch.no_grad():
        estimate = tiny_model(add_noise(clean, 5.0))
    weight = calibrate_weight(objective, "mal", estimate, clean)
    objective.set_weight("mal", weight)
    _, breakdown = objective(estimate, clean)
    conventional = breakdown["l1"] + breakdown["mrstft"]
    assert weight * breakdown["mal"] == pytest.approx(conventional, rel=1e-5)
    assert calibrate_weight(objective, "mal", estimate, clean, ratio=0.5) == pytest.approx(weight / 2, rel=1e-6)
    with pytest.raises(ValueError, match="is 0.0 on this batch"):
        calibrate_weight(objective, "mal", clean, clean)
    with pytest.raises(KeyError, match="no term named"):
        calibrate_weight(objective, "lossnet", estimate, clean)


def _grad_norm(objective: WeightedSum, model: torch.nn.Module, noisy: torch.Tensor, clean: torch.Tensor) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    total, _ = objective(model(noisy), clean)
    return float(torch.cat([g.reshape(-1) for g in torch.autograd.grad(total, params)]).norm())


@pytest.mark.parametrize("variant", ["frozen", "frozen-fe"])
def test_gradient_matched_mal_branch_steps_like_the_baseline(tiny_model: TinyUNet, variant: str) -> None:
    clean = speechlike(batch=3)
    noisy = add_noise(clean, 5.0)
    baseline = build_objective(LossConfig(), tiny_model)
    branch = build_objective(LossConfig(mal=1.0, mal_variant=variant, mal_layers="all"), tiny_model)
    # Value calibration (the old rule) leaves the branch's gradient at another scale than the baseline's.
    base_norm = _grad_norm(baseline, tiny_model, noisy, clean)
    with torch.no_grad():
        branch.set_weight("mal", calibrate_weight(branch, "mal", tiny_model(noisy), clean))
    value_norm = _grad_norm(branch, tiny_model, noisy, clean)
    assert abs(value_norm / base_norm - 1) > 0.1

    weights = gradient_matched_weights(branch, tiny_model, noisy, clean, {"mal": 1.0})
    for term, weight in weights.items():
        branch.set_weight(term, weight)
    # The acceptance test of issue 13: on a fixed batch the MAL branch's total gradient is the baseline's length
    # (over the parameters that train: for frozen-fe the decoder, whose baseline gradient is the same function).
    assert _grad_norm(branch, tiny_model, noisy, clean) == pytest.approx(base_norm, rel=0.1)
    assert _grad_norm(branch, tiny_model, noisy, clean) == pytest.approx(base_norm, rel=1e-4)  # exact by design
    # Equal shares: the MAL part of the gradient is as long as the conventional part (ratio 1).
    mal_part = WeightedSum({"mal": branch.terms["mal"]}, {"mal": weights["mal"]})
    conv_part = WeightedSum(
        {k: branch.terms[k] for k in ("l1", "mrstft")}, {"l1": weights["l1"], "mrstft": weights["mrstft"]}
    )
    ratio = _grad_norm(mal_part, tiny_model, noisy, clean) / _grad_norm(conv_part, tiny_model, noisy, clean)
    assert ratio == pytest.approx(1.0, rel=1e-4)
    assert weights["l1"] == pytest.approx(weights["mrstft"]) and 0.5 <= weights["l1"] < 1.0  # scaled, not convex-summed


def test_gradient_matched_weights_refuses_what_it_cannot_match(tiny_model: TinyUNet) -> None:
    clean = speechlike()
    objective = build_objective(LossConfig(l1=0.0, mrstft=0.0, mal=1.0), tiny_model)
    with pytest.raises(ValueError, match="no conventional gradient"):
        gradient_matched_weights(objective, tiny_model, clean, clean, {"mal": 1.0})
    objective = build_objective(LossConfig(mal=1.0), tiny_model)
    with pytest.raises(KeyError, match="no term named"):
        gradient_matched_weights(objective, tiny_model, clean, clean, {"lossnet": 1.0})
    with pytest.raises(ValueError, match="ratios must be > 0"):
        gradient_matched_weights(objective, tiny_model, clean, clean, {"mal": 0.0})
