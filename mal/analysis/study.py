"""The feature-space study: which feature space tracks perceived quality best?

For every file the study forms pairs (estimate, clean), where the estimate ranges over the noisy input and the
output of every system, so quality varies widely within and across files. For each pair it records

* the distance ``d_l(estimate, clean)`` at every selected layer of each *judge* encoder (the encoder of a given
  checkpoint, e.g. the warm-up model's ``E``; see :func:`mal.analysis.features.feature_distance`);
* the distance in each comparison space (log-mel, MR-STFT, a deep-feature backbone; :mod:`feature_spaces`);
* the quality metrics of the estimate (PESQ-WB, STOI, SI-SDR …).

:func:`mal.analysis.correlation.correlation_table` then gives Spearman's ρ(distance, metric) with file-bootstrap
CIs. The study also keeps pooled features (mean and std over time, per channel) of the clean, noisy and enhanced
signals in the primary judge's encoder, for the 2-D projections. Enhanced audio is never kept: memory is the pooled
vectors plus one row per pair, whatever the number of files.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mal.analysis.feature_spaces import ComparisonSpace
from mal.analysis.features import LayerSpec, encoder_features, feature_distance, layer_names, pool, resolve_layers
from mal.analysis.inference import Enhancer, Scorer, default_scorer, enhance_once, score_pair
from mal.models.base import SEModel

META_COLUMNS = ("file_id", "snr_db", "noise_type", "speaker", "language")
Item = tuple[torch.Tensor, torch.Tensor, Mapping[str, Any]]


@dataclasses.dataclass
class PooledFeatures:
    """Pooled encoder features of many signals, for projections.

    Attributes:
        meta: one row per signal: ``file_id, snr_db, noise_type, speaker, language, signal, role``; ``signal`` is
            ``clean``, ``noisy`` or a system label, ``role`` is ``clean``, ``noisy`` or ``enhanced``.
        layers: layer name → array ``(N, 2C_l)`` aligned with ``meta`` (channel means, then channel stds).
        judge: label of the encoder the features come from.
    """

    meta: pd.DataFrame
    layers: dict[str, np.ndarray]
    judge: str


@dataclasses.dataclass
class FeatureStudy:
    """Result of :func:`run_feature_study`.

    Attributes:
        pairs: one row per (file, estimate): meta columns, ``source`` (``noisy`` or a system label), one column per
            distance (``<judge>/<layer>`` and comparison-space names) and one per metric.
        distance_columns: the distance columns, encoder layers first (in judge, layer order), then comparison spaces.
        metric_columns: the metric columns.
        pooled: pooled features of the primary judge (``None`` when pooling was switched off).
        skipped_spaces: comparison spaces that were asked for but not computed, with the reason.
    """

    pairs: pd.DataFrame
    distance_columns: list[str]
    metric_columns: list[str]
    pooled: PooledFeatures | None
    skipped_spaces: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def encoder_columns(self) -> list[str]:
        return [c for c in self.distance_columns if "/" in c]


def item_meta(meta: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The meta columns of one dataset item; ``id`` becomes ``file_id``; absent fields are None."""
    out = {"file_id": str(meta.get("id", f"item{index:05d}"))}
    for key in META_COLUMNS[1:]:
        out[key] = meta.get(key)
    return out


