"""Speech-enhancement metrics with one contract: NaN plus a reason where a value is undefined, never 0.

    values = mal.metrics.score(clean, estimate, sample_rate=16000)            # dict name → float
    values, reasons = mal.metrics.score_with_reasons(clean, estimate)       # + why each NaN is NaN
    table = mal.metrics.score_many(pairs, workers=2)                        # tidy: file, metric, value, reason

Names (:data:`METRIC_NAMES`): ``pesq_wb`` (16 kHz) and ``pesq_nb`` (8 kHz only), ``stoi`` and ``estoi``
(pystoi, labelled apart), ``si_sdr`` (zero-mean, dB), ``ssnr`` (segmental SNR of the composite measure, dB),
``csig`` / ``cbak`` / ``covl`` (Loizou's composite measure, :mod:`mal.metrics.loizou`),
``dnsmos_sig`` / ``dnsmos_bak`` / ``dnsmos_ovrl`` / ``dnsmos_p808`` (speechmos, offline) and ``distillmos``
(offline stand-in for NISQA). ``nisqa`` is optional and needs user weights.

Input rules (shape, int/float scale, length alignment, silence) are in :mod:`mal.metrics.inputs`.
"""

from __future__ import annotations

from mal.metrics.batch import metric_pool, preload, score_many
from mal.metrics.inputs import MetricUndefined, prepare_pair
from mal.metrics.intrusive import pesq, si_sdr, stoi
from mal.metrics.loizou import CompositeScores, composite, segmental_snr
from mal.metrics.nonintrusive import distillmos, dnsmos
from mal.metrics.scoring import (
    HIGHER_IS_BETTER,
    INTRUSIVE,
    METRIC_NAMES,
    OPTIONAL_METRICS,
    MetricOptions,
    default_metrics,
    resolve_metrics,
    score,
    score_with_reasons,
)

__all__ = [
    "HIGHER_IS_BETTER",
    "INTRUSIVE",
    "METRIC_NAMES",
    "OPTIONAL_METRICS",
    "CompositeScores",
    "MetricOptions",
    "MetricUndefined",
    "composite",
    "default_metrics",
    "distillmos",
    "dnsmos",
    "pesq",
    "prepare_pair",
    "resolve_metrics",
    "score",
    "metric_pool",
    "preload",
    "score_many",
    "score_with_reasons",
    "segmental_snr",
    "si_sdr",
    "stoi",
]
