"""The statistics every table of ``mal`` uses: percentile-bootstrap CIs of a mean, and paired differences.

A mean over files comes with a 95 % percentile-bootstrap interval (files resampled with replacement). A comparison
of two systems is *paired*: the mean per-file difference ``a − b`` over the files both scored, with its own
bootstrap interval, which removes the file-to-file spread that the overlap of two separate intervals would keep.

A study with several training seeds per system adds a ``seed`` column (:data:`SEED_COLUMN`) to the per-file table.
Files are then not the only source of variation: two seeds of one system can differ by more than the file-level
interval of either (issue 13 saw the same seed move a headline difference by 0.02 PESQ-WB on another machine).
:func:`hierarchical_paired_difference` pairs ``a − b`` within each seed and resamples seeds, then files within each
resampled seed, so its interval carries the seed-to-seed spread; :func:`paired_difference` pools every
(seed, file) pair as if they were independent files.

Bootstrap seeds: :func:`cell_rng` derives one generator per table cell from (seed, the cell's labels), so a cell's
interval does not depend on which other cells were computed, or in which order.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

PAIRED_COLUMNS = ("system_a", "system_b", "metric", "dataset", "mean_diff", "ci_low", "ci_high", "n_files")
HIERARCHICAL_COLUMNS = (*PAIRED_COLUMNS, "n_seeds")
# The per-file table's column that names a training seed (absent: one seed).
SEED_COLUMN = "seed"


def cell_rng(seed: int, *key: str) -> np.random.Generator:
    """A generator for one table cell, from the run's seed and the cell's labels."""
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(key).encode())])


def mean_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> tuple[float, float, float, int]:
    """Mean of the finite ``values`` and its percentile-bootstrap CI → ``(mean, low, high, n)``.

    ``n`` is the number of finite values. The interval is NaN when ``n < 2`` or ``n_boot ≤ 0``; everything is NaN
    when ``n = 0``. ``seed`` is an integer or a generator (e.g. :func:`cell_rng`).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if v.size < 2 or n_boot <= 0:
        return mean, math.nan, math.nan, int(v.size)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(low), float(high), int(v.size)


def summarise(
    per_file: pd.DataFrame, by: Sequence[str] = (), n_boot: int = 2000, seed: int = 0, domains: dict | None = None
) -> pd.DataFrame:
    """Mean, 95 % bootstrap CI, ``n_files`` (finite values) and ``n_nan`` per system × dataset × metric
    (× the extra columns ``by``, e.g. ``("snr_db",)`` for per-SNR curves) of a tidy per-file table."""
    keys = ["system", "dataset", "metric", *by]
    rows = []
    for key, group in per_file.groupby(keys, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=float)
        mean, lo, hi, finite = mean_ci(values, n_boot, cell_rng(seed, *map(str, key)))
        rows.append((*key, mean, lo, hi, finite, int(values.size - finite)))
    out = pd.DataFrame(rows, columns=[*keys, "mean", "ci_low", "ci_high", "n_files", "n_nan"])
    if domains is not None:
        out.insert(2, "domain", out["dataset"].map(domains).fillna(""))
    return out


