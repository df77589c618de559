"""The pipeline's step graph, its skip/rerun plan, and a reproducible end-to-end smoke study."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mal.config import ConfigError
from mal.pipeline import run_pipeline
from mal.plan import StudyPlan, build_steps
from mal.runner import fingerprints
from mal.train import TrainConfig


def _quick(tmp_path: Path, **changes) -> StudyPlan:
    return StudyPlan.for_profile("quick", runs_root=str(tmp_path / "runs"), **changes)


def test_quick_graph_links_every_step(tmp_path) -> None:
    cfg = _quick(tmp_path)
    steps = {s.name: s for s in build_steps(cfg)}
    assert list(steps)[:2] == ["corpus", "lossnet"]
    warm = steps["warmup-bandcrn"]
    assert warm.params["stage"] == "warmup" and warm.params["model"] == "bandcrn" and warm.deps == ("corpus",)
    # A stage-2 system continues its own architecture's warm-up, with the warm-up's model.
    sys = steps["bandcrn-mal-all"]
    assert sys.params["init_checkpoint"] == str(cfg.run_dir("warmup-bandcrn") / "checkpoints" / "last.pt")
    assert sys.params["model"] == "bandcrn" and sys.params["stage"] == "stage2"
    # ...and its peak learning rate, so the cosine continues where the warm-up left it.
    assert sys.params.get("lr") == warm.params.get("lr")
    assert steps["bandcrn-lossnet"].params["overrides"]["loss.lossnet_path"].endswith("lossnet/lossnet.pt")
    # Systems name a recipe preset; the branch's loss is the preset's over the warm-up's conventional terms.
    assert steps["bandcrn-mal-frozen"].params["recipe"] == "mal-frozen"
    frozen = TrainConfig.from_parameters(
        {k: v for k, v in steps["bandcrn-mal-frozen"].params.items() if k != "if_exists"}
    )
    assert (frozen.loss.mal_variant, frozen.loss.mal_layers, frozen.calibrate) == ("frozen", "bottleneck", {"mal": 1.0})
    warm_loss = cfg.training_config("warmup-bandcrn").loss
    for label in ("bandcrn-baseline", "bandcrn-mal-frozen"):
        loss = cfg.training_config(label).loss
        assert (loss.l1, loss.mrstft, loss.spectral, loss.sisdr) == (
            warm_loss.l1,
            warm_loss.mrstft,
            warm_loss.spectral,
            warm_loss.sisdr,
        ), label
    assert "lossnet" in steps["bandcrn-lossnet"].deps
    # Every trained system is evaluated from its last checkpoint (same number of steps for all).
    evaluated = steps["evaluation"].params["checkpoints"]
    assert set(evaluated) == {n for n, s in steps.items() if s.notebook == "02_training"}
    assert all(p.endswith("checkpoints/last.pt") for p in evaluated.values())
    assert set(steps["evaluation"].deps) == set(evaluated)
    # One seed and one corpus for everything.
    assert {s.params["seed"] for s in steps.values()} == {cfg.seed}
    roots = {s.params.get("data_root", s.params.get("corpus_root")) for s in steps.values()}
    assert roots == {str(cfg.corpus_root)}


def test_changed_parameter_reruns_only_what_depends_on_it(tmp_path) -> None:
    cfg = _quick(tmp_path)
    before = fingerprints(build_steps(cfg))
    systems = {**cfg.systems, "bandcrn-mal-all": {**cfg.systems["bandcrn-mal-all"], "calibrate.mal": 2.0}}
    after = fingerprints(build_steps(cfg.replace(systems=systems)))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"bandcrn-mal-all", "analysis", "evaluation"}
    warm = fingerprints(build_steps(cfg.replace(warmup={**cfg.warmup, "bandcrn": {"optim.lr": 3e-4}})))
    changed = {name for name in before if before[name] != warm[name]}
    # The warm-up, every branch of it, the analysis (the warm-up's encoder is its judge) and the evaluation.
    assert changed == {n for n in before if n not in ("corpus", "lossnet")}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"systems": {"x": {"arch": "convtasnet"}}}, "must name a warm-up"),
        ({"systems": {"analysis": {"arch": "bandcrn"}}}, "not a usable system label"),
        ({"compare": {"nope": "bandcrn-baseline"}}, "not a system"),
        ({"cores": 0}, "cores"),
        ({"warmup": {}}, "at least one architecture"),
        ({"systems": {"x": {"arch": "bandcrn", "recipe": "mal"}}}, "unknown recipe"),
    ],
)
def test_bad_pipeline_configs_are_refused(tmp_path, changes, message) -> None:
    with pytest.raises(ConfigError, match=message):
        _quick(tmp_path, **changes)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="quick"):
        StudyPlan.for_profile("nonexistent")


@pytest.mark.slow
def test_smoke_pipeline_is_reproducible(tmp_path, smoke_corpus) -> None:
    """Two runs with the same seed give identical metric tables, and results.md reports them."""
    tables = []
    for name in ("a", "b"):
        cfg = StudyPlan.for_profile("smoke", runs_root=str(tmp_path / name), data_root=str(smoke_corpus))
        results = run_pipeline(cfg)
        text = results.read_text()
        assert "## in-domain" in text and "mal-all − baseline" in text and "## Wall time per step" in text
        assert "(headline.png)" in text and (cfg.study_dir / "headline.png").stat().st_size > 0
        tables.append(pd.read_csv(cfg.study_dir / "evaluation" / "tables" / "summary.csv"))
        paired = json.loads((cfg.study_dir / "results.json").read_text())["paired"]
        assert paired and all(p["n_files"] > 0 for p in paired)
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert set(tables[0]["system"]) >= {"noisy", "spectral-gating", "warmup-specmask", "baseline", "mal-all"}
    # A second run over complete outputs skips every step.
    timing = run_pipeline(cfg) and json.loads((cfg.study_dir / "pipeline.json").read_text())
    assert {s["status"] for s in timing["steps"].values()} == {"skipped"}
