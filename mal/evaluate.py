"""Evaluate any set of systems on any set of datasets, with per-file rows, bootstrap CIs and paired differences.

Systems (:class:`SystemSpec`):

* ``noisy``: the unprocessed input (the floor every system must beat);
* ``spectral-gating``: ``noisereduce.reduce_noise`` with its defaults (non-stationary gating), the classical
  baseline a practitioner tries first;
* ``oracle-mask``: the bounded magnitude mask computed from the clean reference, with the noisy phase
  (:mod:`mal.oracle`): the ceiling row next to the noisy floor, so a reader sees how much headroom a model takes;
* ``checkpoint``: a trained mal checkpoint, enhanced with :func:`mal.enhance.enhance` (chunked overlap-add for
  files longer than ``chunk_seconds``).

Each dataset file is loaded once and passed through every system; the (clean, estimate) pairs stream into
:func:`mal.metrics.score_many` (``workers`` processes), so enhancement of the next files overlaps scoring.
A file that cannot be loaded or enhanced gives NaN rows carrying the reason; every other row is intact.

Outputs under ``out_dir`` (written atomically): ``per_file.csv`` (tidy: system, dataset, file, metric, value,
reason, plus meta columns such as snr_db/noise_type when the dataset knows them), ``summary.csv`` (mean, 95 %
percentile-bootstrap CI, number of files behind the mean and of NaN files, per system × dataset × metric) and
``config.yaml``. Bootstrap resampling uses a seed derived from (``seed``, system, dataset, metric), so tables are
reproducible and do not depend on the order in which cells are computed.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from mal.config import ConfigBase, ConfigError
from mal.io import atomic_open

SystemKind = Literal["noisy", "spectral-gating", "oracle-mask", "checkpoint"]
META_COLUMNS = ("snr_db", "noise_type", "speaker", "language", "rt60_s", "duration_s")
PER_FILE_COLUMNS = ("system", "dataset", "file", "metric", "value", "reason")
SUMMARY_COLUMNS = ("system", "dataset", "domain", "metric", "mean", "ci_low", "ci_high", "n_files", "n_nan")
SAMPLE_RATE = 16000
# The reference systems every table shows: the floor, the classical baseline, and the oracle ceiling.
DEFAULT_BASELINES = ("noisy", "spectral-gating", "oracle-mask")


@dataclasses.dataclass
class SystemSpec(ConfigBase):
    """One system to evaluate."""

    name: str  # label in every table and figure
    kind: SystemKind = "checkpoint"  # noisy | spectral-gating | oracle-mask | checkpoint
    checkpoint: str = ""  # path of a mal checkpoint (kind "checkpoint" only)

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("SystemSpec.name must not be empty")
        if self.kind == "checkpoint" and not self.checkpoint:
            raise ConfigError(f"SystemSpec {self.name!r}: kind 'checkpoint' needs a checkpoint path")
        if self.kind != "checkpoint" and self.checkpoint:
            raise ConfigError(f"SystemSpec {self.name!r}: kind {self.kind!r} takes no checkpoint")


@dataclasses.dataclass
class DatasetSpec(ConfigBase):
    """One evaluation set: a label and how to open it with :func:`mal.data.open_dataset`."""

    name: str  # label in every table and figure
    loader: str = "mal-offline"  # open_dataset layout name
    root: str = ""  # dataset root folder
    split: str = "test"  # split passed to open_dataset
    max_files: int = 0  # evaluate only the first N files (0 = all)
    domain: str = ""  # "in-domain" / "out-of-domain"; "" infers it (mal-offline train/valid/test = in-domain)

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("DatasetSpec.name must not be empty")
        if self.max_files < 0:
            raise ConfigError(f"DatasetSpec {self.name!r}: max_files must be >= 0, got {self.max_files}")

    def resolved_domain(self) -> str:
        if self.domain:
            return self.domain
        from mal.data.corpus import IN_DOMAIN_SPLITS

        in_domain = self.loader == "mal-offline" and self.split in IN_DOMAIN_SPLITS
        return "in-domain" if in_domain else "out-of-domain"


def _default_systems() -> list[SystemSpec]:
    return [SystemSpec(kind, kind) for kind in DEFAULT_BASELINES]


@dataclasses.dataclass
class EvalConfig(ConfigBase):
    """Everything an evaluation run needs (``python -m mal evaluate --config``)."""

    systems: list[SystemSpec] = dataclasses.field(default_factory=_default_systems)  # systems to compare
    datasets: list[DatasetSpec] = dataclasses.field(default_factory=list)  # evaluation sets
    metrics: list[str] = dataclasses.field(default_factory=list)  # metric names; [] = every default metric
    workers: int = 1  # scoring processes
    out_dir: str = "runs/evaluate"  # per_file.csv, summary.csv, config.yaml (+ audio/) go here
    chunk_seconds: float = 20.0  # checkpoint systems enhance longer files in overlapping chunks
    overlap_seconds: float = 0.5  # cross-faded overlap between chunks
    audio_examples: int = 0  # write enhanced audio of the first N files per dataset (-1: every file)
    n_boot: int = 2000  # bootstrap resamples for every CI
    seed: int = 0  # bootstrap seed
    device: str = ""  # model device; "" = CUDA when available, else CPU
    nisqa_weights: str = ""  # optional NISQA weights (only used when "nisqa" is in metrics)
    cache: bool = True  # reuse metric values of identical audio from earlier runs (mal.metrics.cache)
    cache_path: str = ""  # SQLite file of that memo; "" = <out_dir>/metric_cache.sqlite
    progress: bool = True  # tqdm bar

    def validate(self) -> None:
        from mal.metrics import resolve_metrics

        names = [s.name for s in self.systems]
        if len(set(names)) != len(names):
            raise ConfigError(f"EvalConfig.systems: duplicate names {names}")
        labels = [d.name for d in self.datasets]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"EvalConfig.datasets: duplicate names {labels}")
        if self.workers < 1:
            raise ConfigError(f"EvalConfig.workers must be >= 1, got {self.workers}")
        if self.audio_examples < -1:
            raise ConfigError(f"EvalConfig.audio_examples must be -1 (all), 0 or a count, got {self.audio_examples}")
        if self.n_boot < 100:
            raise ConfigError(f"EvalConfig.n_boot must be >= 100 for a usable CI, got {self.n_boot}")
        if self.chunk_seconds <= self.overlap_seconds or self.overlap_seconds < 0:
            raise ConfigError("EvalConfig: need 0 <= overlap_seconds < chunk_seconds")
        try:
            resolve_metrics(self.metrics or None)
        except ValueError as err:
            raise ConfigError(f"EvalConfig.metrics: {err}") from err


@dataclasses.dataclass
class EvalResult:
    """Tables of one evaluation run (also written to ``out_dir``)."""

    per_file: pd.DataFrame
    summary: pd.DataFrame
    config: EvalConfig
    out_dir: Path

    def paired_difference(self, system_a: str, system_b: str, metric: str, dataset: str | None = None) -> dict:
        return paired_difference(
            self.per_file, system_a, system_b, metric, dataset, n_boot=self.config.n_boot, seed=self.config.seed
        )

    def failures(self) -> dict[tuple[str, str, str], str]:
        """``(system, dataset, file) → reason`` for every file that could not be loaded, enhanced or scored."""
        bad = self.per_file[self.per_file["reason"].astype(str).str.startswith("error")]
        return {(r.system, r.dataset, r.file): r.reason for r in bad.itertuples()}


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def _cell_seed(seed: int, *key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(key).encode())])


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 2000, rng: np.random.Generator | None = None, level: float = 0.95
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of the finite values and its percentile-bootstrap CI (NaN if empty)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math_nan(), math_nan(), math_nan()
    if v.size == 1:
        return float(v[0]), math_nan(), math_nan()
    rng = rng or np.random.default_rng(0)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(v.mean()), float(lo), float(hi)


def math_nan() -> float:
    return float("nan")


def summarise(
    per_file: pd.DataFrame, by: Sequence[str] = (), n_boot: int = 2000, seed: int = 0, domains: dict | None = None
) -> pd.DataFrame:
    """Mean, 95 % bootstrap CI, ``n_files`` (finite values) and ``n_nan`` per system × dataset × metric
    (× the extra columns ``by``, e.g. ``("snr_db",)`` for per-SNR curves)."""
    keys = ["system", "dataset", "metric", *by]
    rows = []
    for key, group in per_file.groupby(keys, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=float)
        mean, lo, hi = bootstrap_ci(values, n_boot, _cell_seed(seed, *map(str, key)))
        finite = int(np.isfinite(values).sum())
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
        per_file: the tidy per-file table.
        dataset: restrict to one dataset label (``None``: all datasets, files paired by (dataset, file)).

    Returns:
        ``{"system_a", "system_b", "metric", "dataset", "mean_diff", "ci_low", "ci_high", "n_files"}``; a CI that
        excludes 0 means the difference is unlikely to be resampling noise.
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
    mean, lo, hi = bootstrap_ci(diff, n_boot, _cell_seed(seed, system_a, system_b, metric, str(dataset)))
    return {
        "system_a": system_a,
        "system_b": system_b,
        "metric": metric,
        "dataset": dataset if dataset is not None else "all",
        "mean_diff": mean,
        "ci_low": lo,
        "ci_high": hi,
        "n_files": int(np.isfinite(diff).sum()),
    }


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
    return pd.DataFrame(
        rows, columns=["system_a", "system_b", "metric", "dataset", "mean_diff", "ci_low", "ci_high", "n_files"]
    )


# ---------------------------------------------------------------------------------------------------------------
# Systems


class _System:
    """Callable ``(noisy (1, T), clean (1, T)) → estimate (1, T)`` for one :class:`SystemSpec` (only the oracle
    reads ``clean``)."""

    def __init__(self, spec: SystemSpec, cfg: EvalConfig, device: torch.device) -> None:
        self.spec = spec
        self.cfg = cfg
        self.device = device
        self.model = None
        if spec.kind == "checkpoint":
            from mal.models import load

            self.model = load(spec.checkpoint, map_location=device).to(device).eval()
        self.source = spec.checkpoint or spec.name

    def __call__(self, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        if self.spec.kind == "noisy":
            return noisy
        if self.spec.kind == "oracle-mask":
            from mal.oracle import oracle_mask_estimate

            return oracle_mask_estimate(noisy, clean)
        if self.spec.kind == "spectral-gating":
            import noisereduce

            out = noisereduce.reduce_noise(y=noisy.reshape(-1).cpu().numpy(), sr=SAMPLE_RATE)
            return torch.from_numpy(np.asarray(out, dtype=np.float32))[None]
        from mal.enhance import enhance

        out = enhance(self.model, noisy, self.cfg.chunk_seconds, self.cfg.overlap_seconds, self.device, self.source)
        return out.cpu()


def _safe_name(file_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in file_id)


# ---------------------------------------------------------------------------------------------------------------
# Running


def run_evaluation(cfg: EvalConfig) -> EvalResult:
    """Run ``cfg`` and write its tables; see the module docstring."""
    from mal.data import open_dataset
    from mal.device import resolve_device
    from mal.metrics import MetricOptions, resolve_metrics, score_many

    if not cfg.datasets:
        raise ConfigError("EvalConfig.datasets is empty: give at least one dataset to evaluate on")
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(out_dir / "config.yaml")
    metrics = resolve_metrics(cfg.metrics or None)
    device = resolve_device(cfg.device)
    systems = [_System(s, cfg, device) for s in cfg.systems]  # load every checkpoint before any work
    opened = [(d, open_dataset(d.loader, d.root, d.split)) for d in cfg.datasets]

    tasks: list[tuple[str, str, str, dict[str, Any]]] = []  # index → (system, dataset, file, meta)
    failed: dict[int, str] = {}  # task index → reason (load or enhancement failure)

    def pairs() -> Iterator[tuple[str, Any, Any]]:
        for spec, ds in opened:
            n = len(ds) if spec.max_files == 0 else min(spec.max_files, len(ds))
            for i in range(n):
                meta = ds.meta(i)
                file_id = str(meta["id"])
                try:
                    noisy, clean, _ = ds[i]
                    load_error = None
                except Exception as err:  # a corrupt file fails its own rows only
                    noisy = clean = None
                    load_error = f"error loading {file_id}: {type(err).__name__}: {err}"
                for system in systems:
                    index = len(tasks)
                    tasks.append((system.spec.name, spec.name, file_id, meta))
                    if load_error is not None:
                        failed[index] = load_error
                        continue
                    try:
                        estimate = system(noisy, clean)
                    except Exception as err:
                        failed[index] = f"error enhancing with {system.spec.name}: {type(err).__name__}: {err}"
                        continue
                    if cfg.audio_examples < 0 or i < cfg.audio_examples:
                        _write_example(out_dir, spec.name, system.spec.name, file_id, estimate, noisy, clean)
                    yield str(index), clean, estimate

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*file\\(s\\) failed to score.*")
        scored = score_many(
            pairs(),
            metrics,
            workers=cfg.workers,
            progress=cfg.progress,
            options=MetricOptions(nisqa_weights=cfg.nisqa_weights),
            desc="evaluating",
            cache=(cfg.cache_path or out_dir / "metric_cache.sqlite") if cfg.cache else None,
        )
    per_file = _assemble(scored, tasks, failed, metrics)
    domains = {d.name: d.resolved_domain() for d in cfg.datasets}
    summary = summarise(per_file, n_boot=cfg.n_boot, seed=cfg.seed, domains=domains)
    _write_csv(per_file, out_dir / "per_file.csv")
    _write_csv(summary, out_dir / "summary.csv")
    result = EvalResult(per_file=per_file, summary=summary, config=cfg, out_dir=out_dir)
    n_bad = len({file for _, _, file in result.failures()})
    if n_bad:
        warnings.warn(
            f"{n_bad} file(s) could not be loaded, enhanced or scored; see 'reason' in per_file.csv", stacklevel=2
        )
    return result


def _assemble(
    scored: pd.DataFrame, tasks: list[tuple[str, str, str, dict]], failed: dict[int, str], metrics: list[str]
) -> pd.DataFrame:
    rows = []
    scored_by_task = {int(k): g for k, g in scored.groupby("file", sort=False)}
    meta_cols = [c for c in META_COLUMNS if any(c in t[3] for t in tasks)]
    for index, (system, dataset, file_id, meta) in enumerate(tasks):
        extra = [meta.get(c) for c in meta_cols]
        if index in failed:
            rows.extend((system, dataset, file_id, m, np.nan, failed[index], *extra) for m in metrics)
            continue
        for _, r in scored_by_task[index].iterrows():
            rows.append((system, dataset, file_id, r["metric"], r["value"], r["reason"], *extra))
    table = pd.DataFrame(rows, columns=[*PER_FILE_COLUMNS, *meta_cols])
    table["value"] = table["value"].astype(float)
    return table


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)


def _write_example(
    out_dir: Path, dataset: str, system: str, file_id: str, estimate: torch.Tensor, noisy, clean
) -> None:
    from mal.audio import write_audio

    folder = out_dir / "audio" / _safe_name(dataset)
    stem = _safe_name(file_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipping notices: the float subtype does not clip
        write_audio(folder / _safe_name(system) / f"{stem}.wav", estimate, SAMPLE_RATE, subtype="FLOAT")
        for name, wav in (("_clean", clean), ("_noisy", noisy)):
            path = folder / name / f"{stem}.wav"
            if not path.exists():
                write_audio(path, wav, SAMPLE_RATE, subtype="FLOAT")


def evaluate(
    systems: Sequence[SystemSpec | dict[str, Any]],
    datasets: Sequence[DatasetSpec | dict[str, Any]],
    metrics: Sequence[str] | None = None,
    workers: int = 1,
    out_dir: str | Path = "runs/evaluate",
    **options: Any,
) -> EvalResult:
    """Evaluate ``systems`` on ``datasets``; ``options`` are further :class:`EvalConfig` fields.

    Example::

        result = evaluate(
            [SystemSpec("noisy", "noisy"), SystemSpec("mal", "checkpoint", "runs/mal/last.pt")],
            [DatasetSpec("in-domain", "mal-offline", "data/corpora/quick", "test")],
            metrics=["pesq_wb", "si_sdr"], workers=2, out_dir="runs/eval")
        result.summary; result.paired_difference("mal", "noisy", "pesq_wb")
    """
    cfg = EvalConfig.from_params(
        systems=[s.to_dict() if isinstance(s, SystemSpec) else dict(s) for s in systems],
        datasets=[d.to_dict() if isinstance(d, DatasetSpec) else dict(d) for d in datasets],
        metrics=list(metrics or []),
        workers=workers,
        out_dir=str(out_dir),
        **options,
    )
    return run_evaluation(cfg)


def load_result(out_dir: str | Path) -> EvalResult:
    """Read a finished run's tables back from ``out_dir``."""
    out_dir = Path(out_dir)
    for name in ("per_file.csv", "summary.csv", "config.yaml"):
        if not (out_dir / name).is_file():
            raise FileNotFoundError(f"{out_dir / name}: missing; is {out_dir} an evaluation output folder?")
    per_file = pd.read_csv(out_dir / "per_file.csv", keep_default_na=False, na_values=[""])
    per_file["reason"] = per_file["reason"].fillna("")
    summary = pd.read_csv(out_dir / "summary.csv")
    return EvalResult(
        per_file=per_file, summary=summary, config=EvalConfig.load(out_dir / "config.yaml"), out_dir=out_dir
    )


