"""Sweeps: grid expansion, the shared warm-up wiring, and a real papermill sweep on a tiny stand-in notebook."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from mal.config import ConfigError
from mal.plan import StudyPlan
from mal.plan import build_steps as build_pipeline_steps
from mal.sweep import SweepConfig, _cells, build_steps, expand_points, run_sweep

REPO = Path(__file__).resolve().parents[1]


def test_grid_and_points_expand_with_readable_unique_names() -> None:
    cfg = SweepConfig.from_params(
        {
            "name": "s",
            "grid": {"recipe": ["mal-frozen", "mal-frozen-fe"], "loss.mal_layers": ["all", [0, -1]]},
            "points": [{"name": "baseline", "recipe": "conventional"}, {"recipe": "lossnet"}],
        }
    )
    points = expand_points(cfg)
    assert [n for n, _ in points] == [
        "recipe=mal-frozen__loss.mal_layers=all",
        "recipe=mal-frozen__loss.mal_layers=0_-1",
        "recipe=mal-frozen-fe__loss.mal_layers=all",
        "recipe=mal-frozen-fe__loss.mal_layers=0_-1",
        "baseline",
        "point1",
    ]
    assert points[1][1] == {"recipe": "mal-frozen", "loss.mal_layers": [0, -1]}
    assert points[4][1] == {"recipe": "conventional"}
    clash = SweepConfig.from_params({"name": "s", "points": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ConfigError, match="not unique"):
        expand_points(clash)
    with pytest.raises(ConfigError, match="set by the sweep"):
        SweepConfig.from_params({"name": "s", "grid": {"run_dir": ["x"]}})
    with pytest.raises(ConfigError, match="nothing to run"):
        SweepConfig.from_params({"name": "s"})


def test_points_branch_from_the_shared_warmup(tmp_path: Path) -> None:
    cfg = SweepConfig.from_params(
        {"name": "s", "study": "smoke", "output_dir": str(tmp_path), "grid": {"recipe": ["mal-frozen", "mal-dynamic"]}}
    )
    warm, *points = build_steps(cfg)
    assert warm.name == "warmup-specmask" and warm.deps == () and warm.params["stage"] == "warmup"
    for step in points:
        assert step.deps == ("warmup-specmask",) and step.run_dir.parent == tmp_path / "s"
        assert step.params["stage"] == "stage2" and step.params["steps"] == 3
        assert step.params["init_checkpoint"] == str(tmp_path / "s" / "warmup-specmask" / "checkpoints" / "last.pt")
        # The branch continues the warm-up's model and data (the smoke study's tiny specmask).
        assert step.params["overrides"]["model.hparams.n_fft"] == 128 and step.params["batch_size"] == 2
    steps = build_steps(cfg.replace(warmup_checkpoint="w/last.pt"))
    assert [s.name for s in steps] == ["recipe=mal-frozen", "recipe=mal-dynamic"]
    assert all(s.params["init_checkpoint"] == "w/last.pt" and not s.deps for s in steps)


def test_a_sweep_is_a_study_with_a_grid(tmp_path: Path) -> None:
    """Two systems planned by the pipeline and by a sweep give the same training steps."""
    points = [{"name": "baseline", "recipe": "conventional"}, {"name": "mal-all", "recipe": "mal-frozen-all"}]
    sweep = SweepConfig.from_params({"name": "smoke", "study": "smoke", "output_dir": str(tmp_path), "points": points})
    study = StudyPlan.for_profile(
        "smoke",
        runs_root=str(tmp_path),
        systems={p["name"]: {"arch": "specmask", "recipe": p["recipe"]} for p in points},
        compare={"mal-all": "baseline"},
        contrasts={},
        seeds=[],
        deep_feature_backbones=[],
    )
    piped = [s for s in build_pipeline_steps(study) if s.notebook == "02_training"]
    swept = build_steps(sweep)
    assert [(s.name, s.params, s.run_dir) for s in swept] == [(s.name, s.params, s.run_dir) for s in piped]
    assert [s.deps for s in swept[1:]] == [s.deps for s in piped[1:]] == [("warmup-specmask",)] * 2


def test_table_cells_join_nested_keys() -> None:
    assert _cells({"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2]}) == {"a.b": 1, "a.c.d": 2, "e": "[1, 2]"}


# A stand-in for 02_training with the same contract (parameters cell, summary.json in run_dir), fast to execute.
STAND_IN = [
    "import json, pathlib",
    'run_dir = "x"  # where to write\nthreads = 1  # threads\nstage = "warmup"  # stage\n'
    'init_checkpoint = ""  # warm-up\nlr = 0.1  # lr\nrecipe = "conventional"  # recipe',
    "out = pathlib.Path(run_dir)\n(out / 'checkpoints').mkdir(parents=True, exist_ok=True)\n"
    "(out / 'checkpoints' / 'last.pt').write_text('w')\n"
    "assert stage == 'warmup' or pathlib.Path(init_checkpoint).is_file()\n"
    "(out / 'summary.json').write_text(json.dumps({'valid': {'pesq_wb': lr * 10}, 'stage': stage}))",
]


@pytest.mark.slow
def test_sweep_runs_every_point_once_and_tabulates(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in STAND_IN]
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "02_training.ipynb")
    cfg = SweepConfig.from_params(
        {
            "name": "grid",
            "study": "smoke",
            "notebook_dir": str(tmp_path),
            "output_dir": str(tmp_path / "runs"),
            "grid": {"optim.lr": [0.1, 0.2], "recipe": ["conventional", "mal-frozen"]},
            "cores": 2,
        }
    )
    table = run_sweep(cfg, cwd=tmp_path)
    assert len(table) == 5
    on_disk = pd.read_csv(tmp_path / "runs" / "grid" / "results.csv")
    assert list(on_disk["point"]) == list(table["point"])
    row = on_disk.set_index("point").loc["optim.lr=0.2__recipe=mal-frozen"]
    assert row["valid.pesq_wb"] == pytest.approx(2.0) and row["param.recipe"] == "mal-frozen"
    warm = on_disk.set_index("point").loc["warmup-specmask"]
    assert row["stage"] == "stage2" and warm["valid.pesq_wb"] == pytest.approx(0.01)
    # Unchanged points are not executed again.
    stamps = {p: (tmp_path / "runs" / "grid" / p / "step.json").stat().st_mtime_ns for p in table["point"]}
    run_sweep(cfg, cwd=tmp_path)
    assert stamps == {p: (tmp_path / "runs" / "grid" / p / "step.json").stat().st_mtime_ns for p in table["point"]}
    assert SweepConfig.load(tmp_path / "runs" / "grid" / "sweep.yaml") == cfg


def test_named_sweeps_build_valid_training_configs() -> None:
    for path in sorted((REPO / "configs" / "sweeps").glob("*.yaml")):
        steps = build_steps(SweepConfig.load(path))  # every point's TrainConfig is validated here
        assert steps[0].name.startswith("warmup-") and len(steps) > 2, path
