"""The end-to-end study: corpus → lossnet → warm-ups → stage-2 systems → analysis → evaluation → results.md.

``python -m mal pipeline --profile quick`` (what ``make pipeline`` runs) reads ``configs/pipeline/<profile>.yaml``
and executes the numbered notebooks with papermill, each into its own folder under ``runs/<profile>/`` (the
executed notebook and its HTML copy, readable without Jupyter, are kept there):

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

import dataclasses
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd

import mal
from mal.config import ConfigBase, ConfigError
from mal.io import atomic_write_json, atomic_write_text
from mal.runner import Step, StepOutcome, run_steps

ROOT = Path(__file__).resolve().parents[1]
PROFILE_DIR = ROOT / "configs" / "pipeline"
# Metrics of the results tables, in column order (names as in mal.metrics).
TABLE_METRICS = ("pesq_wb", "estoi", "si_sdr", "csig", "cbak", "covl", "dnsmos_ovrl", "distillmos")
# Metrics of the paired MAL − baseline comparison.
PAIRED_METRICS = ("pesq_wb", "estoi", "si_sdr", "dnsmos_ovrl")
DEEP_BACKBONES = ("wavlm_base", "wav2vec2_base", "hubert_base")
# Notebook-02 parameters a stage-2 system takes from its architecture's warm-up (it continues that run's model,
# batches and learning-rate schedule).
INHERITED_FROM_WARMUP = ("model", "batch_size", "lr")


@dataclasses.dataclass
class PipelineConfig(ConfigBase):
    """One study. Every ``dict`` field holds notebook parameters passed through to papermill; the notebooks'
    own configs validate them. Paths, seeds and checkpoints that link the steps are filled in here."""

    profile: str = "quick"  # label of the study; outputs go to <runs_root>/<profile>/
    description: str = ""  # one line for results.md
    seed: int = 0  # one seed for the corpus, every training and every bootstrap
    cores: int = 2  # CPU cores to pack steps onto (each step says how many threads it uses)
    runs_root: str = "runs"  # parent of the study folder
    data_root: str = ""  # corpus root; "" = data/corpora/<corpus profile>
    corpus: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 01 parameters
    lossnet: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 05 parameters
    warmup: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # architecture → notebook 02 params
    stage2: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 02 params every stage-2 run shares
    systems: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # label → {arch, notebook 02 params}
    analysis: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 03 parameters
    evaluation: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 04 parameters
    compare: dict[str, str] = dataclasses.field(default_factory=dict)  # MAL system label → its baseline's label
    # Pretrained torchaudio backbones tried as deep-feature-loss systems (on the first architecture) when their
    # weights are in the torch hub cache; absent ones are listed as unavailable in results.md.
    deep_feature_backbones: list[str] = dataclasses.field(default_factory=lambda: list(DEEP_BACKBONES))

    def validate(self) -> None:
        if not self.warmup:
            raise ConfigError("PipelineConfig.warmup: name at least one architecture to warm up")
        for label, spec in self.systems.items():
            if spec.get("arch") not in self.warmup:
                raise ConfigError(
                    f"PipelineConfig.systems.{label}.arch must name a warm-up ({sorted(self.warmup)}), "
                    f"got {spec.get('arch')!r}"
                )
            if "/" in label or label.startswith("warmup-") or label in ("corpus", "lossnet", "analysis", "evaluation"):
                raise ConfigError(f"PipelineConfig.systems: {label!r} is not a usable system label")
        for mal_label, base_label in self.compare.items():
            for label in (mal_label, base_label):
                if label not in self.systems:
                    raise ConfigError(f"PipelineConfig.compare: {label!r} is not a system ({sorted(self.systems)})")
        if self.cores < 1:
            raise ConfigError(f"PipelineConfig.cores must be ≥ 1, got {self.cores}")

    @classmethod
    def for_profile(cls, profile: str, **overrides: Any) -> PipelineConfig:
        path = PROFILE_DIR / f"{profile}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
            raise ConfigError(f"unknown pipeline profile {profile!r}: no {path}; profiles are {known}")
        cfg = cls.load(path)
        return cfg.replace(**overrides) if overrides else cfg

    @property
    def study_dir(self) -> Path:
        return Path(self.runs_root) / self.profile

    @property
    def corpus_root(self) -> Path:
        return Path(self.data_root or Path("data") / "corpora" / str(self.corpus.get("profile", self.profile)))

    def run_dir(self, step: str) -> Path:
        return self.study_dir / step

    def checkpoint(self, label: str) -> Path:
        """Checkpoint of a trained system: the last step, so every system has had exactly the same steps."""
        return self.run_dir(label) / "checkpoints" / "last.pt"

    def deep_feature_availability(self) -> dict[str, str]:
        """Backbone → path of its pretrained weights, or "" when they are not on this machine."""
        from mal.losses.deep_feature import find_weights

        return {b: str(find_weights(b) or "") for b in self.deep_feature_backbones}

    def all_systems(self) -> dict[str, dict[str, Any]]:
        """The configured systems plus one deep-feature-loss system per backbone whose weights are present."""
        systems = dict(self.systems)
        arch = next(iter(self.warmup))
        for backbone, path in self.deep_feature_availability().items():
            if path:
                systems[f"{arch}-deep-{backbone}"] = {
                    "arch": arch,
                    "recipe": "deep_feature",
                    "deep_feature_backbone": backbone,
                    "calibrate": True,
                }
        return systems

    def uses_lossnet(self) -> bool:
        return any(spec.get("recipe") == "lossnet" for spec in self.systems.values())


def build_steps(cfg: PipelineConfig) -> list[Step]:
    """The study as a list of notebook steps with their dependencies."""
    corpus_root = str(cfg.corpus_root)
    steps = [
        Step(
            "corpus",
            "01_data_preparation",
            {**cfg.corpus, "seed": cfg.seed, "data_root": corpus_root},
            cfg.run_dir("corpus"),
            threads=cfg.cores,
        )
    ]
    lossnet_ckpt = cfg.run_dir("lossnet") / "lossnet.pt"
    if cfg.uses_lossnet():
        params = {"threads": 1, **cfg.lossnet, "data_root": corpus_root, "seed": cfg.seed}
        steps.append(Step("lossnet", "05_lossnet_pretraining", params, cfg.run_dir("lossnet"), deps=("corpus",)))
    for arch, params in cfg.warmup.items():
        params = {"threads": 1, **params, "stage": "warmup", "corpus_root": corpus_root, "seed": cfg.seed}
        steps.append(Step(f"warmup-{arch}", "02_training", params, cfg.run_dir(f"warmup-{arch}"), deps=("corpus",)))
    trained = [f"warmup-{arch}" for arch in cfg.warmup]
    for label, spec in cfg.all_systems().items():
        spec = dict(spec)
        arch = spec.pop("arch")
        # A stage-2 run continues its warm-up (see INHERITED_FROM_WARMUP).
        inherited = {k: v for k, v in cfg.warmup[arch].items() if k in INHERITED_FROM_WARMUP}
        params = {
            "threads": 1,
            **cfg.stage2,
            **inherited,
            **spec,
            "stage": "stage2",
            "init_checkpoint": str(cfg.checkpoint(f"warmup-{arch}")),
            "corpus_root": corpus_root,
            "seed": cfg.seed,
        }
        deps = [f"warmup-{arch}"]
        if spec.get("recipe") == "lossnet":
            params["lossnet_path"] = str(lossnet_ckpt)
            deps.append("lossnet")
        steps.append(Step(label, "02_training", params, cfg.run_dir(label), deps=tuple(deps), threads=1))
        trained.append(label)
    checkpoints = {label: str(cfg.checkpoint(label)) for label in trained}
    first_warmup = f"warmup-{next(iter(cfg.warmup))}"
    compared = list(cfg.compare.items())[:1]
    analysis = {
        "threads": 1,
        "judge": first_warmup,
        # k-curve decays are compared (paired) against the first comparison's baseline.
        "reference": compared[0][1] if compared else first_warmup,
        **cfg.analysis,
        "data_root": corpus_root,
        "seed": cfg.seed,
        "checkpoints": {k: v for k, v in checkpoints.items() if k in _analysed(cfg, first_warmup)},
    }
    if cfg.uses_lossnet():
        analysis["lossnet_checkpoint"] = str(lossnet_ckpt)
    analysis_deps = tuple(analysis["checkpoints"]) + (("lossnet",) if cfg.uses_lossnet() else ())
    steps.append(Step("analysis", "03_feature_space_analysis", analysis, cfg.run_dir("analysis"), analysis_deps))
    mal_label, base_label = compared[0] if compared else ("", "")
    evaluation = {
        "workers": cfg.cores,
        **cfg.evaluation,
        "data_root": corpus_root,
        "seed": cfg.seed,
        "checkpoints": checkpoints,
        "mal_system": mal_label,
        "baseline_system": base_label,
    }
    steps.append(
        Step("evaluation", "04_cross_dataset_evaluation", evaluation, cfg.run_dir("evaluation"), tuple(trained),
             threads=cfg.cores)
    )  # fmt: skip
    return steps


def _analysed(cfg: PipelineConfig, judge: str) -> list[str]:
    """Systems in the feature-space analysis: the judge's warm-up plus the systems of the first comparison."""
    labels = [judge]
    for mal_label, base_label in list(cfg.compare.items())[:1]:
        labels += [base_label, mal_label]
    return labels


