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
``config.yaml``. The statistics are :mod:`mal.stats` (a seed per table cell, so tables are reproducible and do
not depend on the order in which cells are computed); notebook 04's config and tables are
:mod:`mal.cross_dataset`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from mal.config import ConfigBase, ConfigError
from mal.io import atomic_open
from mal.plan import default_corpus_root
from mal.stats import paired_difference, summarise

SystemKind = Literal["noisy", "spectral-gating", "oracle-mask", "checkpoint"]
META_COLUMNS = ("snr_db", "noise_type", "speaker", "language", "rt60_s", "duration_s")
PER_FILE_COLUMNS = ("system", "dataset", "file", "metric", "value", "reason")
SUMMARY_COLUMNS = ("system", "dataset", "domain", "metric", "mean", "ci_low", "ci_high", "n_files", "n_nan")
SAMPLE_RATE = 16000


# The reference systems every table shows: the floor, the classical baseline, and the oracle ceiling.
BASELINE_KINDS = ("noisy", "spectral-gating", "oracle-mask")


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """One system to evaluate, as :meth:`EvalConfig.system_specs` resolves it."""

    name: str  # label in every table and figure
    kind: SystemKind = "checkpoint"  # noisy | spectral-gating | oracle-mask | checkpoint
    checkpoint: str = ""  # path of a mal checkpoint (kind "checkpoint" only)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One evaluation set, as :meth:`EvalConfig.dataset_specs` resolves it for :func:`mal.data.open_dataset`."""

    name: str  # label in every table and figure
    loader: str = "mal-offline"  # open_dataset layout name
    root: str = ""  # dataset root folder
    split: str = "test"  # split passed to open_dataset
    max_files: int = 0  # evaluate only the first N files (0 = all)

    def resolved_domain(self) -> str:
        """``in-domain`` for the mal-offline corpus's own splits, ``out-of-domain`` for anything else."""
        from mal.data.corpus import IN_DOMAIN_SPLITS

        in_domain = self.loader == "mal-offline" and self.split in IN_DOMAIN_SPLITS
        return "in-domain" if in_domain else "out-of-domain"


def parse_location(where: str, data_root: str) -> tuple[str, str, str]:
    """Where a dataset is → ``(loader, root, split)``.

    ``"test_ood"`` is a split of the mal-offline corpus at ``data_root``; ``"LOADER:ROOT[:SPLIT]"`` names any
    loader (the root may itself contain ``:`` only when a split follows, e.g. ``folders:C:/data:``).
    """
    if ":" not in where:
        return "mal-offline", data_root, where
    loader, _, location = where.partition(":")
    root, split = location, ""
    head, sep, tail = location.rpartition(":")
    if sep and "/" not in tail and "\\" not in tail:
        root, split = head, tail
    if not loader or not root:
        raise ConfigError(f"dataset location {where!r}: expected a split name or LOADER:ROOT[:SPLIT]")
    return loader, root, split


@dataclasses.dataclass
class EvalConfig(ConfigBase):
    """Everything an evaluation run needs (``python -m mal evaluate``, notebook 04's ``evaluation``)."""

    data_root: str = dataclasses.field(default_factory=default_corpus_root)  # corpus plain split names refer to
    datasets: dict[str, str] = dataclasses.field(default_factory=dict)  # label: split of data_root or L:ROOT[:S]
    checkpoints: dict[str, str] = dataclasses.field(default_factory=dict)  # label: mal checkpoint of a system
    baselines: list[str] = dataclasses.field(default_factory=lambda: list(BASELINE_KINDS))  # non-learned systems
    metrics: list[str] = dataclasses.field(default_factory=list)  # metric names; [] = every default metric
    max_files: int = 0  # evaluate only the first N files of each dataset (0 = all)
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

        unknown = [b for b in self.baselines if b not in BASELINE_KINDS]
        if unknown:
            raise ConfigError(f"EvalConfig.baselines: unknown {unknown}; choose from {list(BASELINE_KINDS)}")
        names = [*self.baselines, *self.checkpoints]
        if len(set(names)) != len(names) or any(not n.strip() for n in names):
            raise ConfigError(f"EvalConfig: system names must be unique and non-empty, got {names}")
        empty = [label for label, path in self.checkpoints.items() if not path.strip()]
        if empty:
            raise ConfigError(f"EvalConfig.checkpoints: {empty} need a checkpoint path")
        for where in self.datasets.values():
            parse_location(where, self.data_root)
        if self.max_files < 0:
            raise ConfigError(f"EvalConfig.max_files must be >= 0, got {self.max_files}")
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

    def system_specs(self) -> list[SystemSpec]:
        """The baselines, then every checkpoint, in order."""
        systems = [SystemSpec(b, b) for b in self.baselines]  # type: ignore[arg-type]  # validated names
        return systems + [SystemSpec(label, "checkpoint", path) for label, path in self.checkpoints.items()]

    def dataset_specs(self) -> list[DatasetSpec]:
        """Every dataset, opened as :func:`parse_location` reads its location."""
        return [
            DatasetSpec(label, *parse_location(w, self.data_root), self.max_files) for label, w in self.datasets.items()
        ]


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
    systems = [_System(s, cfg, device) for s in cfg.system_specs()]  # load every checkpoint before any work
    opened = [(d, open_dataset(d.loader, d.root, d.split)) for d in cfg.dataset_specs()]

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
    domains = {d.name: d.resolved_domain() for d in cfg.dataset_specs()}
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
    datasets: Mapping[str, str],
    checkpoints: Mapping[str, str] | None = None,
    metrics: Sequence[str] | None = None,
    workers: int = 1,
    out_dir: str | Path = "runs/evaluate",
    **options: Any,
) -> EvalResult:
    """Evaluate the baselines and ``checkpoints`` on ``datasets``; ``options`` are further :class:`EvalConfig`
    fields.

    Example::

        result = evaluate(
            {"in-domain": "test", "vbd": "voicebank-demand:/data/vbd:test"},
            {"mal": "runs/quick/bandcrn-mal-all/checkpoints/last.pt"},
            metrics=["pesq_wb", "si_sdr"], workers=2, out_dir="runs/eval")
        result.summary; result.paired_difference("mal", "noisy", "pesq_wb")
    """
    cfg = EvalConfig.from_params(
        datasets=dict(datasets),
        checkpoints=dict(checkpoints or {}),
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
