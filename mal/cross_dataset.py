"""Notebook 04 (cross-dataset evaluation) as library calls: its config, and the tables and summary it shows.

The engine is :func:`mal.evaluate.run_evaluation`; the statistics are :mod:`mal.stats`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from mal.config import ConfigBase, ConfigError
from mal.evaluate import EvalConfig, EvalResult
from mal.plan import DEFAULT_BASELINE, DEFAULT_MAL, default_checkpoints
from mal.stats import improvement_table


def _notebook_evaluation() -> EvalConfig:
    """What notebook 04 evaluates when run on its own: the default study's systems on every test split, keeping
    the audio of 3 files per dataset for the listening widget."""
    return EvalConfig(
        datasets={"in-domain": "test", "out-of-domain": "test_ood", "reverberant": "test_reverb"},
        checkpoints=default_checkpoints(),
        audio_examples=3,
    )


@dataclasses.dataclass
class CrossDatasetConfig(ConfigBase):
    """Notebook 04: an evaluation (:class:`mal.evaluate.EvalConfig`, where its settings live) and how to show it."""

    # Notebook 04's parameters: flat name → field; other EvalConfig fields travel in ``overrides``.
    PARAMETERS: ClassVar[dict[str, str]] = {
        "run_dir": "run_dir",
        "data_root": "evaluation.data_root",
        "datasets": "evaluation.datasets",
        "checkpoints": "evaluation.checkpoints",
        "baselines": "evaluation.baselines",
        "metrics": "evaluation.metrics",
        "delta_metrics": "delta_metrics",
        "max_files": "evaluation.max_files",
        "workers": "evaluation.workers",
        "mal_system": "mal_system",
        "baseline_system": "baseline_system",
        "plot_kind": "plot_kind",
        "n_boot": "evaluation.n_boot",
        "seed": "evaluation.seed",
        "device": "evaluation.device",
        "listen_files": "evaluation.audio_examples",
        "metric_cache": "evaluation.cache_path",
        "interactive": "interactive",
    }

    run_dir: str = "runs/04_cross_dataset_evaluation"  # config.yaml, summary.json, tables/, figures/
    evaluation: EvalConfig = dataclasses.field(default_factory=_notebook_evaluation)  # tables go to run_dir/tables
    delta_metrics: list[str] = dataclasses.field(default_factory=lambda: ["pesq_wb", "si_sdr", "dnsmos_ovrl"])
    mal_system: str = DEFAULT_MAL  # MAL checkpoint label of the paired comparison
    baseline_system: str = DEFAULT_BASELINE  # the system MAL is compared with
    plot_kind: Literal["box", "violin"] = "box"  # distribution plots
    interactive: bool = False  # build the ipywidgets A/B player

    def validate(self) -> None:
        from mal.metrics import resolve_metrics

        if not self.evaluation.datasets:
            raise ConfigError("CrossDatasetConfig: evaluation.datasets is empty")
        try:
            resolve_metrics(self.delta_metrics or None)
        except ValueError as err:
            raise ConfigError(f"CrossDatasetConfig.delta_metrics: {err}") from err

    def eval_config(self) -> EvalConfig:
        """The evaluation, writing its tables to ``<run_dir>/tables``."""
        return self.evaluation.replace(out_dir=str(Path(self.run_dir) / "tables"))


def format_summary(
    summary: pd.DataFrame, domain: str | None = None, metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """A readable table: rows dataset × system, columns metrics, cells ``mean [ci_low, ci_high]`` (n files)."""
    s = summary if domain is None else summary[summary["domain"] == domain]
    if metrics is not None:
        s = s[s["metric"].isin(metrics)]
    if s.empty:
        return pd.DataFrame()

    def cell(r: pd.Series) -> str:
        if not np.isfinite(r["mean"]):
            return "n/a"
        ci = f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if np.isfinite(r["ci_low"]) else ""
        return f"{r['mean']:.2f}{ci} (n={int(r['n_files'])})"

    s = s.assign(cell=s.apply(cell, axis=1))
    table = s.pivot_table(index=["dataset", "system"], columns="metric", values="cell", aggfunc="first", sort=False)
    order = [m for m in dict.fromkeys(s["metric"])]
    return table[order]


def mal_vs_baseline(
    per_file: pd.DataFrame, mal_system: str, baseline_system: str, metrics: Sequence[str] | None = None,
    n_boot: int = 2000, seed: int = 0,
) -> pd.DataFrame:  # fmt: skip
    """Paired ``MAL − baseline`` per dataset and metric; empty (with a note in ``reason``) when either is missing."""
    present = set(per_file["system"])
    missing = [s for s in (mal_system, baseline_system) if s not in present]
    if missing:
        return pd.DataFrame([{"reason": f"system(s) {missing} not evaluated; systems are {sorted(present)}"}])
    return improvement_table(per_file, baseline_system, metrics, [mal_system], n_boot=n_boot, seed=seed)


def write_notebook_summary(
    path: str | Path, result: EvalResult, improvements: pd.DataFrame, comparison: pd.DataFrame
) -> Path:
    """Record the headline numbers of notebook 04 as JSON (atomic): the summary table, Δ over noisy and MAL vs
    baseline, plus what was evaluated."""
    from mal.io import atomic_write_json

    cfg = result.config
    payload = {
        "systems": [s.name for s in cfg.system_specs()],
        "datasets": {
            d.name: {"domain": d.resolved_domain(), "loader": d.loader, "split": d.split} for d in cfg.dataset_specs()
        },
        "metrics": list(dict.fromkeys(result.per_file["metric"])),
        "n_files": result.per_file.groupby("dataset")["file"].nunique().to_dict(),
        "summary": json_records(result.summary),
        "improvement_over_noisy": json_records(improvements),
        "mal_vs_baseline": json_records(comparison),
    }
    return atomic_write_json(path, payload)


def json_records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-ready dicts (NaN → None, numpy scalars → Python)."""

    def clean(v: Any) -> Any:
        v = v.item() if hasattr(v, "item") else v
        return None if isinstance(v, float) and not np.isfinite(v) else v

    return [{k: clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
