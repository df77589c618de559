"""Self-consistency: enhance the enhanced signal again, ``ŷ_k = f(ŷ_{k-1})`` with ``ŷ_0 = x``, and watch the quality.

Why it matters: a model that has learned what clean speech *is* should leave clean-enough speech alone, so its
k-curves (quality against k) stay flat. A model that learned only to push its input towards a loss's optimum keeps
pushing, and artefacts pile up: harmonics get smeared, the noise floor turns musical, levels drift. The MAL paper
reports that MAL-trained models hold their harmonics over repeated passes where other losses do not; this module
measures that, per training objective, with PESQ-WB, SI-SDR, DNSMOS and harmonicity
(:mod:`mal.analysis.harmonicity`: HNR and spectral flatness in the clean reference's voiced frames).

Every metric at step k is computed against the *original* clean reference; k = 0 is the noisy input itself
(the same for every system), so the curves start from a common point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from mal.analysis.harmonicity import harmonicity
from mal.analysis.inference import Enhancer, Scorer, default_scorer, enhance_once, score_pair
from mal.analysis.study import Item, checked_items
from mal.models.base import SEModel
from mal.stats import mean_ci

HARMONICITY_METRICS = ("hnr_db", "spectral_flatness")


def iterate_enhancement(
    model: SEModel, noisy: torch.Tensor, k_max: int, enhancer: Enhancer = enhance_once
) -> list[torch.Tensor]:
    """``[ŷ_1, …, ŷ_K]`` with ``ŷ_k = f(ŷ_{k-1})`` and ``ŷ_0 = noisy`` (each ``(1, T)``, on the CPU)."""
    if k_max < 1:
        raise ValueError(f"k_max must be at least 1, got {k_max}")
    from mal.enhance import ModelDivergedError, check_finite_output

    outputs, current = [], noisy
    for step in range(1, k_max + 1):
        try:
            current = check_finite_output(enhancer(model, current), getattr(model, "name", type(model).__name__))
        except ModelDivergedError as err:
            raise ModelDivergedError(f"enhancement step {step}: {err}") from err
        outputs.append(current)
    return outputs


@dataclasses.dataclass
class SelfConsistency:
    """Result of :func:`run_self_consistency`.

    Attributes:
        curves: tidy table ``file_id, snr_db, noise_type, speaker, language, system, k, metric, value``;
            ``k = 0`` is the noisy input.
        examples: for the first ``keep_examples`` files, a dict with keys ``file_id``, ``clean``, ``noisy`` and
            ``outputs`` (``{system: {k: wav}}``, only k = 1 and k = K), 1-D float arrays, for spectrogram panels.
        k_max: K.
        sample_rate: Hz.
    """

    curves: pd.DataFrame
    examples: list[dict[str, Any]]
    k_max: int
    sample_rate: int = 16000

    def summary(self, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Mean over files per system, metric and k, with bootstrap 95 % CIs and the number of files."""
        rows = []
        for (system, metric, k), chunk in self.curves.groupby(["system", "metric", "k"], sort=False):
            mean, low, high, n = mean_ci(chunk["value"], n_boot, seed)
            rows.append(
                {"system": system, "metric": metric, "k": int(k), "mean": mean, "ci_low": low, "ci_high": high, "n": n}
            )
        return pd.DataFrame(rows).sort_values(["system", "metric", "k"], kind="stable").reset_index(drop=True)

    def decay(self, k_from: int = 1, k_to: int | None = None, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Per system and metric: the paired change ``metric(ŷ_{k_to}) − metric(ŷ_{k_from})`` over files, with CI.

        A flat curve gives 0; a negative change for PESQ/SI-SDR/DNSMOS/HNR (positive for spectral flatness) means
        the quality decays under repeated enhancement.
        """
        k_to = self.k_max if k_to is None else k_to
        wide = self.curves[self.curves["k"].isin([k_from, k_to])].pivot_table(
            index=["system", "metric", "file_id"], columns="k", values="value", aggfunc="first"
        )
        rows = []
        for (system, metric), chunk in wide.groupby(level=["system", "metric"], sort=False):
            start, end = chunk[k_from].to_numpy(), chunk[k_to].to_numpy()
            mean, low, high, n = mean_ci(end - start, n_boot, seed)
            rows.append(
                {
                    "system": system,
                    "metric": metric,
                    "k_from": k_from,
                    "k_to": k_to,
                    "value_from": float(np.nanmean(start)),
                    "value_to": float(np.nanmean(end)),
                    "change": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "n": n,
                }
            )
        return pd.DataFrame(rows)

    def decay_difference(
        self, reference: str, k_from: int = 1, k_to: int | None = None, n_boot: int = 1000, seed: int = 0
    ) -> pd.DataFrame:
        """Does a system's curve decay slower than ``reference``'s? Paired over files, per metric.

        For every other system: the mean over files of ``Δ_system − Δ_reference``, where Δ is the change from
        ``k_from`` to ``k_to`` on the same file, with a bootstrap CI. Positive means the system loses less
        (or gains more) than the reference for higher-is-better metrics.
        """
        k_to = self.k_max if k_to is None else k_to
        systems = list(dict.fromkeys(self.curves["system"]))
        if reference not in systems:
            raise KeyError(f"decay_difference: reference {reference!r} is not among the systems {systems}")
        wide = self.curves[self.curves["k"].isin([k_from, k_to])].pivot_table(
            index=["metric", "file_id"], columns=["system", "k"], values="value", aggfunc="first"
        )
        rows = []
        for system in systems:
            if system == reference:
                continue
            delta = (wide[(system, k_to)] - wide[(system, k_from)]) - (
                wide[(reference, k_to)] - wide[(reference, k_from)]
            )
            for metric, values in delta.groupby(level="metric", sort=False):
                mean, low, high, n = mean_ci(values.to_numpy(), n_boot, seed)
                rows.append(
                    {
                        "system": system,
                        "reference": reference,
                        "metric": metric,
                        "k_from": k_from,
                        "k_to": k_to,
                        "difference": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "n": n,
                    }
                )
        return pd.DataFrame(rows)


def run_self_consistency(
    systems: Mapping[str, SEModel],
    items: Iterable[Item],
    k_max: int = 5,
    metrics: Sequence[str] = ("pesq_wb", "si_sdr", "dnsmos_ovrl"),
    with_harmonicity: bool = True,
    n_files: int | None = None,
    keep_examples: int = 1,
    sample_rate: int = 16000,
    scorer: Scorer | None = None,
    enhancer: Enhancer = enhance_once,
    progress: bool = True,
) -> SelfConsistency:
    """Enhance each file ``k_max`` times with every system and score every step against the clean reference.

    Args:
        systems: label (the training objective, e.g. ``baseline``, ``mal-frozen``) → model.
        items: ``(noisy (1, T), clean (1, T), meta)``.
        k_max: number of passes K.
        metrics: names for ``scorer`` (e.g. ``pesq_wb``, ``si_sdr``, ``dnsmos_ovrl``).
        with_harmonicity: add ``hnr_db`` and ``spectral_flatness`` (:func:`~mal.analysis.harmonicity.harmonicity`).
        n_files: stop after this many items (``None``: all).
        keep_examples: keep the audio at k = 1 and K of this many files for spectrogram panels.
        sample_rate: Hz.
        scorer: default ``mal.metrics.score``.
        enhancer: ``enhancer(model, wav (1, T)) → (1, T)``.
        progress: show a tqdm bar.
    """
    if not systems:
        raise ValueError("run_self_consistency: give at least one system")
    scorer = scorer or (default_scorer() if metrics else None)
    for model in systems.values():
        model.eval()
    rows: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for meta, noisy, clean in checked_items(items, n_files, "self-consistency", progress):
        noisy_scores = _measure(scorer, clean, noisy, metrics, with_harmonicity, sample_rate)
        example = None
        if len(examples) < keep_examples:
            example = {"file_id": meta["file_id"], "clean": _np(clean), "noisy": _np(noisy), "outputs": {}}
            examples.append(example)
        for label, model in systems.items():
            rows += [{**meta, "system": label, "k": 0, "metric": m, "value": v} for m, v in noisy_scores.items()]
            outputs = iterate_enhancement(model, noisy, k_max, enhancer)
            for k, est in enumerate(outputs, start=1):
                scores = _measure(scorer, clean, est, metrics, with_harmonicity, sample_rate)
                rows += [{**meta, "system": label, "k": k, "metric": m, "value": v} for m, v in scores.items()]
            if example is not None:
                example["outputs"][label] = {1: _np(outputs[0]), k_max: _np(outputs[-1])}
    if not rows:
        raise ValueError("run_self_consistency: the dataset yielded no items")
    return SelfConsistency(pd.DataFrame(rows), examples, k_max, sample_rate)


def _measure(
    scorer: Scorer | None,
    clean: torch.Tensor,
    estimate: torch.Tensor,
    metrics: Sequence[str],
    with_harmonicity: bool,
    sample_rate: int,
) -> dict[str, float]:
    scores = score_pair(scorer, clean, estimate, metrics, sample_rate) if metrics else {}
    if with_harmonicity:
        h = harmonicity(estimate, clean, sample_rate)
        scores.update(hnr_db=h.hnr_db, spectral_flatness=h.spectral_flatness)
    return scores


def _np(wav: torch.Tensor) -> np.ndarray:
    return wav.reshape(-1).detach().cpu().numpy().astype(np.float32)
