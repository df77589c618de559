"""mal.stats: bootstrap CIs of a mean, per-cell seeds and summaries (paired differences: tests/test_evaluate.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mal.stats import (
    cell_rng,
    hierarchical_mean_ci,
    hierarchical_paired_difference,
    mean_ci,
    paired_difference,
    summarise,
)


def test_mean_ci_covers_the_mean_with_the_normal_width() -> None:
    x = np.random.default_rng(0).normal(1.0, 1.0, 400)
    mean, lo, hi, n = mean_ci(x, 2000, np.random.default_rng(1))
    assert mean == pytest.approx(x.mean()) and n == 400
    assert hi - lo == pytest.approx(2 * 1.96 / 20, rel=0.15)


def test_mean_ci_counts_finite_values_and_says_nan_when_undefined() -> None:
    mean, low, high, n = mean_ci([1.0, 2.0, 3.0, np.nan, 4.0], n_boot=500)
    assert mean == 2.5 and n == 4 and low < 2.5 < high
    assert mean_ci([3.0, 3.0, 3.0])[:3] == (3.0, 3.0, 3.0)
    assert math.isnan(mean_ci([np.nan])[0]) and mean_ci([np.nan])[3] == 0
    one = mean_ci([2.0])
    assert one[0] == 2.0 and math.isnan(one[1]) and math.isnan(one[2])
    # An integer seed and the generator it makes give the same interval.
    assert mean_ci([1.0, 5.0, 2.0], 300, 7) == mean_ci([1.0, 5.0, 2.0], 300, np.random.default_rng(7))


def test_a_cell_interval_does_not_depend_on_the_other_cells() -> None:
    rows = [("a", "d", "m", f"f{i}", float(i)) for i in range(6)] + [
        ("b", "d", "m", f"f{i}", 2.0 * i) for i in range(6)
    ]
    table = pd.DataFrame(rows, columns=["system", "dataset", "file", "metric", "value"])
    both = summarise(table, n_boot=200, seed=3).set_index("system")
    alone = summarise(table[table.system == "a"], n_boot=200, seed=3).set_index("system")
    assert both.loc["a"].equals(alone.loc["a"])
    assert cell_rng(3, "a", "d").integers(0, 10**9) != cell_rng(3, "b", "d").integers(0, 10**9)


def _study(seed_shift: dict[int, float], n_files: int = 40) -> pd.DataFrame:
    """A tiny multi-seed study: per seed, a baseline and a system whose per-file gain is ``shift + noise``."""
    rng = np.random.default_rng(0)
    rows = []
    for seed, shift in seed_shift.items():
        base = rng.normal(2.0, 0.5, n_files)  # file difficulty: shared by both systems of a seed (the pairing)
        gain = shift + rng.normal(0.0, 0.02, n_files)
        for f in range(n_files):
            rows.append(("baseline", seed, "in", f"f{f}", "pesq_wb", base[f]))
            rows.append(("mal", seed, "in", f"f{f}", "pesq_wb", base[f] + gain[f]))
    return pd.DataFrame(rows, columns=["system", "seed", "dataset", "file", "metric", "value"])


def test_hierarchical_interval_widens_when_seeds_disagree() -> None:
    """Issue 13's check: 2 seeds that disagree → the seed-then-file bootstrap is wider than the file-only one."""
    table = _study({0: 0.05, 1: -0.03})
    files_only = paired_difference(table, "mal", "baseline", "pesq_wb")
    hier = hierarchical_paired_difference(table, "mal", "baseline", "pesq_wb")
    assert files_only["n_files"] == hier["n_files"] == 80 and hier["n_seeds"] == 2
    assert hier["mean_diff"] == pytest.approx(files_only["mean_diff"]) == pytest.approx(0.01, abs=0.005)
    files_width = files_only["ci_high"] - files_only["ci_low"]
    hier_width = hier["ci_high"] - hier["ci_low"]
    assert hier_width > 3 * files_width
    assert files_only["ci_low"] > 0  # pooling files calls a seed-dependent effect "resolved" ...
    assert hier["ci_low"] < 0 < hier["ci_high"]  # ... the hierarchical interval does not
    # Seeds that agree: only the documented conservatism (the seed draw carries the file noise again: ≈ √2).
    agree = _study({0: 0.01, 1: 0.01})
    width = {
        name: fn(agree, "mal", "baseline", "pesq_wb")["ci_high"] - fn(agree, "mal", "baseline", "pesq_wb")["ci_low"]
        for name, fn in (("files", paired_difference), ("hier", hierarchical_paired_difference))
    }
    assert width["files"] < width["hier"] < 2 * width["files"]


def test_hierarchical_pairs_within_a_seed_and_counts_only_shared_seeds() -> None:
    table = _study({0: 0.05, 1: -0.03, 2: 0.02})
    # The baseline ran seeds 0 and 1 only: seed 2 of "mal" has no partner.
    table = table[~((table.system == "baseline") & (table.seed == 2))]
    hier = hierarchical_paired_difference(table, "mal", "baseline", "pesq_wb", dataset="in")
    assert hier["n_seeds"] == 2 and hier["n_files"] == 80 and hier["dataset"] == "in"
    # Without a seed column the table is one seed: the file bootstrap.
    one = _study({0: 0.05}).drop(columns="seed")
    single = hierarchical_paired_difference(one, "mal", "baseline", "pesq_wb")
    assert single["n_seeds"] == 1 and single["ci_low"] < single["mean_diff"] < single["ci_high"]
    with pytest.raises(KeyError, match="not in the table"):
        hierarchical_paired_difference(table, "mal", "oracle", "pesq_wb")


def test_hierarchical_mean_ci_weights_groups_equally_and_handles_edges() -> None:
    mean, lo, hi, n, k = hierarchical_mean_ci([[1.0, 1.0, 1.0, 1.0], [3.0, np.nan]], n_boot=500)
    assert (mean, n, k) == (2.0, 5, 2)  # the mean of group means, not of the 5 values
    assert lo == pytest.approx(1.0) and hi == pytest.approx(3.0)  # only the seed draw varies here
    assert hierarchical_mean_ci([[], [np.nan]])[3:] == (0, 0)
    assert math.isnan(hierarchical_mean_ci([[2.0]])[1])
    # An integer seed and the generator it makes give the same interval.
    groups = [[0.1, 0.3, 0.2], [0.5, 0.4]]
    assert hierarchical_mean_ci(groups, 300, 7) == hierarchical_mean_ci(groups, 300, np.random.default_rng(7))
