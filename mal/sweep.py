"""Ablation sweeps: run notebook 02 (training) once per point of a parameter grid and tabulate the results.

A sweep file (``configs/sweeps/<name>.yaml``) names notebook parameters::

    name: mal_variants
    notebook: 02_training
    base:   {base_config: configs/quick/train_mal_frozen.yaml}   # every point
    warmup: {base_config: configs/quick/train_warmup.yaml}       # optional shared warm-up, run first
    grid:   {mal_variant: [frozen, frozen-fe, dynamic], mal_layers: [bottleneck, all]}
    points: [{name: baseline, recipe: conventional}]              # extra hand-written points
    cores: 2
    threads: 1

With a ``warmup`` section, the warm-up runs once and every point becomes a stage-2 branch of it
(``stage="stage2"``, ``init_checkpoint=<warm-up>/checkpoints/last.pt``), so all branches share its checkpoint,
optimiser state, schedule and batches (the fair comparison of DESIGN.md §9); ``warmup_checkpoint`` instead
branches every point from a warm-up trained elsewhere (e.g. by the pipeline). Points run several at once
while their ``threads`` fit in ``cores`` (:func:`mal.runner.run_steps`), and a point whose notebook and
parameters did not change since its last successful run is skipped. Every run's ``summary.json`` becomes one
row of ``<output_dir>/<name>/results.csv`` (nested keys joined with ``.``), the warm-up included.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from mal.config import ConfigBase, ConfigError
from mal.io import atomic_write_text
from mal.runner import NOTEBOOK_DIR, Step, StepOutcome, run_steps

WARMUP = "warmup"


@dataclasses.dataclass
class SweepConfig(ConfigBase):
    """A grid of notebook parameters (see the module docstring)."""

    name: str = "sweep"  # the sweep's folder under output_dir
    notebook: str = "02_training"  # notebook stem in notebook_dir
    notebook_dir: str = ""  # folder of the notebook; empty: the repository's notebooks/
    output_dir: str = "runs/sweeps"  # points write to <output_dir>/<name>/<point>
    base: dict[str, Any] = dataclasses.field(default_factory=dict)  # parameters shared by every point
    warmup: dict[str, Any] = dataclasses.field(default_factory=dict)  # shared warm-up run ({} = none)
    warmup_checkpoint: str = ""  # or branch every point from this existing warm-up checkpoint (its last.pt)
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # parameter → values (cartesian product)
    points: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # extra points; optional "name" key
    cores: int = 2  # CPU cores the runs are packed onto
    threads: int = 1  # torch threads per run (passed as the notebook's `threads` parameter)

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ConfigError(f"SweepConfig.name {self.name!r}: use letters, digits, '.', '_' and '-' only")
        empty = [k for k, v in self.grid.items() if not v]
        if empty:
            raise ConfigError(f"SweepConfig.grid: {empty} have no values")
        if not self.grid and not self.points:
            raise ConfigError("SweepConfig: give a grid or a list of points; there is nothing to run")
        if self.warmup and self.warmup_checkpoint:
            raise ConfigError("SweepConfig: give either a warmup section (run one) or warmup_checkpoint (reuse one)")
        if self.cores < 1 or self.threads < 1:
            raise ConfigError("SweepConfig.cores and threads must be >= 1")
        if self.threads > self.cores:
            raise ConfigError(f"SweepConfig.threads={self.threads} exceeds cores={self.cores}")
        reserved = {"run_dir", "threads"} & (
            {*self.base, *self.warmup, *self.grid} | {k for p in self.points for k in p}
        )
        if reserved:
            raise ConfigError(f"SweepConfig: {sorted(reserved)} are set by the sweep itself; remove them")

    @property
    def root(self) -> Path:
        return Path(self.output_dir) / self.name


def _slug(value: Any) -> str:
    text = "_".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def expand_points(cfg: SweepConfig) -> list[tuple[str, dict[str, Any]]]:
    """Every point as ``(name, parameters)``: the grid's cartesian product, then the explicit points.

    A grid point is named from its values (``mal_variant=frozen__mal_layers=all``); an explicit point by its
    ``name`` key, else ``point<i>``. Names are unique (a clash raises).
    """
    out: list[tuple[str, dict[str, Any]]] = []
    keys = list(cfg.grid)
    for values in itertools.product(*(cfg.grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        out.append(("__".join(f"{k}={_slug(v)}" for k, v in point.items()), point))
    for i, point in enumerate(cfg.points):
        point = dict(point)
        name = _slug(point.pop("name", f"point{i}"))
        out.append((name, point))
    names = [n for n, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1} | ({WARMUP} & set(names) if cfg.warmup else set()))
    if dupes:
        raise ConfigError(f"sweep {cfg.name!r}: point names {dupes} are not unique")
    return out


def build_steps(cfg: SweepConfig) -> list[Step]:
    """The notebook executions of the sweep, the warm-up (if any) first and every point depending on it."""
    steps: list[Step] = []
    folder = Path(cfg.notebook_dir) if cfg.notebook_dir else NOTEBOOK_DIR
    deps: tuple[str, ...] = ()
    stage2: dict[str, Any] = {}
    if cfg.warmup:
        warm_dir = cfg.root / WARMUP
        params = {**cfg.base, **cfg.warmup, "stage": "warmup", "threads": cfg.threads}
        params.pop("init_checkpoint", None)
        steps.append(Step(WARMUP, cfg.notebook, params, warm_dir, threads=cfg.threads, notebook_dir=folder))
        deps = (WARMUP,)
        stage2 = {"stage": "stage2", "init_checkpoint": str(warm_dir / "checkpoints" / "last.pt")}
    elif cfg.warmup_checkpoint:
        stage2 = {"stage": "stage2", "init_checkpoint": cfg.warmup_checkpoint}
    for name, point in expand_points(cfg):
        params = {**cfg.base, **point, **stage2, "threads": cfg.threads}
        steps.append(
            Step(name, cfg.notebook, params, cfg.root / name, deps=deps, threads=cfg.threads, notebook_dir=folder)
        )
    return steps


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"valid": {"pesq_wb": 1.6}}`` → ``{"valid.pesq_wb": 1.6}``; lists become JSON strings."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def collect(steps: list[Step]) -> pd.DataFrame:
    """One row per finished step: ``point``, its parameters (``param.<name>``) and its flattened summary."""
    rows = []
    for step in steps:
        if not step.summary_path.is_file():
            continue
        summary = json.loads(step.summary_path.read_text())
        summary.pop("params", None)  # the sweep's own copy below is the authoritative one
        row = {"point": step.name, **{f"param.{k}": v for k, v in flatten(step.params).items()}}
        row.update(flatten(summary))
        rows.append(row)
    return pd.DataFrame(rows)


def run_sweep(cfg: SweepConfig, force: bool = False, cwd: Path | None = None) -> pd.DataFrame:
    """Execute every point (skipping finished, unchanged ones unless ``force``) and write ``results.csv``.

    Returns:
        The results table (also at ``<output_dir>/<name>/results.csv``).
    Raises:
        mal.runner.StepFailed: a point's notebook failed (its executed notebook holds the traceback); the
        table is still written with the points that finished.
    """
    steps = build_steps(cfg)
    cfg.root.mkdir(parents=True, exist_ok=True)
    cfg.save(cfg.root / "sweep.yaml")
    results = cfg.root / "results.csv"

    def write_table(_: StepOutcome | None = None) -> None:
        atomic_write_text(results, collect(steps).to_csv(index=False))

    try:
        run_steps(steps, cores=cfg.cores, force=force, cwd=cwd, on_done=write_table)
    finally:
        write_table()
    return collect(steps)
