from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mal.analysis import best_space, correlation_table, spearman, spearman_ci


def test_monotone_function_gives_exactly_plus_and_minus_one() -> None:
    x = np.random.default_rng(0).uniform(-3, 3, 50)
    assert spearman(x, np.exp(x)) == 1.0
    assert spearman(x, -(x**3)) == -1.0
    res = spearman_ci(x, np.exp(2 * x), groups=np.arange(50) // 5, n_boot=200)
    assert (res.rho, res.ci_low, res.ci_high) == (1.0, 1.0, 1.0)
    assert res.n_pairs == 50 and res.n_groups == 10
    neg = spearman_ci(x, 1 / (1 + np.exp(x)), n_boot=200)
    assert (neg.rho, neg.ci_low, neg.ci_high) == (-1.0, -1.0, -1.0)


def test_independent_noise_is_near_zero_and_its_interval_covers_zero() -> None:
    rng = np.random.default_rng(3)
    res = spearman_ci(rng.standard_normal(400), rng.standard_normal(400), n_boot=500)
    assert abs(res.rho) < 0.12
    assert res.ci_low < 0 < res.ci_high
    assert res.ci_high - res.ci_low < 0.3


def test_ties_nan_and_degenerate_inputs() -> None:
    # ties share their mean rank: a step function of a monotone variable is still perfectly rank-correlated
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    assert spearman(x, y) == pytest.approx(16 / math.sqrt(17.5 * 16), abs=1e-12)  # centred ranks, by hand
    res = spearman_ci([1, 2, np.nan, 4, 5], [2, 4, 6, np.nan, 10], n_boot=0)
    assert res.n_pairs == 3 and res.rho == 1.0 and math.isnan(res.ci_low)
    const = spearman_ci([1, 2, 3, 4], [5, 5, 5, 5])
    assert math.isnan(const.rho) and "constant" in const.reason
    few = spearman_ci([1, 2], [1, 2])
    assert math.isnan(few.rho) and "2 finite" in few.reason
    with pytest.raises(ValueError, match="equal length"):
        spearman_ci([1, 2, 3], [1, 2])


def test_bootstrap_resamples_whole_groups() -> None:
    # two files, each with a perfectly ordered set of pairs, but the files disagree: resampling files gives
    # resamples of a single file (ρ = +1) and of both (ρ < 1), so the interval reaches +1
    x = np.concatenate([np.arange(5.0), np.arange(5.0) + 10])
    y = np.concatenate([np.arange(5.0) + 10, np.arange(5.0)])
    res = spearman_ci(x, y, groups=["a"] * 5 + ["b"] * 5, n_boot=300)
    assert res.n_groups == 2
    assert res.ci_high == 1.0 and res.rho < 0


def test_correlation_table_and_best_space() -> None:
    rng = np.random.default_rng(0)
    snr = np.repeat([0.0, 5.0, 10.0, 15.0], 6)
    pairs = pd.DataFrame(
        {
            "file_id": np.tile([f"f{i}" for i in range(6)], 4),
            "snr_db": snr,
            "pesq_wb": 1 + snr / 10 + 0.01 * rng.standard_normal(24),
            "good": np.exp(-snr / 5) + 0.0001 * rng.standard_normal(24),
            "random": rng.standard_normal(24),
        }
    )
    table = correlation_table(pairs, ["good", "random"], ["pesq_wb"], n_boot=100)
    assert list(table.columns) == ["space", "metric", "rho", "ci_low", "ci_high", "n_pairs", "n_files", "reason"]
    good = table.set_index("space").loc["good"]
    assert good["rho"] < -0.8 and good["n_files"] == 6 and good["n_pairs"] == 24
    assert best_space(table, "pesq_wb")["space"] == "good"
    by_snr = correlation_table(pairs, ["good"], ["pesq_wb"], by=["snr_db"], n_boot=0)
    assert list(by_snr["snr_db"]) == [0.0, 5.0, 10.0, 15.0]
    with pytest.raises(KeyError, match="missing_col"):
        correlation_table(pairs, ["missing_col"], ["pesq_wb"])
    with pytest.raises(ValueError, match="no finite"):
        best_space(table, "stoi")
