"""mal.stats: bootstrap CIs of a mean, per-cell seeds and summaries (paired differences: tests/test_evaluate.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mal.stats import cell_rng, mean_ci, summarise


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
