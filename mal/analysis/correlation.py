"""Rank correlation between feature-space distances and quality metrics, with bootstrap CIs over files.

Sign convention (used in every table and figure of :mod:`mal.analysis`): ``rho`` is Spearman's ρ between the
*distance* ``d(estimate, clean)`` and the *metric* of the estimate. A feature space that judges quality well gives
a strongly **negative** ρ against higher-is-better metrics (PESQ-WB, STOI, SI-SDR): the closer the features, the
better the speech. ρ = −1 means the distance orders the estimates exactly as the metric does.

Why bootstrap over files: each file contributes several estimates (noisy input, the output of each system), and
those pairs share the file's speaker, noise and SNR, so they are not independent. Resampling whole files keeps
that dependence inside every resample, which gives honest intervals.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata


@dataclasses.dataclass(frozen=True)
class SpearmanResult:
    """Spearman's ρ with a percentile-bootstrap confidence interval.

    Attributes:
        rho: ρ on all pairs; NaN when undefined (fewer than 3 pairs, or a constant variable).
        ci_low, ci_high: bounds of the ``level`` percentile bootstrap interval (NaN when undefined).
        n_pairs: finite pairs used.
        n_groups: distinct groups (files) among them; the bootstrap resamples these.
        reason: why ρ is NaN (empty when it is not).
    """

    rho: float
    ci_low: float
    ci_high: float
    n_pairs: int
    n_groups: int
    reason: str = ""


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ: Pearson's correlation of average ranks (ties share their mean rank). NaN if either is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman: expected two 1-D arrays of equal length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        return math.nan
    rx = rankdata(x) - (len(x) + 1) / 2
    ry = rankdata(y) - (len(y) + 1) / 2
    denom = math.sqrt(float(np.dot(rx, rx)) * float(np.dot(ry, ry)))
    if denom == 0:
        return math.nan
    return float(np.clip(np.dot(rx, ry) / denom, -1.0, 1.0))


def spearman_ci(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    groups: Sequence[object] | np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> SpearmanResult:
    """Spearman's ρ between ``x`` and ``y`` with a bootstrap CI that resamples ``groups`` (files) with replacement.

    Args:
        x, y: paired values ``(N,)``; pairs where either is NaN are dropped.
        groups: group label of each pair ``(N,)`` (e.g. the file id); ``None`` treats every pair as its own group.
        n_boot: bootstrap resamples (0 gives ρ without an interval).
        level: coverage of the interval.
        seed: RNG seed (results are reproducible).

    Returns:
        :class:`SpearmanResult`. Resamples in which ρ is undefined (a constant variable) are left out of the
        percentiles.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    g = np.arange(len(x)) if groups is None else np.asarray(groups)
    if not (x.shape == y.shape == g.shape) or x.ndim != 1:
        raise ValueError(f"spearman_ci: x, y, groups must be 1-D of equal length; got {x.shape}, {y.shape}, {g.shape}")
    if not 0 < level < 1:
        raise ValueError(f"spearman_ci: level must be in (0, 1), got {level}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[ok], y[ok], g[ok]
    _, gid = np.unique(g, return_inverse=True)
    n_groups = int(gid.max()) + 1 if len(gid) else 0
    if len(x) < 3:
        return SpearmanResult(math.nan, math.nan, math.nan, len(x), n_groups, f"only {len(x)} finite pair(s)")
    rho = spearman(x, y)
    if math.isnan(rho):
        return SpearmanResult(math.nan, math.nan, math.nan, len(x), n_groups, "a variable is constant")
    if n_boot <= 0 or n_groups < 2:
        return SpearmanResult(rho, math.nan, math.nan, len(x), n_groups)
    members = [np.flatnonzero(gid == k) for k in range(n_groups)]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, n_groups, n_groups)])
        r = spearman(x[idx], y[idx])
        if not math.isnan(r):
            boots.append(r)
    if not boots:
        return SpearmanResult(rho, math.nan, math.nan, len(x), n_groups)
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return SpearmanResult(rho, float(low), float(high), len(x), n_groups)


def correlation_table(
    pairs: pd.DataFrame,
    distance_columns: Sequence[str],
    metric_columns: Sequence[str],
    group_column: str = "file_id",
    by: Sequence[str] = (),
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman ρ(distance, metric) for every distance column × metric column, as a tidy table.

    Args:
        pairs: one row per (estimate, clean) pair.
        distance_columns: columns holding a feature-space distance (one per layer or comparison space).
        metric_columns: columns holding a quality metric of the estimate.
        group_column: the file id that the bootstrap resamples.
        by: optional columns to split the table by (e.g. ``["snr_db"]`` for ρ within each SNR).
        n_boot, level, seed: see :func:`spearman_ci`.

    Returns:
        Columns ``[*by, space, metric, rho, ci_low, ci_high, n_pairs, n_files, reason]``, one row per
        combination, in the order given.
    """
    missing = [c for c in [*distance_columns, *metric_columns, group_column, *by] if c not in pairs.columns]
    if missing:
        raise KeyError(f"correlation_table: column(s) {missing} not in the pairs table ({list(pairs.columns)})")
    chunks = pairs.groupby(list(by), sort=True) if by else [((), pairs)]
    rows = []
    for key, chunk in chunks:
        key = key if isinstance(key, tuple) else (key,)
        for space in distance_columns:
            for metric in metric_columns:
                res = spearman_ci(chunk[space], chunk[metric], chunk[group_column], n_boot, level, seed)
                rows.append(
                    {
                        **dict(zip(by, key, strict=True)),
                        "space": space,
                        "metric": metric,
                        "rho": res.rho,
                        "ci_low": res.ci_low,
                        "ci_high": res.ci_high,
                        "n_pairs": res.n_pairs,
                        "n_files": res.n_groups,
                        "reason": res.reason,
                    }
                )
    return pd.DataFrame(rows)


def best_space(table: pd.DataFrame, metric: str, spaces: Sequence[str] | None = None) -> pd.Series:
    """The row of ``table`` whose distance tracks ``metric`` best, i.e. the most negative ρ (see the sign convention).

    Args:
        table: output of :func:`correlation_table`.
        metric: metric column name, e.g. ``"pesq_wb"``.
        spaces: restrict the choice to these spaces (e.g. only encoder layers).
    """
    rows = table[(table["metric"] == metric) & table["rho"].notna()]
    if spaces is not None:
        rows = rows[rows["space"].isin(list(spaces))]
    if rows.empty:
        raise ValueError(f"best_space: no finite ρ for metric {metric!r} among the requested spaces")
    return rows.loc[rows["rho"].idxmin()]
