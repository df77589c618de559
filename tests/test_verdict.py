"""The study's verdict: primary system chosen on validation, step-size ratios, readings of paired differences."""

from __future__ import annotations

import json
import math

import pytest

from mal.config import ConfigError
from mal.plan import StudyPlan
from mal.verdict import reading, step_sizes, validation_choice, verdict_section

SYSTEMS = {
    "b-baseline": {"arch": "bandcrn", "recipe": "conventional"},
    "b-mal-frozen": {"arch": "bandcrn", "recipe": "mal-frozen"},
    "b-mal-all": {"arch": "bandcrn", "recipe": "mal-frozen-all"},
    "b-lossnet": {"arch": "bandcrn", "recipe": "lossnet"},
    "b-mal-random": {"arch": "bandcrn", "recipe": "mal-random-encoder"},
}
# run → (valid PESQ-WB, grad norm, weight change); seeds 0 and 1.
RUNS = {
    "b-baseline": (2.30, 1.0, 0.010),
    "b-baseline-s1": (2.32, 1.0, 0.012),
    "b-mal-frozen": (2.36, 1.05, 0.011),
    "b-mal-frozen-s1": (2.30, 0.95, 0.011),  # mean 2.33
    "b-mal-all": (2.34, 2.0, 0.022),
    "b-mal-all-s1": (2.35, 2.0, 0.022),  # mean 2.345: the best MAL system on validation
    "b-lossnet": (2.50, 1.0, 0.011),  # best of all, but not a MAL system
    "b-lossnet-s1": (2.50, 1.0, 0.011),
    # b-mal-random has not finished: left out, not counted as 0
}


@pytest.fixture
def plan(tmp_path) -> StudyPlan:
    plan = StudyPlan.for_profile(
        "quick",
        runs_root=str(tmp_path / "runs"),
        seeds=[0, 1],
        systems=SYSTEMS,
        compare={name: "b-baseline" for name in ("b-mal-frozen", "b-mal-all", "b-lossnet", "b-mal-random")},
        contrasts={"b-mal-all": "b-mal-random"},
    )
    for run, (valid, grad, moved) in RUNS.items():
        plan.run_dir(run).mkdir(parents=True)
        summary = {"valid": {"pesq_wb": valid}, "grad_norm_mean": grad, "weight_change": moved}
        (plan.run_dir(run) / "summary.json").write_text(json.dumps(summary))
    return plan


def test_primary_system_is_the_best_mal_system_on_validation(plan) -> None:
    from mal.verdict import run_summaries

    chosen, rows = validation_choice(plan, run_summaries(plan))
    assert chosen == "b-mal-all"  # lossnet validates higher but is not MAL; mal-random has no runs yet
    assert [r["system"] for r in rows] == ["b-mal-all", "b-mal-frozen"]
    assert rows[0]["valid"] == pytest.approx(2.345) and rows[0]["seeds"] == 2


def test_step_sizes_are_relative_to_the_baseline(plan) -> None:
    from mal.verdict import run_summaries

    rows = {r["system"]: r for r in step_sizes(plan, run_summaries(plan))}
    assert rows["b-baseline"]["grad_norm_ratio"] == pytest.approx(1.0)
    assert rows["b-mal-frozen"]["grad_norm_ratio"] == pytest.approx(1.0)
    assert rows["b-mal-all"]["grad_norm_ratio"] == pytest.approx(2.0)
    assert rows["b-mal-all"]["weight_change_ratio"] == pytest.approx(0.022 / 0.011)
    assert "b-mal-random" not in rows


@pytest.mark.parametrize(
    ("lo", "hi", "word"),
    [(0.01, 0.05, "better"), (-0.05, -0.01, "worse"), (-0.01, 0.02, "not resolved"), (math.nan, 1.0, "n/a")],
)
def test_a_difference_is_read_from_its_interval(lo, hi, word) -> None:
    assert reading({"mean_diff": 0.0, "ci_low": lo, "ci_high": hi}) == word


def test_verdict_names_the_primary_difference_and_every_pair(plan) -> None:
    def record(a, b, mean, lo, hi, dataset="in-domain"):
        return {
            "system_a": a,
            "system_b": b,
            "metric": "pesq_wb",
            "dataset": dataset,
            "mean_diff": mean,
            "ci_low": lo,
            "ci_high": hi,
            "n_files": 240,
            "n_seeds": 2,
        }

    records = [
        record("b-mal-all", "b-baseline", -0.02, -0.03, -0.01),
        record("b-mal-frozen", "b-baseline", 0.01, -0.01, 0.03),
        record("b-mal-all", "b-mal-random", 0.004, -0.002, 0.01),
    ]
    lines, facts = verdict_section(plan, records, ["in-domain", "out-of-domain"])
    text = "\n".join(lines)
    assert "chosen on validation: `b-mal-all` (2.345" in text
    assert "`b-mal-all` − `b-baseline`: **-0.020 [-0.030, -0.010] worse** (2 seed(s), 240" in text
    assert "| b-mal-all − b-mal-random | control | +0.004 [-0.002, +0.010] not resolved | n/a |" in text
    assert "| b-mal-all | 2 | 2.000 | 2.00 | 2.200 | 2.00 |" in text
    assert facts["primary"]["system"] == "b-mal-all" and facts["primary"]["difference"]["mean_diff"] == -0.02


def test_contrasts_must_name_systems(tmp_path) -> None:
    with pytest.raises(ConfigError, match="contrasts.*not a system"):
        StudyPlan.for_profile("quick", runs_root=str(tmp_path), contrasts={"bandcrn-mal-all": "nope"})


def test_mos_step_scores_the_baseline_and_the_system_chosen_on_validation(plan) -> None:
    from mal.pipeline import mos_step
    from mal.plan import build_steps

    steps = build_steps(plan)
    assert mos_step(plan.replace(mos={}), steps) is None  # no MOS step unless the plan asks for one
    step = mos_step(plan.replace(mos={"metrics": ["dnsmos_ovrl"], "baselines": ["noisy"]}), steps)
    assert step is not None and step.name == "mos" and step.notebook == "04_cross_dataset_evaluation"
    assert set(step.params["checkpoints"]) == {"b-baseline", "b-mal-all"} == set(step.deps)
    assert step.params["checkpoints"]["b-mal-all"] == str(plan.checkpoint("b-mal-all"))  # the study seed's run
    assert (step.params["mal_system"], step.params["baseline_system"]) == ("b-mal-all", "b-baseline")
    assert step.params["metrics"] == ["dnsmos_ovrl"] and step.params["baselines"] == ["noisy"]
    assert step.run_dir == plan.run_dir("mos")
