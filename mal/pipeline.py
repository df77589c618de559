"""Run a study end to end: corpus → lossnet → warm-ups → stage-2 systems → analysis → evaluation → results.md.

``python -m mal pipeline --profile quick`` (what ``make pipeline`` runs) reads the study plan
``configs/pipeline/<profile>.yaml`` (:class:`mal.plan.StudyPlan`, which also holds the rules that link the steps)
and executes the numbered notebooks with papermill, each into its own folder under ``runs/<profile>/``
(the executed notebook and its HTML copy, readable without Jupyter, are kept there):

=====================================  ====================================================================
step                                   what
=====================================  ====================================================================
``corpus``                             01: build (or verify) the mal-offline corpus
``lossnet``                            05: pretrain the offline deep-feature loss network
``warmup-<arch>``                      02 stage 1: one shared warm-up per architecture
``<system>``                           02 stage 2: every system continues its architecture's warm-up
                                       checkpoint for the same steps, batches and schedule
``analysis``                           03: feature-space correlations and the self-consistency study
``evaluation``                         04: every system on every test set, with CIs and paired differences
=====================================  ====================================================================

Each step is skipped when its outputs exist with the same fingerprint (see :mod:`mal.runner`), so a second
run only redoes what a changed parameter affects; ``--force`` reruns everything. ``results.md`` is then
written from the recorded tables.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd

import mal
from mal.io import atomic_write_json, atomic_write_text, read_json_or_empty
from mal.plan import EVALUATION, MOS, ROOT, StudyPlan, build_steps
from mal.runner import Step, StepOutcome, run_steps
from mal.verdict import verdict_section

# Metrics of the results tables, in column order (names as in mal.metrics).
TABLE_METRICS = ("pesq_wb", "estoi", "si_sdr", "csig", "cbak", "covl", "dnsmos_ovrl", "distillmos")
# Metrics of the paired MAL − baseline comparison, and of its figure (the README's headline).
PAIRED_METRICS = ("pesq_wb", "estoi", "si_sdr", "dnsmos_ovrl")
HEADLINE_METRICS = ("pesq_wb", "si_sdr")
HEADLINE = "headline.png"


def run_pipeline(cfg: StudyPlan, force: bool = False) -> Path:
    """Run (or resume) the study and write ``<study_dir>/results.md``; returns its path."""
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(cfg.study_dir / "pipeline.yaml")
    steps = build_steps(cfg)
    start = time.perf_counter()
    outcomes = run_steps(steps, cores=cfg.cores, force=force, cwd=Path.cwd())
    mos = mos_step(cfg, steps)
    if mos is not None:  # every other step is complete now: only the MOS step runs (or is skipped as done)
        if force:
            (mos.run_dir / "step.json").unlink(missing_ok=True)
        outcomes.append(run_steps([*steps, mos], cores=cfg.cores, cwd=Path.cwd())[-1])
    wall = time.perf_counter() - start
    timing = {
        "wall_seconds": wall,
        "steps": {o.name: {"status": o.status, "seconds": o.seconds} for o in outcomes},
    }
    atomic_write_json(cfg.study_dir / "pipeline.json", timing)
    return write_results(cfg, outcomes, wall)


def mos_step(cfg: StudyPlan, steps: list[Step]) -> Step | None:
    """The MOS step: notebook 04 with ``cfg.mos`` over the evaluation's parameters, on the baseline's and the
    primary MAL system's runs at the study seed (:func:`mal.verdict.validation_choice`, read from the finished
    runs' validation scores); ``None`` without ``cfg.mos`` or a primary system."""
    from mal.cross_dataset import CrossDatasetConfig
    from mal.verdict import run_summaries, validation_choice

    if not cfg.mos:
        return None
    chosen, _ = validation_choice(cfg, run_summaries(cfg))
    if chosen is None:
        return None
    evaluation = next(s for s in steps if s.name == EVALUATION)
    # The runs at the study seed: the systems' unseeded folders, named like the training steps they come from.
    checkpoints = {label: str(cfg.checkpoint(label)) for label in (cfg.compare[chosen], chosen)}
    params = {
        **evaluation.params,
        **cfg.mos,
        "checkpoints": checkpoints,
        "mal_system": chosen,
        "baseline_system": cfg.compare[chosen],
        "run_dir": str(cfg.run_dir(MOS)),
    }
    checked = CrossDatasetConfig.from_parameters(params).to_parameters()
    return Step(MOS, evaluation.notebook, checked, cfg.run_dir(MOS), deps=tuple(checkpoints), threads=cfg.cores)


