"""Ablation sweeps: a study (:mod:`mal.plan`) whose systems are the points of a grid, trained with notebook 02.

A sweep file (``configs/sweeps/<name>.yaml``) names a study profile and the points::

    name: quick_mal_variants
    study: quick                       # configs/pipeline/quick.yaml: its train, warm-up and stage-2 settings
    arch: specmask                     # the architecture (one of the study's warm-ups) every point branches from
    base: {}                           # TrainConfig fields every point sets (dotted names)
    grid: {recipe: [mal-frozen, mal-frozen-fe, mal-dynamic], loss.mal_layers: [bottleneck, all]}
    points: [{name: baseline, recipe: conventional}]    # extra hand-written points
    cores: 2

The sweep becomes a :class:`~mal.plan.StudyPlan` with one system per point, so its warm-up and its branches
are built by the same rules as the pipeline's (:func:`mal.plan.training_steps`): one shared warm-up, then every
point as a stage-2 branch of it (same checkpoint, optimiser state, schedule and batches). ``warmup_checkpoint``
instead branches every point from a warm-up trained elsewhere (e.g. by the pipeline). Points run several at once
while their threads fit in ``cores`` (:func:`mal.runner.run_steps`), and a point whose notebook and parameters did
not change since its last successful run is skipped. Every run's ``summary.json`` becomes one row of
``<output_dir>/<name>/results.csv`` (nested keys joined with ``.``), the warm-up included.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from mal.config import ConfigBase, ConfigError, flatten
from mal.io import atomic_write_text
from mal.plan import StudyPlan, training_steps
from mal.runner import Step, StepOutcome, run_steps

# Fields the sweep sets itself.
RESERVED = ("arch", "run_dir", "stage", "init_checkpoint")


@dataclasses.dataclass
class SweepConfig(ConfigBase):
    """A grid of stage-2 systems over one study's warm-up (see the module docstring)."""

    name: str = "sweep"  # the sweep's folder under output_dir
    study: str = "quick"  # study profile (configs/pipeline/<study>.yaml) whose training settings the sweep uses
    arch: str = "specmask"  # the study's warm-up every point branches from
    notebook_dir: str = ""  # folder of notebook 02; empty: the repository's notebooks/
    output_dir: str = "runs/sweeps"  # points write to <output_dir>/<name>/<point>
    base: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig fields every point sets
    warmup_checkpoint: str = ""  # branch every point from this existing warm-up checkpoint (its last.pt)
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # field → values (cartesian product)
    points: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # extra points; optional "name" key
    cores: int = 2  # CPU cores the runs are packed onto

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ConfigError(f"SweepConfig.name {self.name!r}: use letters, digits, '.', '_' and '-' only")
        empty = [k for k, v in self.grid.items() if not v]
        if empty:
            raise ConfigError(f"SweepConfig.grid: {empty} have no values")
        if not self.grid and not self.points:
            raise ConfigError("SweepConfig: give a grid or a list of points; there is nothing to run")
        if self.cores < 1:
            raise ConfigError("SweepConfig.cores must be >= 1")
        reserved = set(RESERVED) & ({*self.base, *self.grid} | {k for p in self.points for k in p})
        if reserved:
            raise ConfigError(f"SweepConfig: {sorted(reserved)} are set by the sweep itself; remove them")

    @property
    def root(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_plan(self) -> StudyPlan:
        """The sweep as a study: the named study's training settings, one system per point, nothing else."""
        study = StudyPlan.for_profile(self.study)
        if self.arch not in study.warmup:
            raise ConfigError(f"SweepConfig.arch {self.arch!r} is not a warm-up of study {self.study!r}")
        systems = {name: {"arch": self.arch, **self.base, **point} for name, point in expand_points(self)}
        return study.replace(
            profile=self.name,
            runs_root=self.output_dir,
            cores=self.cores,
            warmup={self.arch: study.warmup[self.arch]},
            systems=systems,
            compare={},
            contrasts={},  # the study's control pairs name systems a sweep does not train
            seeds=[],  # one run per point: the study's stage-2 seeds would multiply every point
            deep_feature_backbones=[],
        )


def _slug(value: Any) -> str:
    text = "_".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def expand_points(cfg: SweepConfig) -> list[tuple[str, dict[str, Any]]]:
    """Every point as ``(name, fields)``: the grid's cartesian product, then the explicit points.

    A grid point is named from its values (``recipe=mal-frozen__loss.mal_layers=all``); an explicit point by its
    ``name`` key, else ``point<i>``. Names are unique (a clash raises).
    """
    out: list[tuple[str, dict[str, Any]]] = []
    keys = list(cfg.grid)
    for values in itertools.product(*(cfg.grid[k] for k in keys)) if keys else ():
        point = dict(zip(keys, values, strict=True))
        out.append(("__".join(f"{k}={_slug(v)}" for k, v in point.items()), point))
    for i, point in enumerate(cfg.points):
        point = dict(point)
        name = _slug(point.pop("name", f"point{i}"))
        out.append((name, point))
    names = [n for n, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1 or n.startswith("warmup-")})
    if dupes:
        raise ConfigError(f"sweep {cfg.name!r}: point names {dupes} are not unique or not usable")
    return out


def build_steps(cfg: SweepConfig) -> list[Step]:
    """The notebook executions of the sweep: the warm-up (unless ``warmup_checkpoint``), then every point."""
    folder = Path(cfg.notebook_dir) if cfg.notebook_dir else None
    steps = training_steps(cfg.to_plan(), notebook_dir=folder)
    if not cfg.warmup_checkpoint:
        return steps
    branches = [s for s in steps if s.params["stage"] == "stage2"]
    for step in branches:
        step.params["init_checkpoint"] = cfg.warmup_checkpoint
        step.deps = ()
    return branches


def _cells(mapping: dict[str, Any]) -> dict[str, Any]:
    """Flat table cells: nested keys joined with ``.``, lists as JSON strings."""
    return {k: json.dumps(v) if isinstance(v, list | tuple | dict) else v for k, v in flatten(mapping).items()}


def collect(steps: list[Step]) -> pd.DataFrame:
    """One row per finished step: ``point``, its parameters (``param.<name>``) and its flattened summary."""
    rows = []
    for step in steps:
        if not step.summary_path.is_file():
            continue
        summary = json.loads(step.summary_path.read_text())
        summary.pop("params", None)  # the sweep's own copy below is the authoritative one
        row = {"point": step.name, **{f"param.{k}": v for k, v in _cells(step.params).items()}}
        row.update(_cells(summary))
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
