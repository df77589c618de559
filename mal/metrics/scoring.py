"""``score()``: every metric of one (reference, estimate) pair, NaN with a reason where undefined."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from mal.config import ConfigBase, ConfigError
from mal.metrics import intrusive, nonintrusive
from mal.metrics import loizou as _composite
from mal.metrics.inputs import SILENCE_PEAK, MetricUndefined, Pair, check_sample_rate, prepare_pair

# The public names, in table order (docs/method.md, "Contracts"). Nothing else appears in a metric column.
METRIC_NAMES: tuple[str, ...] = (
    "pesq_wb",
    "pesq_nb",
    "stoi",
    "estoi",
    "si_sdr",
    "ssnr",
    "csig",
    "cbak",
    "covl",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_ovrl",
    "dnsmos_p808",
    "distillmos",
)
# Metrics that need weights the user supplies; never part of the defaults.
OPTIONAL_METRICS: tuple[str, ...] = ("nisqa",)
INTRUSIVE: frozenset[str] = frozenset({"pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "ssnr", "csig", "cbak", "covl"})
HIGHER_IS_BETTER: dict[str, bool] = {m: True for m in (*METRIC_NAMES, *OPTIONAL_METRICS)}
DNSMOS_METRICS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")
COMPOSITE_METRICS = ("csig", "cbak", "covl")


@dataclasses.dataclass
class MetricOptions(ConfigBase):
    """Settings of the metric suite that are not the metric list itself."""

    length_tolerance_s: float = 0.1  # larger reference/estimate length differences are NaN (mispaired files)
    nisqa_weights: str = ""  # local path of NISQA weights (nisqa.tar); "" skips NISQA with a reason

    def validate(self) -> None:
        if self.length_tolerance_s < 0:
            raise ConfigError(f"MetricOptions.length_tolerance_s must be >= 0, got {self.length_tolerance_s}")


def default_metrics(sample_rate: int = 16000) -> list[str]:
    """Metrics defined at this rate: everything but narrow-band PESQ at 16 kHz; the intrusive ones bar
    wide-band PESQ at 8 kHz (the MOS models need 16 kHz)."""
    sr = check_sample_rate(sample_rate)
    if sr == 16000:
        return [m for m in METRIC_NAMES if m != "pesq_nb"]
    return [m for m in METRIC_NAMES if m in INTRUSIVE and m != "pesq_wb"]


def resolve_metrics(metrics: Sequence[str] | None, sample_rate: int = 16000) -> list[str]:
    """Validate a metric list (``None`` → :func:`default_metrics`); unknown names raise ``ValueError``."""
    if metrics is None:
        return default_metrics(sample_rate)
    if isinstance(metrics, str):
        metrics = [metrics]
    known = (*METRIC_NAMES, *OPTIONAL_METRICS)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known metrics are {list(known)}")
    return list(dict.fromkeys(metrics))


class _PairScorer:
    """Computes the requested metrics of one checked pair, sharing work between them (PESQ once, composite
    once, one DNSMOS pass for its four outputs) and turning ``MetricUndefined`` into reasons."""

    def __init__(self, pair: Pair, options: MetricOptions) -> None:
        self.pair = pair
        self.options = options
        self._memo: dict[str, object] = {}

    def _once(self, key: str, fn: Callable[[], object]) -> object:
        if key not in self._memo:
            try:
                self._memo[key] = fn()
            except MetricUndefined as err:
                self._memo[key] = err
        result = self._memo[key]
        if isinstance(result, MetricUndefined):
            raise result
        return result

    def _pesq(self, mode: str) -> float:
        p = self.pair
        return self._once(f"pesq_{mode}", lambda: intrusive.pesq(p.clean, p.estimate, p.sample_rate, mode))

    def _composite(self) -> _composite.CompositeScores:
        p = self.pair

        def run() -> _composite.CompositeScores:
            native = "wb" if p.sample_rate == 16000 else "nb"
            try:
                pesq_value = self._pesq(native)
            except MetricUndefined as err:
                raise MetricUndefined(f"composite measure needs PESQ: {err}") from err
            return _composite.composite(p.clean, p.estimate, p.sample_rate, pesq_score=pesq_value)

        return self._once("composite", run)

    def value(self, name: str) -> float:
        p = self.pair
        if name in INTRUSIVE and p.clean_silent:
            raise MetricUndefined(f"silent reference (peak < {SILENCE_PEAK:g}): intrusive metrics are undefined")
        if name == "pesq_wb":
            return self._pesq("wb")
        if name == "pesq_nb":
            return self._pesq("nb")
        if name == "stoi":
            return intrusive.stoi(p.clean, p.estimate, p.sample_rate, extended=False)
        if name == "estoi":
            return intrusive.stoi(p.clean, p.estimate, p.sample_rate, extended=True)
        if name == "si_sdr":
            return intrusive.si_sdr(p.estimate, p.clean)
        if name == "ssnr":
            if "composite" in self._memo and not isinstance(self._memo["composite"], MetricUndefined):
                return self._memo["composite"].segsnr
            return _composite.segmental_snr(p.clean, p.estimate, p.sample_rate)
        if name in COMPOSITE_METRICS:
            return getattr(self._composite(), name)
        if name in DNSMOS_METRICS:
            return self._once("dnsmos", lambda: nonintrusive.dnsmos(p.estimate, p.sample_rate))[name]
        if name == "distillmos":
            return nonintrusive.distillmos(p.estimate, p.sample_rate)
        if name == "nisqa":
            return nonintrusive.nisqa(p.estimate, p.sample_rate, self.options.nisqa_weights)
        raise ValueError(f"unknown metric {name!r}")


SIGNIFICANT_DIGITS = 10


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """Round to ``digits`` significant digits.

    numpy's SIMD reductions (inside pystoi, for one) round the last bits differently depending on where the
    allocator put an array, which differs between processes. Ten significant digits are far below any metric's
    resolution and make serial and multi-process scoring give identical tables.
    """
    return float(f"{value:.{digits}g}")


def score_with_reasons(
    clean: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    sample_rate: int = 16000,
    metrics: Sequence[str] | None = None,
    options: MetricOptions | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Score ``estimate`` against ``clean``; return ``(values, reasons)``.

    Args:
        clean, estimate: mono audio ``(T,)`` or ``(1, T)``, numpy or torch, float in [-1, 1] or integer PCM.
            Lengths are aligned by the rule in :mod:`mal.metrics.inputs`.
        sample_rate: 16000 (or 8000 for narrow-band PESQ and the other intrusive metrics).
        metrics: names from :data:`METRIC_NAMES` (plus ``"nisqa"``); ``None`` → :func:`default_metrics`.
            Heavy models (DNSMOS, DistillMOS) are loaded only when asked for.
        options: :class:`MetricOptions` (length tolerance, NISQA weights).

    Returns:
        ``values``: metric → float rounded to 10 significant digits (:func:`round_significant`), NaN where
        undefined; ``reasons``: metric → why it is NaN (only NaN ones).

    Raises:
        ValueError: unknown metric name or unsupported ``sample_rate`` (caller errors, not file problems).
    """
    sr = check_sample_rate(sample_rate)
    names = resolve_metrics(metrics, sr)
    options = options or MetricOptions()
    values = {m: math.nan for m in names}
    reasons: dict[str, str] = {}
    try:
        pair = prepare_pair(clean, estimate, sr, options.length_tolerance_s)
    except MetricUndefined as err:
        return values, {m: str(err) for m in names}
    if pair.estimate_silent:
        why = f"silent estimate (peak < {SILENCE_PEAK:g}): quality of silence is undefined"
        return values, {m: why for m in names}
    scorer = _PairScorer(pair, options)
    for name in names:
        try:
            value = float(scorer.value(name))
        except MetricUndefined as err:
            reasons[name] = str(err)
            continue
        if math.isfinite(value):
            values[name] = round_significant(value)
        else:  # guard: no metric may leak inf/NaN without a reason
            reasons[name] = f"{name} evaluated to {value}"
    return values, reasons


def score(
    clean: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    sample_rate: int = 16000,
    metrics: Sequence[str] | None = None,
    options: MetricOptions | None = None,
) -> dict[str, float]:
    """Like :func:`score_with_reasons`, values only (metric → float, NaN where undefined)."""
    return score_with_reasons(clean, estimate, sample_rate, metrics, options)[0]