# ---------------------------------------------------------------------------------------------- results.md


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _fmt(mean: float, lo: float, hi: float, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def metric_table(summary: pd.DataFrame, dataset: str, systems: list[str], metrics: tuple[str, ...]) -> str:
    """Markdown table: one row per system, ``mean [95 % CI]`` per metric, and the number of files."""
    rows = summary[summary["dataset"] == dataset]
    metrics = tuple(m for m in metrics if m in set(rows["metric"]))
    lines = ["| system | " + " | ".join(metrics) + " | files |", "|---" * (len(metrics) + 2) + "|"]
    for system in systems:
        sub = rows[rows["system"] == system].set_index("metric")
        if sub.empty:
            continue
        cells = [_fmt(*sub.loc[m, ["mean", "ci_low", "ci_high"]]) if m in sub.index else "n/a" for m in metrics]
        n = int(sub["n_files"].max())
        lines.append(f"| {system} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines)


def seeded_per_file(per_file: pd.DataFrame, runs: dict[str, tuple[str, int]]) -> pd.DataFrame:
    """The rows of the systems' runs, relabelled by system with a ``seed`` column (``runs``: run → (label, seed),
    :meth:`StudyPlan.system_runs`); rows of anything else (noisy, oracle, warm-ups) are dropped."""
    rows = per_file[per_file["system"].isin(list(runs))]
    labels = rows["system"].map(lambda run: runs[run][0])
    seeds = rows["system"].map(lambda run: runs[run][1])
    return rows.assign(system=labels, seed=seeds)


def paired_table(per_file: pd.DataFrame, pairs: list[tuple[str, str]], datasets: list[str], n_boot: int, seed: int):
    """Markdown table of paired differences ``a − b`` with bootstrap CIs, per dataset and metric.

    With a ``seed`` column (several stage-2 seeds, :func:`seeded_per_file`) the differences are paired within a
    seed and the interval resamples seeds, then files (:func:`mal.stats.hierarchical_paired_difference`).
    """
    from mal.stats import SEED_COLUMN, hierarchical_paired_difference, paired_difference

    seeded = SEED_COLUMN in per_file
    difference = hierarchical_paired_difference if seeded else paired_difference
    metrics = [m for m in PAIRED_METRICS if m in set(per_file["metric"])]
    lines = ["| comparison | dataset | " + " | ".join(f"Δ {m}" for m in metrics) + " | files |"]
    lines[0] += " seeds |" if seeded else ""
    lines.append("|---" * (len(metrics) + 3 + seeded) + "|")
    records = []
    for a, b in pairs:
        for dataset in datasets:
            diffs = [difference(per_file, a, b, m, dataset, n_boot=n_boot, seed=seed) for m in metrics]
            records += diffs
            cells = [_fmt(d["mean_diff"], d["ci_low"], d["ci_high"], 3) for d in diffs]
            n = max((d["n_files"] for d in diffs), default=0)
            line = f"| {a} − {b} | {dataset} | " + " | ".join(cells) + f" | {n} |"
            if seeded:
                line += f" {max((d['n_seeds'] for d in diffs), default=0)} |"
            lines.append(line)
    return "\n".join(lines), records


def write_headline(paired: list[dict[str, Any]], path: Path, label: str) -> Path | None:
    """The README's figure: paired MAL − baseline differences of PESQ-WB and SI-SDR with their CIs (PNG);
    ``None`` when no pair has a finite difference (nothing to draw)."""
    import matplotlib.pyplot as plt

    from mal.plots import save_figure
    from mal.plots.evaluation import plot_paired_differences

    table = pd.DataFrame(paired)
    table = table[table["metric"].isin(HEADLINE_METRICS) & table["mean_diff"].notna()]
    if table.empty:
        return None
    fig = plot_paired_differences(table, title=f"MAL − baseline, paired ({label})")
    save_figure(fig, path.with_suffix(""), formats=("png",), dpi=80)
    plt.close(fig)
    return path


def write_results(cfg: StudyPlan, outcomes: list[StepOutcome], wall: float) -> Path:
    """Assemble ``results.md`` (and ``results.json``) from the tables the notebooks recorded."""
    from mal.evaluate import load_result

    study = cfg.study_dir
    result = load_result(study / "evaluation" / "tables")
    summary, per_file = result.summary, result.per_file
    systems = list(dict.fromkeys(summary["system"]))
    datasets = list(dict.fromkeys(summary["dataset"]))
    pairs = list(cfg.compare.items())
    n_boot, seed = result.config.n_boot, cfg.seed

    out = [f"# Results: `{cfg.profile}` profile", ""]
    if cfg.description:
        out += [cfg.description, ""]
    out += [
        f"Command: `python -m mal pipeline --profile {cfg.profile}` · commit `{_git_commit()}` · seed {cfg.seed} · "
        f"mal {mal.__version__}.",
        "",
        "Cells are means over files with 95 % bootstrap confidence intervals; `files` is the number of files "
        "behind each mean. Every trained system is the `last.pt` of its run: all stage-2 systems continue one "
        "warm-up checkpoint for the same number of steps on the same batches.",
        "",
    ]
    for dataset in datasets:
        out += [f"## {dataset}", "", metric_table(summary, dataset, systems, TABLE_METRICS), ""]
    paired_records: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    if pairs:
        runs = cfg.system_runs()
        n_seeds = len({s for _, s in runs.values()})
        paired_input = seeded_per_file(per_file, runs) if n_seeds > 1 else per_file
        table, paired_records = paired_table(paired_input, pairs, datasets, n_boot, seed)
        contrasts = list(cfg.contrasts.items())
        control_table, control_records = paired_table(paired_input, contrasts, datasets, n_boot, seed)
        seeds_label = f"{n_seeds} stage-2 seeds" if n_seeds > 1 else f"seed {cfg.seed}"
        figure = write_headline(paired_records, study / HEADLINE, f"{cfg.profile} study, {seeds_label}")
        verdict, facts = verdict_section(cfg, paired_records + control_records, datasets)
        out[2:2] = verdict  # right under the title: what held and what did not
        out += [
            "## Paired differences (MAL − baseline)",
            "",
            "Mean per-file difference with a 95 % bootstrap CI; a CI that excludes 0 is a difference the test set "
            "resolves. With several stage-2 seeds, files are paired within a seed and the CI resamples seeds, "
            "then files.",
            "",
            f"![paired differences]({figure.name})" if figure else "No pair has a finite difference to plot.",
            "",
            table,
            "",
        ]
        if contrasts:
            out += ["## Controls (system − control)", "", "Each pair differs in one thing.", "", control_table, ""]
        paired_records += control_records
    missing = [b for b, path in cfg.deep_feature_availability().items() if not path]
    if missing:
        out += [
            f"Deep-feature baselines over {', '.join(missing)} did not run: their pretrained weights are not in the "
            "torch hub cache of this machine (no model hub is reachable here). The offline pretrained loss network "
            "(`lossnet` systems) stands in for them.",
            "",
        ]
    out += _mos_section(cfg, n_boot, seed)
    out += _training_section(cfg)
    out += _analysis_section(study / "analysis")
    out += _timing_section(outcomes, wall)
    out += _figures_section(study)
    path = atomic_write_text(study / "results.md", "\n".join(out) + "\n")
    atomic_write_json(
        study / "results.json",
        {"summary": json.loads(summary.to_json(orient="records")), "paired": paired_records, **facts},
    )
    return path


def _mos_section(cfg: StudyPlan, n_boot: int, seed: int) -> list[str]:
    """The MOS step's table and its paired difference (primary MAL system − baseline, one seed, files resampled)."""
    from mal.evaluate import load_result
    from mal.stats import paired_difference

    tables = cfg.run_dir(MOS) / "tables"
    params = read_json_or_empty(cfg.run_dir(MOS) / "step.json").get("params", {})
    if not (tables / "summary.csv").is_file() or not params:
        return []
    result = load_result(tables)
    metrics = tuple(dict.fromkeys(result.summary["metric"]))
    datasets = list(dict.fromkeys(result.summary["dataset"]))
    a, b = params["mal_system"], params["baseline_system"]
    lines = [
        "## Non-intrusive MOS (the primary MAL system and its baseline)",
        "",
        f"DNSMOS on every test file for the baseline and the MAL system chosen on validation, at seed {cfg.seed} "
        "only (about 1 s of CPU per file); the CI resamples files.",
        "",
    ]
    systems = list(dict.fromkeys(result.summary["system"]))
    for dataset in datasets:
        lines += [f"**{dataset}**", "", metric_table(result.summary, dataset, systems, metrics), ""]
    lines += [f"| {a} − {b} | " + " | ".join(f"Δ {m}" for m in metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for dataset in datasets:
        diffs = [paired_difference(result.per_file, a, b, m, dataset, n_boot=n_boot, seed=seed) for m in metrics]
        lines.append(
            f"| {dataset} | " + " | ".join(_fmt(d["mean_diff"], d["ci_low"], d["ci_high"], 3) for d in diffs) + " |"
        )
    return [*lines, ""]


def _training_section(cfg: StudyPlan) -> list[str]:
    """Validation scores and step cost of every training run, next to the noisy input's on the same files."""
    lines = [
        "## Training",
        "",
        "Validation subset of the valid split (never a test split); `noisy` is the input on the same files.",
        "",
        "| run | recipe | global step | valid PESQ-WB (noisy) | valid SI-SDR dB (noisy) | grad norm | "
        "Δθ/θ % (encoder, decoder) | s / step | step cost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    baseline_time: dict[str, float] = {}
    systems, runs = cfg.all_systems(), cfg.system_runs()
    for name in [*cfg.warmups(), *runs]:
        s = read_json_or_empty(cfg.run_dir(name) / "summary.json")
        if not s:
            continue
        recipe = s.get("params", {}).get("recipe", "conventional")
        valid, noisy = s.get("valid", {}), s.get("noisy", {})
        step_time = s.get("step_time_s")
        spec = systems.get(runs[name][0], {}) if name in runs else {}
        arch = spec.get("arch")
        if spec.get("recipe") == "conventional" and step_time:
            baseline_time.setdefault(arch, step_time)
        ratio = step_time / baseline_time[arch] if step_time and arch in baseline_time else math.nan
        moved = {k: s.get(f"weight_change{k}") for k in ("", "_encoder", "_decoder")}
        pct = {k: _num(100 * v, 3) if isinstance(v, (int, float)) else "n/a" for k, v in moved.items()}
        lines.append(
            f"| {name} | {recipe} | {s.get('global_step', '')} | {_num(valid.get('pesq_wb'))} "
            f"({_num(noisy.get('pesq_wb'))}) | {_num(valid.get('si_sdr'))} ({_num(noisy.get('si_sdr'))}) | "
            f"{_num(s.get('grad_norm_mean'), 3)} | {pct['']} ({pct['_encoder']}, {pct['_decoder']}) | "
            f"{_num(step_time, 3)} | {_num(ratio)}× |"
        )
    return [
        *lines,
        "",
        "`grad norm` is the stage's mean total gradient norm before clipping; `Δθ/θ` is how far the stage moved the "
        "weights, ‖θ − θ_start‖ / ‖θ_start‖. Step cost is relative to the same architecture's stage-2 baseline.",
        "",
    ]


def _num(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _analysis_section(run_dir: Path) -> list[str]:
    from mal.analysis.report import headline

    s = read_json_or_empty(run_dir / "summary.json")
    if not s:
        return []
    return ["## Feature space and self-consistency", "", headline(s), ""]


def _timing_section(outcomes: list[StepOutcome], wall: float) -> list[str]:
    lines = [
        "## Wall time per step",
        "",
        "Seconds of the execution that produced each step's outputs (`skipped` steps ran in an earlier invocation "
        "with the same parameters); steps run side by side on the cores, so the total is less than the sum.",
        "",
        "| step | status | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {o.name} | {o.status} | {o.seconds:.0f} |" for o in outcomes]
    lines += [f"| **total (wall) of this invocation** | | {wall:.0f} |", ""]
    return lines


def _figures_section(study: Path) -> list[str]:
    figures = sorted(study.glob("*/figures/*.png"))
    if not figures:
        return []
    lines = ["## Figures", ""]
    lines += [f"- [{p.parent.parent.name}/{p.stem}]({p.relative_to(study)})" for p in figures]
    return [*lines, ""]
