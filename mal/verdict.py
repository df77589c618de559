"""What a study concludes: the primary comparison (chosen on validation), the step sizes it rests on, and a
one-word reading of every paired difference.

The rules, declared here once and shown in ``results.md``:

- **Primary comparison.** Fixed before the study runs (:attr:`StudyPlan.primary_metric` on
  :attr:`StudyPlan.primary_dataset`): the MAL system of ``compare`` with the best *validation* score, averaged
  over its stage-2 seeds, against its baseline. The test sets never choose anything; every other row is
  secondary.
- **Reading a difference.** ``better`` / ``worse`` when the 95 % CI (seeds, then files) excludes 0, otherwise
  ``not resolved``. A difference is only evidence about the loss when the arms took the same step sizes, so the
  step-size table (gradient norm and weight change, relative to the baseline) sits next to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mal.io import read_json_or_empty
from mal.plan import StudyPlan
from mal.training.recipes import load_recipe


def _is_mal(spec: Mapping[str, Any]) -> bool:
    return float(load_recipe(spec.get("recipe", "conventional"))["loss"].get("mal", 0.0)) > 0


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def run_summaries(plan: StudyPlan) -> dict[str, list[dict[str, Any]]]:
    """System label → the ``summary.json`` of each of its stage-2 runs that finished (one per seed)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run, (label, _seed) in plan.system_runs().items():
        summary = read_json_or_empty(plan.run_dir(run) / "summary.json")
        if summary:
            out.setdefault(label, []).append(summary)
    return out


def validation_choice(plan: StudyPlan, summaries: Mapping[str, list[dict[str, Any]]]) -> tuple[str | None, list]:
    """The MAL system of ``compare`` with the best mean final validation ``primary_metric`` over its seeds.

    Returns:
        ``(label or None, rows)``; each row is ``{"system", "valid", "seeds"}`` (mean over seeds, number of
        seeds), best first. Systems without a finite validation score are left out.
    """
    systems = plan.all_systems()
    rows = []
    for label in plan.compare:
        if not _is_mal(systems[label]):
            continue
        scores = [s.get("valid", {}).get(plan.primary_metric, math.nan) for s in summaries.get(label, [])]
        value = _mean(scores)
        if math.isfinite(value):
            rows.append({"system": label, "valid": value, "seeds": len(scores)})
    rows.sort(key=lambda r: -r["valid"])
    return (rows[0]["system"] if rows else None), rows


def step_sizes(plan: StudyPlan, summaries: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per system, means over seeds of the stage's gradient norm and weight change ‖Δθ‖/‖θ‖, and their ratios to
    the system's baseline (its ``compare`` partner, else the same architecture's ``conventional`` system)."""
    systems = plan.all_systems()
    baselines: dict[str, str] = {}  # architecture → its first conventional system (later ones are controls)
    for label, spec in systems.items():
        if spec.get("recipe", "conventional") == "conventional":
            baselines.setdefault(spec["arch"], label)
    means = {
        label: {
            "grad_norm": _mean([s.get("grad_norm_mean", math.nan) for s in runs]),
            "weight_change": _mean([s.get("weight_change", math.nan) for s in runs]),
            "seeds": len(runs),
        }
        for label, runs in summaries.items()
    }
    rows = []
    for label in systems:
        if label not in means:
            continue
        base = plan.compare.get(label) or baselines.get(systems[label]["arch"])
        ref = means.get(base, {})
        row = {"system": label, "baseline": base, **means[label]}
        for key in ("grad_norm", "weight_change"):
            denominator = ref.get(key, math.nan)
            row[f"{key}_ratio"] = row[key] / denominator if denominator and math.isfinite(denominator) else math.nan
        rows.append(row)
    return rows


def reading(record: Mapping[str, Any]) -> str:
    """``better`` / ``worse`` when the CI of ``a − b`` excludes 0, else ``not resolved`` (larger is better)."""
    lo, hi = record.get("ci_low", math.nan), record.get("ci_high", math.nan)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "n/a"
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "not resolved"


def _cell(record: Mapping[str, Any] | None) -> str:
    if not record or not math.isfinite(record.get("mean_diff", math.nan)):
        return "n/a"
    return f"{record['mean_diff']:+.3f} [{record['ci_low']:+.3f}, {record['ci_high']:+.3f}] {reading(record)}"


def verdict_section(
    plan: StudyPlan, records: Sequence[Mapping[str, Any]], datasets: Sequence[str]
) -> tuple[list[str], dict[str, Any]]:
    """The ``## Verdict`` lines of results.md and the same facts as a mapping for results.json.

    Args:
        records: paired differences ``a − b`` (:func:`mal.pipeline.paired_table`'s records) of ``compare`` and
            ``contrasts``, with ``system_a``, ``system_b``, ``metric``, ``dataset``, ``mean_diff``, ``ci_low``,
            ``ci_high``, ``n_files`` and (several seeds) ``n_seeds``.
        datasets: test-set labels, in table order.
    """
    summaries = run_summaries(plan)
    chosen, choice = validation_choice(plan, summaries)
    sizes = step_sizes(plan, summaries)
    index = {(r["system_a"], r["system_b"], r["metric"], r["dataset"]): r for r in records}
    metric, dataset = plan.primary_metric, plan.primary_dataset
    lines = ["## Verdict", ""]
    primary = index.get((chosen, plan.compare.get(chosen), metric, dataset)) if chosen else None
    if primary is None:
        lines += [f"No primary comparison: no MAL system of `compare` has a {metric} difference on {dataset}.", ""]
    else:
        seeds = primary.get("n_seeds", 1)
        lines += [
            f"**Primary comparison** (declared in the study plan before it ran): {metric} on `{dataset}`, the MAL "
            f"system with the best validation {metric} (mean over seeds) against its baseline.",
            "",
            f"- chosen on validation: `{chosen}` ({choice[0]['valid']:.3f}; then "
            + ", ".join(f"`{r['system']}` {r['valid']:.3f}" for r in choice[1:])
            + ")",
            f"- `{chosen}` − `{plan.compare[chosen]}`: **{_cell(primary)}** ({seeds} seed(s), "
            f"{primary['n_files']} seed×file pairs; 95 % CI over seeds, then files)",
            "",
        ]
    header = "| comparison | kind | " + " | ".join(f"Δ {metric} {d}" for d in datasets) + " |"
    lines += [
        f"Every comparison (secondary), Δ {metric} with its 95 % CI and its reading; `compare` rows are against the "
        "baseline, `control` rows isolate one confound:",
        "",
        header,
        "|---" * (len(datasets) + 2) + "|",
    ]
    pairs = [(a, b, "baseline") for a, b in plan.compare.items()]
    pairs += [(a, b, "control") for a, b in plan.contrasts.items()]
    for a, b, kind in pairs:
        cells = [_cell(index.get((a, b, metric, d))) for d in datasets]
        lines.append(f"| {a} − {b} | {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Step sizes over stage 2 (means over seeds; ratio to the baseline). A comparison speaks about the loss only "
        "where both ratios are near 1:",
        "",
        "| system | seeds | grad norm | ratio | Δθ/θ % | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in sizes:
        lines.append(
            f"| {r['system']} | {r['seeds']} | {r['grad_norm']:.3f} | {r['grad_norm_ratio']:.2f} | "
            f"{100 * r['weight_change']:.3f} | {r['weight_change_ratio']:.2f} |"
        )
    lines.append("")
    facts = {
        "primary": {"metric": metric, "dataset": dataset, "system": chosen, "difference": dict(primary or {})},
        "validation_choice": choice,
        "step_sizes": sizes,
    }
    return lines, facts
