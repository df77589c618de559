"""Notebook 04 (cross-dataset evaluation) as library calls: its config, and the tables and summary it shows.

The engine is :func:`mal.evaluate.run_evaluation`; the statistics are :mod:`mal.stats`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mal.config import ConfigBase, ConfigError
from mal.evaluate import DatasetSpec, EvalConfig, EvalResult, SystemSpec
from mal.plan import DEFAULT_BASELINE, DEFAULT_MAL, default_checkpoints, default_corpus_root
from mal.stats import improvement_table


def _default_eval_datasets() -> dict[str, str]:
    return {"in-domain": "test", "out-of-domain": "test_ood", "reverberant": "test_reverb"}


@dataclasses.dataclass
class CrossDatasetConfig(ConfigBase):
    """Parameters of notebooks/04_cross_dataset_evaluation.ipynb."""

    run_dir: str = "runs/04_cross_dataset_evaluation"  # config.yaml, summary.json, tables/, figures/
    data_root: str = dataclasses.field(default_factory=default_corpus_root)  # corpus plain split names refer to
    datasets: dict[str, str] = dataclasses.field(default_factory=_default_eval_datasets)  # label: split or L:ROOT:S
    checkpoints: dict[str, str] = dataclasses.field(default_factory=default_checkpoints)  # label: counted checkpoint
    baselines: str = "noisy,spectral-gating"  # non-learned systems, comma-separated
    metrics: str = ""  # comma-separated metric names; "" = every default metric
    delta_metrics: str = "pesq_wb,si_sdr,dnsmos_ovrl"  # metrics of the Δ-over-noisy table
    max_files: int = 0  # first N files per dataset (0 = all)
    workers: int = 2  # scoring processes
    mal_system: str = DEFAULT_MAL  # MAL checkpoint label of the paired comparison
    baseline_system: str = DEFAULT_BASELINE  # the system MAL is compared with
    plot_kind: str = "box"  # box | violin
    n_boot: int = 2000  # bootstrap resamples
    seed: int = 0  # bootstrap seed
    device: str = ""  # model device; "" = CUDA when available
    listen_files: int = 3  # files per dataset whose audio is kept for listening
    metric_cache: str = ""  # SQLite memo of metric values (share it with the pipeline); "" = tables/metric_cache.sqlite
    interactive: bool = False  # build the ipywidgets A/B player

    def validate(self) -> None:
        if self.plot_kind not in ("box", "violin"):
            raise ConfigError(f"CrossDatasetConfig.plot_kind must be 'box' or 'violin', got {self.plot_kind!r}")
        if not self.datasets:
            raise ConfigError("CrossDatasetConfig.datasets is empty")
        from mal.metrics import resolve_metrics

        for field in ("metrics", "delta_metrics"):
            try:
                resolve_metrics(_split(getattr(self, field)) or None)
            except ValueError as err:
                raise ConfigError(f"CrossDatasetConfig.{field}: {err}") from err
        self.eval_config()  # every system and dataset spec must be valid too

    def dataset_specs(self) -> list[DatasetSpec]:
        specs = []
        for label, where in self.datasets.items():
            if ":" in where:  # LOADER:ROOT:SPLIT for corpora other than the mal-offline one at data_root
                loader, _, rest = where.partition(":")
                root, _, split = rest.rpartition(":") if rest.count(":") else (rest, "", "")
                specs.append(DatasetSpec(label, loader, root, split, self.max_files))
            else:
                specs.append(DatasetSpec(label, "mal-offline", self.data_root, where, self.max_files))
        return specs

    def system_specs(self) -> list[SystemSpec]:
        systems = [SystemSpec(b, b) for b in _split(self.baselines)]
        return systems + [SystemSpec(label, "checkpoint", path) for label, path in self.checkpoints.items()]

    def eval_config(self) -> EvalConfig:
        return EvalConfig.from_params(
            systems=[s.to_dict() for s in self.system_specs()],
            datasets=[d.to_dict() for d in self.dataset_specs()],
            metrics=_split(self.metrics),
            workers=self.workers,
            out_dir=str(Path(self.run_dir) / "tables"),
            audio_examples=self.listen_files,
            cache_path=self.metric_cache,
            n_boot=self.n_boot,
            seed=self.seed,
            device=self.device,
        )

    def delta_metric_list(self) -> list[str]:
        return _split(self.delta_metrics)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


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
        "systems": [s.name for s in cfg.systems],
        "datasets": {
            d.name: {"domain": d.resolved_domain(), "loader": d.loader, "split": d.split} for d in cfg.datasets
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
