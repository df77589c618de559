"""ModelAsLoss on a tiny contract-only model: zero at identity, monotone in SNR, gradients per variant."""

from __future__ import annotations

import itertools

import pytest
import torch
from loss_helpers import TinyUNet, add_noise, speechlike

from mal.losses import ModelAsLoss

VARIANTS = ["frozen", "frozen-fe", "dynamic"]
LAYERS = ["bottleneck", "all", [0, -1]]


@pytest.mark.parametrize(("variant", "layers", "distance"), itertools.product(VARIANTS, LAYERS, ["l1", "l2"]))
def test_zero_for_identical_inputs(tiny_model: TinyUNet, variant: str, layers, distance: str) -> None:
    loss = ModelAsLoss(tiny_model, variant=variant, layers=layers, distance=distance)
    clean = speechlike()
    value = loss(clean, clean.clone())
    assert value.shape == ()
    # the dynamic variant runs E*(ŷ) with detached parameter copies: same maths, different kernel → ~1e-8
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    assert loss.last_stats["mal_feat_var"] > 0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layers", ["bottleneck", "all"])
def test_grows_monotonically_as_snr_drops(variant: str, layers: str) -> None:
    snrs = [30.0, 20.0, 10.0, 0.0, -10.0]
    values = torch.zeros(len(snrs))
    for seed in range(3):  # average over models and noises so the ordering does not hinge on one draw
        torch.manual_seed(seed)
        loss = ModelAsLoss(TinyUNet(), variant=variant, layers=layers)
        clean = speechlike(seed=seed)
        with torch.no_grad():
            values += torch.tensor([loss(add_noise(clean, s, seed=seed + 10), clean).item() for s in snrs])
    assert bool((values.diff() > 0).all()), values


def _grads_present(params) -> list[bool]:
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params]


def test_frozen_gradients_reach_model_not_snapshot(tiny_model: TinyUNet) -> None:
    tiny_model.train()
    loss = ModelAsLoss(tiny_model, variant="frozen", layers="all")
    clean = speechlike()
    loss(tiny_model(add_noise(clean, 5.0)), clean).backward()
    assert all(p.grad is None for p in loss.snapshot.parameters())
    assert not any(p.requires_grad for p in loss.parameters())
    assert all(_grads_present(tiny_model.encoder.parameters()))
    assert all(_grads_present(tiny_model.decoder.parameters()))