# ---------------------------------------------------------------------------------------------------------------
# Notebook 04: cross-dataset evaluation


def _default_checkpoints() -> dict[str, str]:
    return {
        "warmup": "runs/02_training/warmup/checkpoints/best.pt",
        "baseline": "runs/02_training/baseline/checkpoints/best.pt",
        "mal-frozen": "runs/02_training/mal-frozen/checkpoints/best.pt",
    }


def _default_eval_datasets() -> dict[str, str]:
    return {"in-domain": "test", "out-of-domain": "test_ood", "reverberant": "test_reverb"}


@dataclasses.dataclass
class CrossDatasetConfig(ConfigBase):
    """Parameters of notebooks/04_cross_dataset_evaluation.ipynb."""

    run_dir: str = "runs/04_cross_dataset_evaluation"  # config.yaml, summary.json, tables/, figures/
    data_root: str = "data/corpora/quick"  # mal-offline corpus that plain split names refer to
    datasets: dict[str, str] = dataclasses.field(default_factory=_default_eval_datasets)  # label: split or L:ROOT:S
    checkpoints: dict[str, str] = dataclasses.field(default_factory=_default_checkpoints)  # label: checkpoint path
    baselines: str = ",".join(DEFAULT_BASELINES)  # non-learned systems, comma-separated
    metrics: str = ""  # comma-separated metric names; "" = every default metric
    delta_metrics: str = "pesq_wb,si_sdr,dnsmos_ovrl"  # metrics of the Δ-over-noisy table
    max_files: int = 0  # first N files per dataset (0 = all)
    workers: int = 2  # scoring processes
    mal_system: str = "mal-frozen"  # MAL checkpoint label of the paired comparison
    baseline_system: str = "baseline"  # the system MAL is compared with
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
