"""The pipeline's step graph, its skip/rerun plan, and a reproducible end-to-end smoke study."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mal.config import ConfigError
from mal.evaluate import load_result
from mal.pipeline import _training_section, paired_table, run_pipeline, seeded_per_file
from mal.plan import StudyPlan, build_steps
from mal.runner import fingerprints
from mal.stats import hierarchical_paired_difference, paired_difference
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
    # ...and the stage-2 schedule the study declares (a constant rate after the warm-up's cosine), re-matched to
    # the conventional gradient every 25 steps; the warm-up's settings are its own.
    stage2 = TrainConfig.from_parameters({k: v for k, v in sys.params.items() if k != "if_exists"})
    assert (stage2.optim.schedule, stage2.optim.lr, stage2.steps, stage2.calibrate_every) == ("constant", 2e-4, 400, 25)
    assert warm.params.get("lr") == 0.002 and stage2.optim.lr_warmup_steps == 100  # the ramp is long over by step 1200
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
    # One study seed for the corpus, the warm-up and the statistics; stage 2 runs every system at seeds 0, 1, 2.
    assert {s.params["seed"] for n, s in steps.items() if n in ("corpus", "warmup-bandcrn", "evaluation")} == {cfg.seed}
    assert {steps[f"bandcrn-mal-all{sfx}"].params["seed"] for sfx in ("", "-s1", "-s2")} == {0, 1, 2}
    roots = {s.params.get("data_root", s.params.get("corpus_root")) for s in steps.values()}
    assert roots == {str(cfg.corpus_root)}


def test_seeds_grid_runs_every_system_per_seed_from_one_warmup(tmp_path) -> None:
    systems = {
        "specmask-baseline": {"arch": "specmask", "recipe": "conventional"},
        "specmask-frozen-encoder": {"arch": "specmask", "recipe": "conventional-frozen-encoder"},
        "specmask-mal-random": {"arch": "specmask", "recipe": "mal-random-encoder"},
    }
    cfg = _quick(tmp_path, seeds=[0, 1, 2], systems=systems, compare={}, contrasts={}, warmup={"specmask": {}})
    runs = cfg.system_runs()
    assert runs["specmask-baseline"] == ("specmask-baseline", 0)  # the study seed keeps the unseeded folder
    assert runs["specmask-mal-random-s2"] == ("specmask-mal-random", 2)
    assert len(runs) == 9 and list(cfg.warmups()) == ["warmup-specmask"]  # one warm-up: seeds vary stage 2 only
    steps = {s.name: s for s in build_steps(cfg)}
    for name, (label, seed) in runs.items():
        step = steps[name]
        assert step.params["seed"] == seed and step.params["run_dir"] == str(cfg.run_dir(name))
        assert step.params["init_checkpoint"] == str(cfg.checkpoint("warmup-specmask")) and step.deps == (
            "warmup-specmask",
        )
        assert step.params["recipe"] == systems[label]["recipe"]
    assert set(runs) <= set(steps["evaluation"].params["checkpoints"])
    control = cfg.training_config("specmask-frozen-encoder-s1")
    assert control.freeze_encoder and control.seed == 1 and control.stage == "stage2"
    # Without seeds, a study's runs are its systems.
    assert list(_quick(tmp_path, seeds=[]).system_runs()) == list(_quick(tmp_path).all_systems())


def test_results_pair_within_seeds_and_show_step_sizes(tmp_path) -> None:
    systems = {"specmask-baseline": {"arch": "specmask"}, "specmask-mal": {"arch": "specmask", "recipe": "mal-frozen"}}
    cfg = _quick(tmp_path, seeds=[0, 1], systems=systems, compare={}, contrasts={}, warmup={"specmask": {}})
    rows = []
    for run, gain in (("specmask-mal", 0.05), ("specmask-mal-s1", -0.03), ("specmask-baseline", 0.0)):
        rows += [(run, "in", f"f{i}", "pesq_wb", 2.0 + gain + 0.01 * (i % 3)) for i in range(30)]
    rows += [("specmask-baseline-s1", "in", f"f{i}", "pesq_wb", 2.0 + 0.01 * (i % 3)) for i in range(30)]
    rows += [("noisy", "in", f"f{i}", "pesq_wb", 1.2) for i in range(30)]
    per_file = pd.DataFrame(rows, columns=["system", "dataset", "file", "metric", "value"])
    seeded = seeded_per_file(per_file, cfg.system_runs())
    assert set(seeded["system"]) == set(systems) and sorted(set(seeded["seed"])) == [0, 1]
    table, records = paired_table(seeded, [("specmask-mal", "specmask-baseline")], ["in"], n_boot=300, seed=0)
    (record,) = records
    assert record["n_seeds"] == 2 and record["n_files"] == 60 and record["mean_diff"] == pytest.approx(0.01)
    assert record["ci_low"] < 0 < record["ci_high"]  # the seeds disagree: not resolved
    assert table.splitlines()[0].endswith("| files | seeds |") and table.splitlines()[-1].endswith("| 60 | 2 |")
    # The training table shows every seed's run with its gradient norm and weight change.
    for run in ("specmask-mal", "specmask-mal-s1"):
        summary = {"grad_norm_mean": 0.75, "weight_change": 0.012, "weight_change_encoder": 0.01}
        cfg.run_dir(run).mkdir(parents=True)
        (cfg.run_dir(run) / "summary.json").write_text(json.dumps(summary))
    lines = [line for line in _training_section(cfg) if line.startswith("| specmask-mal")]
    assert [line.split(" | ")[0] for line in lines] == ["| specmask-mal", "| specmask-mal-s1"]
    assert "| 0.750 | 1.200 (1.000, n/a) |" in lines[1]


def test_changed_parameter_reruns_only_what_depends_on_it(tmp_path) -> None:
    cfg = _quick(tmp_path)
    before = fingerprints(build_steps(cfg))
    systems = {**cfg.systems, "bandcrn-mal-all": {**cfg.systems["bandcrn-mal-all"], "calibrate.mal": 2.0}}
    after = fingerprints(build_steps(cfg.replace(systems=systems)))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"bandcrn-mal-all", "bandcrn-mal-all-s1", "bandcrn-mal-all-s2", "analysis", "evaluation"}
    warm = fingerprints(build_steps(cfg.replace(warmup={**cfg.warmup, "bandcrn": {"optim.lr": 3e-4}})))
    changed = {name for name in before if before[name] != warm[name]}
    # The warm-up, every branch of it, the analysis (the warm-up's encoder is its judge) and the evaluation.
    assert changed == {n for n in before if n not in ("corpus", "lossnet")}


def test_corpus_step_names_the_sources_it_builds(tmp_path, monkeypatch) -> None:
    from mal.data import corpus

    cfg = _quick(tmp_path)
    steps = build_steps(cfg)
    assert steps[0].params["sources"] == list(corpus.PROFILE_SOURCES["quick"])
    # Naming the profile's own sources is the same study; a new default source in the profile reruns every step.
    named = cfg.replace(corpus={**cfg.corpus, "sources": list(corpus.PROFILE_SOURCES["quick"])})
    assert fingerprints(build_steps(named)) == fingerprints(steps)
    monkeypatch.setitem(corpus.PROFILE_SOURCES, "quick", corpus.PROFILE_SOURCES["quick"][:-1])
    shrunk = fingerprints(build_steps(cfg))
    assert all(shrunk[name] != fp for name, fp in fingerprints(steps).items())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"systems": {"x": {"arch": "convtasnet"}}}, "must name a warm-up"),
        ({"systems": {"analysis": {"arch": "bandcrn"}}}, "not a usable system label"),
        ({"compare": {"nope": "bandcrn-baseline"}}, "not a system"),
        ({"cores": 0}, "cores"),
        ({"warmup": {}}, "at least one architecture"),
        ({"systems": {"x": {"arch": "bandcrn", "recipe": "mal"}}}, "unknown recipe"),
        ({"seeds": [0, 0]}, "distinct seeds"),
        (
            {
                "seeds": [0, 1],
                "systems": {"a": {"arch": "bandcrn"}, "a-s1": {"arch": "bandcrn"}},
                "compare": {},
                "contrasts": {},
            },
            "twice",
        ),
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
        facts = json.loads((cfg.study_dir / "results.json").read_text())
        paired = facts["paired"]
        assert paired and all(p["n_files"] > 0 and p["n_seeds"] == 2 for p in paired)
        # The verdict: a primary system chosen on validation among the MAL systems, the control pair, step sizes.
        assert "## Verdict" in text and "| mal-all − mal-random | control |" in text
        assert facts["primary"]["system"] in ("mal-all", "mal-random")
        assert {r["system"] for r in facts["step_sizes"]} == set(cfg.systems)
        # The MOS step scored the baseline and the chosen system only (first file of each test set).
        mos = pd.read_csv(cfg.study_dir / "mos" / "tables" / "summary.csv")
        assert set(mos["system"]) == {"noisy", "baseline", facts["primary"]["system"]}
        assert set(mos["metric"]) == {"dnsmos_ovrl"} and "## Non-intrusive MOS" in text
    pd.testing.assert_frame_equal(tables[0], tables[1])
    # The tiny study's own per-file table, made to disagree between its 2 seeds: the seed-then-file interval
    # widens, the file-only one (which pools 2 seeds × files as if they were independent files) does not.
    per_file = seeded_per_file(load_result(cfg.study_dir / "evaluation" / "tables").per_file, cfg.system_runs())
    rows = per_file["system"].eq("mal-all") & per_file["metric"].eq("pesq_wb")
    shifted = per_file.assign(value=per_file["value"] + rows * per_file["seed"].map({0: 0.3, 1: -0.3}))
    widths = {}
    for name, fn in (("files", paired_difference), ("seeds", hierarchical_paired_difference)):
        d = fn(shifted, "mal-all", "baseline", "pesq_wb", n_boot=500, seed=0)
        widths[name] = d["ci_high"] - d["ci_low"]
    assert widths["seeds"] > 1.4 * widths["files"]
    assert set(tables[0]["system"]) >= {"noisy", "spectral-gating", "warmup-specmask", "baseline", "mal-all"}
    # A second run over complete outputs skips every step.
    timing = run_pipeline(cfg) and json.loads((cfg.study_dir / "pipeline.json").read_text())
    assert {s["status"] for s in timing["steps"].values()} == {"skipped"}