def run_pipeline(cfg: PipelineConfig, force: bool = False) -> Path:
    """Run (or resume) the study and write ``<study_dir>/results.md``; returns its path."""
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(cfg.study_dir / "pipeline.yaml")
    steps = build_steps(cfg)
    start = time.perf_counter()
    outcomes = run_steps(steps, cores=cfg.cores, force=force, cwd=Path.cwd())
    wall = time.perf_counter() - start
    timing = {
        "wall_seconds": wall,
        "steps": {o.name: {"status": o.status, "seconds": o.seconds} for o in outcomes},
    }
    atomic_write_json(cfg.study_dir / "pipeline.json", timing)
    return write_results(cfg, outcomes, wall)


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


def paired_table(per_file: pd.DataFrame, pairs: list[tuple[str, str]], datasets: list[str], n_boot: int, seed: int):
    """Markdown table of paired differences ``a − b`` with bootstrap CIs, per dataset and metric."""
    from mal.evaluate import paired_difference

    metrics = [m for m in PAIRED_METRICS if m in set(per_file["metric"])]
    lines = ["| comparison | dataset | " + " | ".join(f"Δ {m}" for m in metrics) + " | files |"]
    lines.append("|---" * (len(metrics) + 3) + "|")
    records = []
    for a, b in pairs:
        for dataset in datasets:
            diffs = [paired_difference(per_file, a, b, m, dataset, n_boot=n_boot, seed=seed) for m in metrics]
            records += diffs
            cells = [_fmt(d["mean_diff"], d["ci_low"], d["ci_high"], 3) for d in diffs]
            n = max((d["n_files"] for d in diffs), default=0)
            lines.append(f"| {a} − {b} | {dataset} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines), records


def write_results(cfg: PipelineConfig, outcomes: list[StepOutcome], wall: float) -> Path:
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
    if pairs:
        table, paired_records = paired_table(per_file, pairs, datasets, n_boot, seed)
        out += [
            "## Paired differences (MAL − baseline)",
            "",
            "Mean per-file difference with a 95 % bootstrap CI; a CI that excludes 0 is a difference the test set "
            "resolves.",
            "",
            table,
            "",
        ]
    missing = [b for b, path in cfg.deep_feature_availability().items() if not path]
    if missing:
        out += [
            f"Deep-feature baselines over {', '.join(missing)} did not run: their pretrained weights are not in the "
            "torch hub cache of this machine (no model hub is reachable here). The offline pretrained loss network "
            "(`lossnet` systems) stands in for them.",
            "",
        ]
    out += _training_section(cfg)
    out += _analysis_section(study / "analysis")
    out += _timing_section(outcomes, wall)
    out += _figures_section(study)
    path = atomic_write_text(study / "results.md", "\n".join(out) + "\n")
    atomic_write_json(
        study / "results.json",
        {"summary": json.loads(summary.to_json(orient="records")), "paired": paired_records},
    )
    return path


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _training_section(cfg: PipelineConfig) -> list[str]:
    """Validation scores and step cost of every training run, next to the noisy input's on the same files."""
    lines = [
        "## Training",
        "",
        "Validation subset of the valid split (never a test split); `noisy` is the input on the same files.",
        "",
        "| run | recipe | global step | valid PESQ-WB (noisy) | valid SI-SDR dB (noisy) | s / step | step cost |",
        "|---|---|---|---|---|---|---|",
    ]
    baseline_time: dict[str, float] = {}
    for label in [f"warmup-{a}" for a in cfg.warmup] + list(cfg.all_systems()):
        s = _read_json(cfg.run_dir(label) / "summary.json")
        if not s:
            continue
        params = s.get("params", {})
        recipe = params.get("recipe", "conventional")
        if recipe == "mal":
            recipe = f"mal {params.get('mal_variant')} / {params.get('mal_layers')}"
        valid, noisy = s.get("valid", {}), s.get("noisy", {})
        step_time = s.get("step_time_s")
        arch = cfg.systems.get(label, {}).get("arch")
        if label in cfg.systems and cfg.systems[label].get("recipe") == "conventional" and step_time:
            baseline_time.setdefault(arch, step_time)
        ratio = step_time / baseline_time[arch] if step_time and arch in baseline_time else math.nan
        lines.append(
            f"| {label} | {recipe} | {s.get('global_step', '')} | {_num(valid.get('pesq_wb'))} "
            f"({_num(noisy.get('pesq_wb'))}) | {_num(valid.get('si_sdr'))} ({_num(noisy.get('si_sdr'))}) | "
            f"{_num(step_time, 3)} | {_num(ratio)}× |"
        )
    return [*lines, "", "Step cost is relative to the same architecture's stage-2 baseline.", ""]


def _num(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _analysis_section(run_dir: Path) -> list[str]:
    from mal.analysis.report import headline

    s = _read_json(run_dir / "summary.json")
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
