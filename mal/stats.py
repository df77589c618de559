"""The statistics every table of ``mal`` uses: percentile-bootstrap CIs of a mean, and paired differences.

A mean over files comes with a 95 % percentile-bootstrap interval (files resampled with replacement). A comparison
of two systems is *paired*: the mean per-file difference ``a − b`` over the files both scored, with its own
bootstrap interval, which removes the file-to-file spread that the overlap of two separate intervals would keep.

Seeds: :func:`cell_rng` derives one generator per table cell from (seed, the cell's labels), so a cell's interval
does not depend on which other cells were computed, or in which order.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

PAIRED_COLUMNS = ("system_a", "system_b", "metric", "dataset", "mean_diff", "ci_low", "ci_high", "n_files")


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
        per_file: the tidy per-file table (columns system, dataset, file, metric, value).
        dataset: restrict to one dataset label (``None``: all datasets, files paired by (dataset, file)).

    Returns:
        A dict with the keys of :data:`PAIRED_COLUMNS`; a CI that excludes 0 means the difference is unlikely to
        be resampling noise.
    """
    rows = per_file[per_file["metric"] == metric]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    for name in (system_a, system_b):
        if name not in set(per_file["system"]):
            raise KeyError(f"system {name!r} not in the table; systems are {sorted(set(per_file['system']))}")
    wide = rows.pivot_table(index=["dataset", "file"], columns="system", values="value", aggfunc="first")
    if system_a not in wide or system_b not in wide:
        diff = np.array([])
    else:
        diff = (wide[system_a] - wide[system_b]).to_numpy(dtype=float)
    mean, lo, hi, n = mean_ci(diff, n_boot, cell_rng(seed, system_a, system_b, metric, str(dataset)))
    values = (system_a, system_b, metric, dataset if dataset is not None else "all", mean, lo, hi, n)
    return dict(zip(PAIRED_COLUMNS, values, strict=True))


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