def check_pair(noisy: torch.Tensor, clean: torch.Tensor, file_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate one dataset item: mono ``(1, T)`` float tensors of equal length, finite, reference not silent."""
    noisy = torch.as_tensor(noisy, dtype=torch.float32)
    clean = torch.as_tensor(clean, dtype=torch.float32)
    noisy = noisy.reshape(1, -1) if noisy.dim() == 1 else noisy
    clean = clean.reshape(1, -1) if clean.dim() == 1 else clean
    if noisy.dim() != 2 or noisy.shape[0] != 1 or clean.dim() != 2 or clean.shape[0] != 1:
        raise ValueError(
            f"{file_id}: expected mono (1, T) audio; got noisy {tuple(noisy.shape)}, clean {tuple(clean.shape)}"
        )
    if noisy.shape != clean.shape:
        raise ValueError(f"{file_id}: noisy and clean lengths differ ({noisy.shape[-1]} vs {clean.shape[-1]} samples)")
    if not (torch.isfinite(noisy).all() and torch.isfinite(clean).all()):
        raise ValueError(f"{file_id}: audio contains NaN or Inf")
    return noisy, clean


def take(items: Iterable[Item], n_files: int | None) -> Iterable[Item]:
    """The first ``n_files`` items (all when ``None``)."""
    return items if n_files is None else itertools.islice(items, n_files)


def expected_count(items: Iterable[Item], n_files: int | None) -> int | None:
    """How many items :func:`take` will yield, when that is known (for progress bars)."""
    size = len(items) if hasattr(items, "__len__") else None
    if size is None:
        return n_files
    return size if n_files is None else min(size, n_files)


def checked_items(
    items: Iterable[Item], n_files: int | None, desc: str, progress: bool = False
) -> Iterator[tuple[dict[str, Any], torch.Tensor, torch.Tensor]]:
    """The first ``n_files`` items, validated, as ``(meta, noisy, clean)``, behind a tqdm bar (unit "file").

    ``meta`` comes from :func:`item_meta`; ``noisy`` and ``clean`` are the ``(1, T)`` tensors of :func:`check_pair`.
    """
    bar = tqdm(take(items, n_files), total=expected_count(items, n_files), desc=desc, unit="file", disable=not progress)
    for index, (noisy_raw, clean_raw, meta_raw) in enumerate(bar):
        meta = item_meta(meta_raw, index)
        yield (meta, *check_pair(noisy_raw, clean_raw, meta["file_id"]))


def run_feature_study(
    judges: Mapping[str, SEModel],
    systems: Mapping[str, SEModel],
    items: Iterable[Item],
    layers: LayerSpec = "all",
    spaces: Sequence[ComparisonSpace] = (),
    metrics: Sequence[str] = ("pesq_wb", "stoi", "si_sdr"),
    n_files: int | None = None,
    distance: str = "l1",
    normalise: bool = True,
    keep_pooled: bool = True,
    sample_rate: int = 16000,
    scorer: Scorer | None = None,
    enhancer: Enhancer = enhance_once,
    progress: bool = True,
) -> FeatureStudy:
    """Measure feature-space distances and quality metrics for (estimate, clean) pairs.

    Args:
        judges: label → model whose encoder measures distances (put in eval mode here); the first is the
            *primary* judge whose pooled features are kept for projections.
        systems: label → model that enhances the noisy input; each output is one estimate per file.
        items: ``(noisy (1, T), clean (1, T), meta)`` with meta keys ``id, snr_db, noise_type, speaker, language``.
        layers: which encoder feature maps (see :func:`~mal.analysis.features.resolve_layers`).
        spaces: comparison feature spaces (:func:`~mal.analysis.feature_spaces.build_spaces`).
        metrics: metric names understood by ``scorer``.
        n_files: stop after this many items (``None``: all).
        distance, normalise: see :func:`~mal.analysis.features.feature_distance`.
        keep_pooled: keep pooled primary-judge features of clean, noisy and enhanced signals.
        sample_rate: of the audio, Hz.
        scorer: ``scorer(clean, estimate, sample_rate=, metrics=) → {name: value}``; default ``mal.metrics.score``.
        enhancer: ``enhancer(model, noisy (1, T)) → (1, T)``.
        progress: show a tqdm bar.

    Returns:
        :class:`FeatureStudy`.
    """
    if not judges:
        raise ValueError("run_feature_study: give at least one judge encoder")
    if "noisy" in systems or "clean" in systems:
        raise ValueError("run_feature_study: 'noisy' and 'clean' are reserved; rename that system")
    scorer = scorer or (default_scorer() if metrics else None)
    for model in (*judges.values(), *systems.values()):
        model.eval()
    primary = next(iter(judges))
    space_names = [s.name for s in spaces]

    rows: list[dict[str, Any]] = []
    pooled_meta: list[dict[str, Any]] = []
    pooled: dict[str, list[np.ndarray]] = {}
    judge_layers: dict[str, tuple[list[int], list[str]]] = {}
    distance_columns: list[str] | None = None
    for meta, noisy, clean in checked_items(items, n_files, "feature study", progress):
        estimates = {"noisy": noisy, **{label: enhancer(model, noisy) for label, model in systems.items()}}
        for label, est in estimates.items():
            if est.shape != clean.shape:
                raise ValueError(
                    f"{meta['file_id']}: system {label!r} returned shape {tuple(est.shape)}, "
                    f"expected {tuple(clean.shape)}"
                )

        per_est: dict[str, dict[str, float]] = {label: {} for label in estimates}
        for judge_label, judge in judges.items():
            ref_feats = encoder_features(judge, clean)
            if judge_label not in judge_layers:
                idx = resolve_layers(layers, len(ref_feats))
                names = layer_names(len(ref_feats))
                judge_layers[judge_label] = (idx, [names[i] for i in idx])
            idx, names = judge_layers[judge_label]
            keep = keep_pooled and judge_label == primary
            if keep:
                _add_pooled(pooled, pooled_meta, meta, "clean", "clean", ref_feats, idx, names)
            for label, est in estimates.items():
                est_feats = encoder_features(judge, est)
                for i, name in zip(idx, names, strict=True):
                    d = feature_distance(est_feats[i], ref_feats[i], distance, normalise)
                    per_est[label][f"{judge_label}/{name}"] = float(d.item())
                if keep:
                    role = "noisy" if label == "noisy" else "enhanced"
                    _add_pooled(pooled, pooled_meta, meta, label, role, est_feats, idx, names)
                del est_feats
            del ref_feats

        for label, est in estimates.items():
            for space in spaces:
                per_est[label][space.name] = space(est[None], clean[None])
            scores = score_pair(scorer, clean, est, metrics, sample_rate) if metrics else {}
            rows.append({**meta, "source": label, **per_est[label], **scores})
        if distance_columns is None:
            distance_columns = [f"{j}/{n}" for j, (_, names) in judge_layers.items() for n in names] + space_names

    if not rows:
        raise ValueError("run_feature_study: the dataset yielded no items")
    pairs = pd.DataFrame(rows)
    pooled_result = None
    if keep_pooled:
        pooled_result = PooledFeatures(
            pd.DataFrame(pooled_meta), {k: np.stack(v) for k, v in pooled.items()}, judge=primary
        )
    return FeatureStudy(pairs, distance_columns or [], list(metrics), pooled_result)


def _add_pooled(
    pooled: dict[str, list[np.ndarray]],
    pooled_meta: list[dict[str, Any]],
    meta: Mapping[str, Any],
    signal: str,
    role: str,
    feats: Sequence[torch.Tensor],
    idx: Sequence[int],
    names: Sequence[str],
) -> None:
    for i, name in zip(idx, names, strict=True):
        pooled.setdefault(name, []).append(pool(feats[i])[0].cpu().numpy())
    pooled_meta.append({**meta, "signal": signal, "role": role})


def summarise_pairs(pairs: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean of ``columns`` per source (noisy, each system) with the number of files: a quick sanity table."""
    out = pairs.groupby("source", sort=False)[list(columns)].mean()
    out.insert(0, "n_files", pairs.groupby("source", sort=False)["file_id"].nunique())
    return out