def test_frozen_snapshot_unchanged_by_optimiser_step(tiny_model: TinyUNet) -> None:
    tiny_model.train()
    loss = ModelAsLoss(tiny_model, variant="frozen", layers="all")
    before = {k: v.clone() for k, v in loss.snapshot.state_dict().items()}
    model_before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    opt = torch.optim.Adam([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-2)
    # the optimiser never sees the snapshot: its tensors are copies, not the model's parameters
    snapshot_ids = {id(p) for p in loss.snapshot.parameters()}
    assert not snapshot_ids & {id(p) for g in opt.param_groups for p in g["params"]}
    clean = speechlike()
    for _ in range(2):
        opt.zero_grad()
        loss(tiny_model(add_noise(clean, 5.0)), clean).backward()
        opt.step()
    after = loss.snapshot.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical, running stats included
    assert any(not torch.equal(model_before[k], v) for k, v in tiny_model.state_dict().items())


def test_frozen_snapshot_keeps_eval_mode_and_round_trips_state_dict(tiny_model: TinyUNet) -> None:
    loss = ModelAsLoss(tiny_model, variant="frozen", layers="all")
    loss.train()
    clean = speechlike()
    loss(add_noise(clean, 0.0), clean)
    bn = loss.snapshot.encoder["block1"][1]
    assert not bn.training and not loss.snapshot.training
    state = loss.state_dict()
    assert state and all(k.startswith("snapshot.") for k in state)
    fresh = ModelAsLoss(TinyUNet(), variant="frozen", layers="all")
    fresh.load_state_dict(state)
    noisy = add_noise(clean, 0.0)
    assert fresh(noisy, clean).item() == pytest.approx(loss(noisy, clean).item(), rel=1e-6)


def test_frozen_fe_trains_decoder_only(tiny_model: TinyUNet) -> None:
    tiny_model.train()
    loss = ModelAsLoss(tiny_model, variant="frozen-fe", layers="all")
    assert not any(p.requires_grad for p in tiny_model.encoder.parameters())
    assert all(p.requires_grad for p in tiny_model.decoder.parameters())
    clean = speechlike()
    running_mean = tiny_model.encoder["block1"][1].running_mean.clone()
    loss(tiny_model(add_noise(clean, 5.0)), clean).backward()
    assert all(p.grad is None for p in tiny_model.encoder.parameters())
    assert all(_grads_present(tiny_model.decoder.parameters()))
    # the frozen encoder's batch norm stays in eval mode although the model is in training mode
    assert torch.equal(running_mean, tiny_model.encoder["block1"][1].running_mean)
    loss.release()
    assert all(p.requires_grad for p in tiny_model.encoder.parameters())


@pytest.mark.parametrize("encoder_grad", [False, True])
def test_dynamic_encoder_grad_flag(tiny_model: TinyUNet, encoder_grad: bool) -> None:
    loss = ModelAsLoss(tiny_model, variant="dynamic", layers="all", encoder_grad=encoder_grad)
    clean = speechlike()
    # a leaf estimate isolates the MAL path: any encoder gradient must come through E*(ŷ)
    estimate = add_noise(clean, 5.0).requires_grad_(True)
    loss(estimate, clean).backward()
    assert estimate.grad is not None and estimate.grad.abs().sum() > 0
    assert all(p.requires_grad for p in tiny_model.encoder.parameters())  # nothing left switched off
    if encoder_grad:
        assert all(_grads_present(tiny_model.encoder.parameters()))
    else:
        assert all(p.grad is None for p in tiny_model.encoder.parameters())
    assert all(p.grad is None for p in tiny_model.decoder.parameters())


def test_dynamic_without_encoder_grad_leaves_main_path_gradients(tiny_model: TinyUNet) -> None:
    """Through ``ŷ = model(x)`` the encoder still learns from the MAL term, exactly as via the decoder."""
    loss = ModelAsLoss(tiny_model, variant="dynamic", layers="all", encoder_grad=False)
    clean = speechlike()
    noisy = add_noise(clean, 5.0)
    estimate = tiny_model(noisy)
    (g_est,) = torch.autograd.grad(loss(estimate, clean), estimate, retain_graph=True)
    expected = torch.autograd.grad(estimate, list(tiny_model.encoder.parameters()), g_est)
    tiny_model.zero_grad()
    loss(tiny_model(noisy), clean).backward()
    for p, g in zip(tiny_model.encoder.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_target_branch_gets_no_gradient(tiny_model: TinyUNet) -> None:
    loss = ModelAsLoss(tiny_model, variant="dynamic", layers="all", encoder_grad=True)
    clean = speechlike().requires_grad_(True)
    estimate = add_noise(clean.detach(), 5.0).requires_grad_(True)
    loss(estimate, clean).backward()
    assert clean.grad is None and estimate.grad is not None


def test_layer_weights_and_normalisation(tiny_model: TinyUNet) -> None:
    clean = speechlike()
    noisy = add_noise(clean, 0.0)
    raw = ModelAsLoss(tiny_model, layers=[0, 1, -1], normalise=False, layer_weights=[1.0, 0.0, 0.0])
    value = raw(noisy, clean).item()
    assert value == pytest.approx(raw.last_stats["mal_dist_l0"], rel=1e-5)
    norm = ModelAsLoss(tiny_model, layers=[0, 1, -1])  # lists default to per-layer normalisation
    value = norm(noisy, clean).item()
    expected = sum(v for k, v in norm.last_stats.items() if k.startswith("mal_rel_")) / 3
    assert value == pytest.approx(expected, rel=1e-5)
    assert ModelAsLoss(tiny_model).normalise is False and ModelAsLoss(tiny_model, layers="all").normalise is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "ema"}, "unknown variant"),
        ({"distance": "cos"}, "unknown distance"),
        ({"layers": "middle"}, "layers must be one of"),
        ({"layers": []}, "non-empty list"),
        ({"variant": "frozen", "encoder_grad": True}, "only applies to variant 'dynamic'"),
        ({"layers": [0, 1], "layer_weights": [1.0]}, "1 layer_weights for 2 layers"),
        ({"init": "pretrained"}, "unknown init"),
        ({"variant": "frozen-fe", "init": "random"}, "replaces the frozen snapshot"),
    ],
)
def test_bad_arguments_are_refused(tiny_model: TinyUNet, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelAsLoss(tiny_model, **kwargs)


def test_out_of_range_layer_index_names_the_count(tiny_model: TinyUNet) -> None:
    loss = ModelAsLoss(tiny_model, layers=[5])
    clean = speechlike()
    with pytest.raises(ValueError, match="has 3 entries"):
        loss(clean, clean)


@pytest.mark.parametrize("variant", VARIANTS)
def test_mismatched_shapes_raise(tiny_model: TinyUNet, variant: str) -> None:
    loss = ModelAsLoss(tiny_model, variant=variant)
    clean = speechlike()
    with pytest.raises(ValueError, match=r"estimate \(2, 1, 7999\) vs reference \(2, 1, 8000\)"):
        loss(clean[..., :-1], clean)
    with pytest.raises(ValueError, match="shapes differ"):
        loss(clean[:, 0], clean)


def test_frozen_fe_encoder_stays_fixed_under_an_optimiser_over_all_parameters(tiny_model: TinyUNet) -> None:
    """The trainer keeps the warm-up optimiser (all parameters, with state); the encoder must still not move."""
    clean = speechlike()
    noisy = add_noise(clean, 5.0)
    opt = torch.optim.AdamW(tiny_model.parameters(), lr=1e-2, weight_decay=0.1)
    (tiny_model(noisy) - clean).abs().mean().backward()  # a warm-up step gives every parameter Adam state
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss = ModelAsLoss(tiny_model, variant="frozen-fe", layers="all")
    encoder_before = {k: v.clone() for k, v in tiny_model.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in tiny_model.decoder.state_dict().items()}
    loss(tiny_model(noisy), clean).backward()
    opt.step()
    assert all(torch.equal(encoder_before[k], v) for k, v in tiny_model.encoder.state_dict().items())
    assert any(not torch.equal(decoder_before[k], v) for k, v in tiny_model.decoder.state_dict().items())


def test_random_init_judges_with_a_seeded_fresh_encoder(tiny_model: TinyUNet) -> None:
    """The "do learned features matter?" control: same architecture, new weights, nothing else changes."""
    clean = speechlike()
    noisy = add_noise(clean, 5.0)
    trained = ModelAsLoss(tiny_model, layers="all")
    rng_before = torch.get_rng_state()
    random_a = ModelAsLoss(tiny_model, layers="all", init="random", init_seed=3)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the run's data order and crops are untouched
    random_b = ModelAsLoss(tiny_model, layers="all", init="random", init_seed=3)
    random_c = ModelAsLoss(tiny_model, layers="all", init="random", init_seed=4)
    live, snap_a = tiny_model.state_dict(), random_a.snapshot.state_dict()
    weights = [k for k in live if k.endswith("weight") and live[k].std() > 0]  # not batch norm's constant init
    assert all(not torch.equal(live[k], snap_a[k]) for k in weights)
    assert all(torch.equal(snap_a[k], random_b.snapshot.state_dict()[k]) for k in snap_a)  # seeded
    assert any(not torch.equal(snap_a[k], random_c.snapshot.state_dict()[k]) for k in weights)
    with torch.no_grad():
        values = [loss(noisy, clean).item() for loss in (trained, random_a, random_b, random_c)]
    assert values[1] == values[2] and values[0] != values[1] and values[1] != values[3]
    assert random_a.label == "MAL frozen random-init (all, l1, normalised)"
    # Gradients reach the live model through the random E*, never E* itself.
    random_a(tiny_model(noisy), clean).backward()
    assert all(p.grad is None for p in random_a.snapshot.parameters())
    assert all(_grads_present(tiny_model.decoder.parameters()))


def test_all_but_first_drops_layer_zero(tiny_model: TinyUNet) -> None:
    clean = speechlike()
    noisy = add_noise(clean, 5.0)
    loss = ModelAsLoss(tiny_model, layers="all-but-first")
    same = ModelAsLoss(tiny_model, layers=[1, -1])
    with torch.no_grad():
        assert loss(noisy, clean).item() == pytest.approx(same(noisy, clean).item(), rel=1e-6)
    assert loss.normalise is True
    assert set(loss.last_stats) >= {"mal_dist_l1", "mal_dist_bottleneck"} and "mal_dist_l0" not in loss.last_stats
