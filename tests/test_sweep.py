"""Sweeps: grid expansion, the shared warm-up wiring, and a real papermill sweep on a tiny stand-in notebook."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from mal.config import ConfigError
from mal.sweep import SweepConfig, build_steps, expand_points, flatten, run_sweep

REPO = Path(__file__).resolve().parents[1]


def test_grid_and_points_expand_with_readable_unique_names() -> None:
    cfg = SweepConfig.from_params(
        {
            "name": "s",
            "grid": {"mal_variant": ["frozen", "frozen-fe"], "mal_layers": ["all", [0, -1]]},
            "points": [{"name": "baseline", "recipe": "conventional"}, {"recipe": "deep_feature"}],
        }
    )
    points = expand_points(cfg)
    assert [n for n, _ in points] == [
        "mal_variant=frozen__mal_layers=all",
        "mal_variant=frozen__mal_layers=0_-1",
        "mal_variant=frozen-fe__mal_layers=all",
        "mal_variant=frozen-fe__mal_layers=0_-1",
        "baseline",
        "point1",
    ]
    assert points[1][1] == {"mal_variant": "frozen", "mal_layers": [0, -1]}
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
        {
            "name": "s",
            "output_dir": str(tmp_path),
            "base": {"recipe": "mal", "steps": 5},
            "warmup": {"recipe": "conventional", "steps": 9},
            "grid": {"mal_variant": ["frozen", "dynamic"]},
            "threads": 1,
        }
    )
    warm, *points = build_steps(cfg)
    assert warm.name == "warmup" and warm.deps == ()
    assert warm.params == {"recipe": "conventional", "steps": 9, "stage": "warmup", "threads": 1}
    for step in points:
        assert step.deps == ("warmup",) and step.run_dir.parent == tmp_path / "s"
        assert step.params["stage"] == "stage2" and step.params["steps"] == 5
        assert step.params["init_checkpoint"] == str(tmp_path / "s" / "warmup" / "checkpoints" / "last.pt")
    reuse = cfg.replace(warmup={}, warmup_checkpoint="w/last.pt")
    steps = build_steps(reuse)
    assert [s.name for s in steps] == ["mal_variant=frozen", "mal_variant=dynamic"]
    assert all(s.params["init_checkpoint"] == "w/last.pt" and not s.deps for s in steps)


def test_flatten_joins_nested_keys() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2]}) == {"a.b": 1, "a.c.d": 2, "e": "[1, 2]"}


# A stand-in for 02_training with the same contract (parameters cell, summary.json in run_dir), fast to execute.
STAND_IN = [
    "import json, pathlib",
    'run_dir = "x"  # where to write\nthreads = 1  # threads\nstage = "warmup"  # stage\n'
    'init_checkpoint = ""  # warm-up\nlr = 0.1  # lr\nlayers = "all"  # layers',
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
    nbformat.write(nb, tmp_path / "stand_in.ipynb")
    cfg = SweepConfig.from_params(
        {
            "name": "grid",
            "notebook": "stand_in",
            "notebook_dir": str(tmp_path),
            "output_dir": str(tmp_path / "runs"),
            "warmup": {"lr": 0.5},
            "grid": {"lr": [0.1, 0.2], "layers": ["all", "bottleneck"]},
            "cores": 2,
            "threads": 1,
        }
    )
    table = run_sweep(cfg, cwd=tmp_path)
    assert len(table) == 5
    on_disk = pd.read_csv(tmp_path / "runs" / "grid" / "results.csv")
    assert list(on_disk["point"]) == list(table["point"])
    row = on_disk.set_index("point").loc["lr=0.2__layers=bottleneck"]
    assert row["valid.pesq_wb"] == pytest.approx(2.0) and row["param.layers"] == "bottleneck"
    assert row["stage"] == "stage2" and on_disk.set_index("point").loc["warmup", "valid.pesq_wb"] == pytest.approx(5)
    # Unchanged points are not executed again.
    stamps = {p: (tmp_path / "runs" / "grid" / p / "step.json").stat().st_mtime_ns for p in table["point"]}
    run_sweep(cfg, cwd=tmp_path)
    assert stamps == {p: (tmp_path / "runs" / "grid" / p / "step.json").stat().st_mtime_ns for p in table["point"]}
    assert SweepConfig.load(tmp_path / "runs" / "grid" / "sweep.yaml") == cfg


def test_named_sweeps_load_and_reference_existing_configs() -> None:
    for path in sorted((REPO / "configs" / "sweeps").glob("*.yaml")):
        cfg = SweepConfig.load(path)
        for step in build_steps(cfg):
            assert (REPO / step.params["base_config"]).is_file(), (path, step.name)
