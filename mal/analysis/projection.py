"""2-D projections of pooled encoder features: PCA, t-SNE (scikit-learn), and UMAP when ``umap-learn`` is installed.

Each pooled vector (channel means and stds of one signal at one layer) is standardised per dimension first, so that
a few high-variance channels do not decide the picture alone. The projections are for looking, not for measuring:
t-SNE and UMAP distort global distances, PCA keeps them but only along two directions.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from mal.analysis.study import PooledFeatures


def available_methods() -> list[str]:
    """Projection methods usable in this environment."""
    methods = ["pca", "tsne"]
    if importlib.util.find_spec("umap") is not None:
        methods.append("umap")
    return methods


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Project ``features`` ``(N, D)`` to ``(N, 2)``.

    Args:
        features: one row per signal.
        method: ``pca``, ``tsne`` or ``umap`` (see :func:`available_methods`).
        seed: random state of t-SNE / UMAP.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"project: need (N >= 3, D) features, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("project: features contain NaN or Inf")
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if method == "pca":
        n = min(2, *x.shape)
        out = PCA(n_components=n, random_state=seed).fit_transform(x)
        return np.pad(out, ((0, 0), (0, 2 - n)))  # a rank-1 cloud still gets two columns
    if method == "tsne":
        perplexity = float(min(30.0, max(2.0, (x.shape[0] - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    if method == "umap":
        if "umap" not in available_methods():
            raise ValueError("method='umap' needs the umap-learn package (pip install umap-learn)")
        import umap

        n_neighbors = int(min(15, x.shape[0] - 1))
        return umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed).fit_transform(x)
    raise ValueError(f"unknown projection method {method!r}; choose from {available_methods()}")


def project_pooled(
    pooled: PooledFeatures,
    layers: list[str] | None = None,
    methods: list[str] | tuple[str, ...] = ("pca",),
    seed: int = 0,
) -> pd.DataFrame:
    """Project every requested layer with every method; a tidy table ready for plotting.

    Returns:
        ``pooled.meta`` columns plus ``layer, method, x, y`` (one row per signal × layer × method).
    """
    layers = list(pooled.layers) if layers is None else layers
    unknown = [name for name in layers if name not in pooled.layers]
    if unknown:
        raise KeyError(f"no pooled features for layer(s) {unknown}; have {list(pooled.layers)}")
    frames = []
    for name in layers:
        for method in methods:
            xy = project(pooled.layers[name], method, seed)
            frame = pooled.meta.copy()
            frame["layer"], frame["method"], frame["x"], frame["y"] = name, method, xy[:, 0], xy[:, 1]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