def paired_difference(
    per_file: pd.DataFrame,
    system_a: str,
    system_b: str,
    metric: str,
    dataset: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean of ``a − b`` over the files where both systems have a finite value, with a 95 % bootstrap CI.

    Args:
        per_file: the tidy per-file table (columns system, dataset, file, metric, value, and optionally
            :data:`SEED_COLUMN`: then files are paired within a seed and every (seed, file) pair counts as one
            file; see :func:`hierarchical_paired_difference` for an interval that resamples seeds).
        dataset: restrict to one dataset label (``None``: all datasets, files paired by (dataset, file)).

    Returns:
        A dict with the keys of :data:`PAIRED_COLUMNS`; a CI that excludes 0 means the difference is unlikely to
        be resampling noise.
    """
    diff = _paired_diffs(per_file, system_a, system_b, metric, dataset).to_numpy(dtype=float)
    mean, lo, hi, n = mean_ci(diff, n_boot, cell_rng(seed, system_a, system_b, metric, str(dataset)))
    values = (system_a, system_b, metric, dataset if dataset is not None else "all", mean, lo, hi, n)
    return dict(zip(PAIRED_COLUMNS, values, strict=True))


def _paired_diffs(per_file: pd.DataFrame, system_a: str, system_b: str, metric: str, dataset: str | None) -> pd.Series:
    """``a − b`` per (seed,) dataset and file, indexed by them (NaN where either side is missing)."""
    rows = per_file[per_file["metric"] == metric]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    for name in (system_a, system_b):
        if name not in set(per_file["system"]):
            raise KeyError(f"system {name!r} not in the table; systems are {sorted(set(per_file['system']))}")
    index = [SEED_COLUMN, "dataset", "file"] if SEED_COLUMN in per_file else ["dataset", "file"]
    wide = rows.pivot_table(index=index, columns="system", values="value", aggfunc="first")
    if system_a not in wide or system_b not in wide:
        return pd.Series([], dtype=float)
    return wide[system_a] - wide[system_b]


def hierarchical_mean_ci(
    groups: Sequence[Sequence[float] | np.ndarray],
    n_boot: int = 2000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> tuple[float, float, float, int, int]:
    """Mean over groups of the group means, with a two-level percentile-bootstrap CI → ``(mean, low, high, n, k)``.

    Each replicate draws ``k`` groups with replacement (seeds) and, for every draw, resamples that group's values
    with replacement (files), independently each time a group is drawn; its statistic is the mean of the drawn
    groups' resampled means. Every group counts equally, whatever its number of values.

    The interval is conservative: the spread of the group means already holds the within-group noise, which the
    second level draws again, so with groups that agree it is about √2 × the pooled bootstrap's (more with few
    groups); with groups that disagree it carries their spread, which the pooled bootstrap ignores.

    Args:
        groups: one array of values per group (non-finite values are dropped; empty groups are dropped).

    Returns:
        The mean, the interval, ``n`` (finite values in all) and ``k`` (non-empty groups). With one group the
        interval is the within-group (file) bootstrap: a table should show ``k`` next to it. NaN as
        :func:`mean_ci` when there is nothing to resample.
    """
    kept = [v[np.isfinite(v)] for v in (np.asarray(g, dtype=np.float64) for g in groups)]
    kept = [v for v in kept if v.size]
    k, n = len(kept), sum(v.size for v in kept)
    if k == 0:
        return math.nan, math.nan, math.nan, 0, 0
    mean = float(np.mean([v.mean() for v in kept]))
    if n < 2 or n_boot <= 0:
        return mean, math.nan, math.nan, n, k
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, k, size=(n_boot, k))
    totals = np.zeros(n_boot)
    for g, values in enumerate(kept):
        replicate, _ = np.nonzero(picks == g)  # one entry per time group g was drawn in a replicate
        draws = values[rng.integers(0, values.size, size=(replicate.size, values.size))].mean(axis=1)
        np.add.at(totals, replicate, draws)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(totals / k, [alpha, 1.0 - alpha])
    return mean, float(low), float(high), n, k


def hierarchical_paired_difference(
    per_file: pd.DataFrame,
    system_a: str,
    system_b: str,
    metric: str,
    dataset: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean of ``a − b`` over training seeds and files, with a hierarchical 95 % bootstrap CI (seeds, then files).

    Files are paired within a seed (``a`` at seed ``s`` against ``b`` at seed ``s``: the same warm-up and data
    order), so only seeds that both systems ran count. The point estimate is the mean over seeds of the per-seed
    mean difference. Use it for every headline difference of a multi-seed study: when seeds disagree its interval
    is wider than :func:`paired_difference`'s, which treats every (seed, file) pair as an independent file.

    Args:
        per_file: the tidy per-file table with a :data:`SEED_COLUMN` column (without one, the whole table is
            one seed and the result is the file bootstrap, with ``n_seeds = 1``).
        dataset: restrict to one dataset label (``None``: all datasets).

    Returns:
        A dict with the keys of :data:`HIERARCHICAL_COLUMNS` (``n_files`` counts (seed, file) pairs).
    """
    diff = _paired_diffs(per_file, system_a, system_b, metric, dataset)
    if SEED_COLUMN in per_file and len(diff):
        groups = [g.to_numpy(dtype=float) for _, g in diff.groupby(level=SEED_COLUMN, sort=True)]
    else:
        groups = [diff.to_numpy(dtype=float)]
    rng = cell_rng(seed, "hierarchical", system_a, system_b, metric, str(dataset))
    mean, lo, hi, n, k = hierarchical_mean_ci(groups, n_boot, rng)
    values = (system_a, system_b, metric, dataset if dataset is not None else "all", mean, lo, hi, n, k)
    return dict(zip(HIERARCHICAL_COLUMNS, values, strict=True))


def improvement_table(
    per_file: pd.DataFrame,
    baseline: str = "noisy",
    metrics: Sequence[str] | None = None,
    systems: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired difference of every system over ``baseline`` (ΔPESQ, ΔSI-SDR, …) per dataset and metric."""
    metrics = list(metrics) if metrics is not None else list(dict.fromkeys(per_file["metric"]))
    systems = [s for s in (systems or dict.fromkeys(per_file["system"])) if s != baseline]
    rows = [
        paired_difference(per_file, s, baseline, m, d, n_boot=n_boot, seed=seed)
        for d in dict.fromkeys(per_file["dataset"])
        for s in systems
        for m in metrics
    ]
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
