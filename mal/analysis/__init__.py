"""Feature-space analysis: does a model's own encoder judge speech better than handcrafted or borrowed features?

* :mod:`~mal.analysis.features`: encoder feature maps of any ``SEModel``, pooling, per-layer distances.
* :mod:`~mal.analysis.feature_spaces`: comparison spaces (log-mel, MR-STFT, deep features, lossnet).
* :mod:`~mal.analysis.study`: distances and metrics of (estimate, clean) pairs over a dataset.
* :mod:`~mal.analysis.correlation`: Spearman ρ(distance, metric) with file-bootstrap CIs (ρ < 0 is good).
* :mod:`~mal.analysis.projection`: 2-D projections of pooled features.
* :mod:`~mal.analysis.self_consistency` and :mod:`~mal.analysis.harmonicity`: repeated enhancement ŷ_k = f(ŷ_{k-1}).
* :mod:`~mal.analysis.explorer`: an ipywidgets explorer (utterance × layer × system: feature maps and audio).
* :mod:`~mal.analysis.report`: the notebook's steps (load, run, save tables, figures and summary).
"""

from __future__ import annotations

from mal.analysis.config import AnalysisConfig, check_checkpoints
from mal.analysis.correlation import (
    SpearmanResult,
    best_space,
    correlation_table,
    spearman,
    spearman_ci,
)
from mal.analysis.feature_spaces import ComparisonSpace, LogMelDistance, build_spaces
from mal.analysis.features import (
    encoder_features,
    feature_distance,
    layer_distances,
    layer_names,
    pool,
    resolve_layers,
)
from mal.analysis.harmonicity import HarmonicityResult, harmonicity
from mal.analysis.inference import enhance_once
from mal.analysis.projection import available_methods, project, project_pooled
from mal.analysis.self_consistency import SelfConsistency, iterate_enhancement, run_self_consistency
from mal.analysis.study import FeatureStudy, PooledFeatures, run_feature_study, summarise_pairs

__all__ = [
    "AnalysisConfig",
    "ComparisonSpace",
    "FeatureStudy",
    "HarmonicityResult",
    "LogMelDistance",
    "PooledFeatures",
    "SelfConsistency",
    "SpearmanResult",
    "available_methods",
    "best_space",
    "build_spaces",
    "check_checkpoints",
    "correlation_table",
    "encoder_features",
    "enhance_once",
    "feature_distance",
    "harmonicity",
    "iterate_enhancement",
    "layer_distances",
    "layer_names",
    "pool",
    "project",
    "project_pooled",
    "resolve_layers",
    "run_feature_study",
    "run_self_consistency",
    "spearman",
    "spearman_ci",
    "summarise_pairs",
]
