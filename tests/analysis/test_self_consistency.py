from __future__ import annotations

import numpy as np
import pytest
import torch
from analysis_helpers import GainModel, IdentityModel, NoiseAddingModel, mixtures, snr_scorer

from mal.analysis import iterate_enhancement, run_self_consistency

K = 4


def test_identity_model_keeps_every_k_curve_flat() -> None:
    sc = run_self_consistency(
        {"identity": IdentityModel()},
        mixtures([0.0, 10.0, 20.0], same_clean=False),
        k_max=K,
        metrics=["snr", "si_sdr"],
        scorer=snr_scorer,
        progress=False,
    )
    curves = sc.curves
    assert set(curves["metric"]) == {"snr", "si_sdr", "hnr_db", "spectral_flatness"}
    assert sorted(set(curves["k"])) == list(range(K + 1))
    spread = curves.groupby(["file_id", "metric"])["value"].agg(lambda v: v.max() - v.min())
    assert (spread == 0).all()  # exactly flat, k = 0 (noisy) included
    decay = sc.decay(n_boot=100)
    assert (decay["change"] == 0).all() and (decay["n"] == 3).all()
    summary = sc.summary(n_boot=100)
    assert len(summary) == 4 * (K + 1) and (summary["n"] == 3).all()


def test_decaying_models_show_decay_and_scale_invariance_holds() -> None:
    items = mixtures([10.0, 20.0], same_clean=False)
    sc = run_self_consistency(
        {"half": GainModel(0.5), "noise": NoiseAddingModel()},
        items,
        k_max=K,
        metrics=["snr", "si_sdr"],
        scorer=snr_scorer,
        keep_examples=1,
        progress=False,
    )
    decay = sc.decay(n_boot=100).set_index(["system", "metric"])
    assert decay.loc[("half", "si_sdr"), "change"] == pytest.approx(0, abs=1e-6)  # gain only: SI-SDR is flat
    assert decay.loc[("half", "snr"), "change"] < -1  # the level drifts away from the reference
    assert decay.loc[("noise", "si_sdr"), "change"] < -1  # fresh noise each pass piles up
    assert decay.loc[("noise", "hnr_db"), "change"] < 0
    assert decay.loc[("noise", "spectral_flatness"), "change"] > 0
    versus = sc.decay_difference("half", n_boot=100).set_index("metric")
    assert list(versus["system"].unique()) == ["noise"] and (versus["n"] == 2).all()
    # paired difference of the per-file changes equals the difference of the mean changes
    expected = decay.loc[("noise", "snr"), "change"] - decay.loc[("half", "snr"), "change"]
    assert versus.loc["snr", "difference"] == pytest.approx(expected)
    with pytest.raises(KeyError, match="'other' is not among"):
        sc.decay_difference("other")
    (example,) = sc.examples
    assert example["file_id"] == "f00" and set(example["outputs"]) == {"half", "noise"}
    assert set(example["outputs"]["half"]) == {1, K}
    np.testing.assert_allclose(example["outputs"]["half"][K], example["noisy"] * 0.5**K, atol=1e-6)


def test_iterate_enhancement_is_a_chain() -> None:
    x = torch.ones(1, 800)
    outs = iterate_enhancement(GainModel(0.5), x, 3)
    assert [float(o[0, 0]) for o in outs] == [0.5, 0.25, 0.125]
    with pytest.raises(ValueError, match="at least 1"):
        iterate_enhancement(GainModel(0.5), x, 0)
    with pytest.raises(FloatingPointError, match="step 1"):
        iterate_enhancement(GainModel(float("nan")), x, 2)
