"""The study plan: every system of a study, where it runs, which checkpoint counts, and how a branch starts.

A study (``configs/pipeline/<profile>.yaml``, read by :meth:`StudyPlan.for_profile`) names

- one warm-up per architecture (stage 1, the conventional loss), per seed;
- every stage-2 *system*: an architecture, a loss recipe (a preset in ``configs/recipes/``) and a seed;
- the stage-2 seeds (``seeds``): every system runs once per seed (data order and crops), from the same warm-up,
  so that differences to the baseline can be paired within a seed and bootstrapped over seeds
  (:func:`mal.stats.hierarchical_paired_difference`);
- the notebook parameters of the corpus, lossnet, analysis and evaluation steps.

The rules that make the comparison fair are declared here and nowhere else:

- **run folders**: ``<runs_root>/<profile>/<step>`` (:meth:`StudyPlan.run_dir`); a system's run with a stage-2
  seed other than its warm-up's is the step ``<label>-s<seed>`` (:func:`seeded_name`);
- **the checkpoint that counts** is a run's ``checkpoints/last.pt`` (:data:`COUNTED_CHECKPOINT`): every stage-2
  system has then trained for exactly the same steps; ``best.pt`` would pick each system's best validation
  point, i.e. a different number of steps per system;
- **warm-up → branch** (:func:`branch_config`): a stage-2 run continues its warm-up's checkpoint with the
  warm-up's model, data, optimiser and schedule, so branches of one warm-up differ in their loss alone.

Every training config is built and validated here, when the plan is made, and travels to notebook 02 as its
flat parameters (:meth:`mal.config.ConfigBase.to_parameters`). A sweep is a study with a grid
(:mod:`mal.sweep`): it builds its training steps with the same functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mal.config import ConfigBase, ConfigError, apply_overrides, flatten
from mal.losses.objective import CONVENTIONAL_FIELDS
from mal.runner import Step
from mal.training.config import TrainConfig
from mal.training.recipes import load_recipe

ROOT = Path(__file__).resolve().parents[1]
PROFILE_DIR = ROOT / "configs" / "pipeline"
# The checkpoint of a run that every later step reads: the last one (the equal-steps rule).
COUNTED_CHECKPOINT = Path("checkpoints") / "last.pt"
# Step names that are not systems.
CORPUS, LOSSNET, ANALYSIS, EVALUATION, MOS = "corpus", "lossnet", "analysis", "evaluation", "mos"
DEEP_BACKBONES = ("wavlm_base", "wav2vec2_base", "hubert_base")
# What notebooks 03 and 04 look at when run on their own: the quick study's first comparison and its judge.
DEFAULT_PROFILE = "quick"
DEFAULT_JUDGE, DEFAULT_BASELINE, DEFAULT_MAL = "warmup-bandcrn", "bandcrn-baseline", "bandcrn-mal-all"
# TrainConfig fields a branch does not take from its warm-up: they describe the stage, not the model, data or
# schedule it continues.
STAGE_FIELDS = ("run_dir", "stage", "steps", "init_checkpoint", "recipe", "loss", "calibrate", "freeze_encoder")
# Keys of a system entry that are not TrainConfig fields.
SYSTEM_KEYS = ("arch", "seed")


def counted_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint of a training run that later steps evaluate: ``<run_dir>/checkpoints/last.pt``."""
    return Path(run_dir) / COUNTED_CHECKPOINT


def default_checkpoints() -> dict[str, str]:
    """Label → counted checkpoint of the default systems in the default study's run folders."""
    plan = StudyPlan(profile=DEFAULT_PROFILE)
    return {label: str(plan.checkpoint(label)) for label in (DEFAULT_JUDGE, DEFAULT_BASELINE, DEFAULT_MAL)}


def default_corpus_root() -> str:
    """Corpus of the default study (``data/corpora/quick``)."""
    return str(StudyPlan(profile=DEFAULT_PROFILE).corpus_root)


def seeded_name(label: str, seed: int, default_seed: int) -> str:
    """Step name of a system's run: ``<label>`` at its default seed, ``<label>-s<seed>`` at the others."""
    return label if seed == default_seed else f"{label}-s{seed}"


def warmup_name(arch: str, seed: int, study_seed: int) -> str:
    """Step name of an architecture's warm-up: ``warmup-<arch>`` (``-s<seed>`` for seeds other than the study's)."""
    return f"warmup-{arch}" if seed == study_seed else f"warmup-{arch}-s{seed}"


def branch_config(warmup: Mapping[str, Any], stage2: Mapping[str, Any], system: Mapping[str, Any]) -> TrainConfig:
    """The warm-up → branch rule: the stage-2 TrainConfig of one system.

    Args:
        warmup: the warm-up's resolved TrainConfig mapping (``cfg.to_dict()``).
        stage2: TrainConfig fields every branch of the study sets (e.g. ``{"steps": 100}``), nested or dotted.
        system: the system's own fields: ``recipe``, ``run_dir``, ``init_checkpoint`` and any dotted override.

    Returns:
        The validated :class:`~mal.training.config.TrainConfig`: the warm-up's model, data, optimiser and run
        settings and its conventional loss terms; ``optim.total_steps = 0`` (continue the warm-up's schedule);
        then ``stage2``, then ``system``.
    """
    inherited = {k: v for k, v in warmup.items() if k not in STAGE_FIELDS}
    # The branch's conventional terms are its warm-up's (the recipe adds its feature terms on top), so the
    # "conventional" recipe continues exactly the loss the warm-up trained with.
    conventional = {f"loss.{k}": v for k, v in warmup.get("loss", {}).items() if k in CONVENTIONAL_FIELDS}
    inherited = apply_overrides(inherited, {**conventional, "optim.total_steps": 0, "stage": "stage2"})
    merged = apply_overrides(inherited, flatten(stage2))
    return TrainConfig.from_params(apply_overrides(merged, flatten(system)))


@dataclasses.dataclass
class StudyPlan(ConfigBase):
    """One study. ``train``, ``warmup``, ``stage2`` and system entries hold TrainConfig fields (nested or dotted
    names); ``corpus``, ``lossnet``, ``analysis`` and ``evaluation`` hold the parameters of notebooks 01, 05, 03
    and 04. Paths, seeds and checkpoints that link the steps are filled in here."""

    profile: str = "quick"  # label of the study; outputs go to <runs_root>/<profile>/
    description: str = ""  # one line for results.md
    seed: int = 0  # the corpus, every warm-up and every bootstrap; a system may name its own (own warm-up)
    seeds: list[int] = dataclasses.field(default_factory=list)  # stage-2 seeds (data order) every system runs, each
    #   from the system's warm-up; [] = one run at the warm-up's seed. Runs at other seeds are "<label>-s<seed>".
    cores: int = 2  # CPU cores to pack steps onto (each step says how many threads it uses)
    runs_root: str = "runs"  # parent of the study folder
    data_root: str = ""  # corpus root; "" = data/corpora/<corpus profile>
    corpus: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 01 parameters
    lossnet: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 05 parameters
    train: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig fields of every training run
    warmup: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # architecture → its warm-up fields
    stage2: dict[str, Any] = dataclasses.field(default_factory=dict)  # fields every branch sets over its warm-up
    systems: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # label → {arch, recipe, seed, ...}
    analysis: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 03 parameters
    evaluation: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 04 parameters
    compare: dict[str, str] = dataclasses.field(default_factory=dict)  # MAL system label → its baseline's label
    contrasts: dict[str, str] = dataclasses.field(default_factory=dict)  # system → the control it is contrasted
    #   with, so that the pair differs in one thing (e.g. MAL frozen-fe → the conventional loss with the encoder
    #   frozen); reported as paired differences next to `compare`
    # The primary comparison, declared before the study runs: this metric on this test set, the MAL system of
    # `compare` with the best mean validation score over seeds against its baseline. Everything else is secondary.
    primary_metric: str = "pesq_wb"
    primary_dataset: str = "in-domain"
    mos: dict[str, Any] = dataclasses.field(default_factory=dict)  # notebook 04 parameters of the MOS step: the
    #   non-intrusive MOS models on the baseline and the primary MAL system (at the study seed), which only the
    #   validation scores name, so the step is planned after training ({} = no MOS step; mal.pipeline.mos_step)
    # Pretrained torchaudio backbones tried as deep-feature-loss systems (on the first architecture) when their
    # weights are in the torch hub cache; absent ones are listed as unavailable in results.md.
    deep_feature_backbones: list[str] = dataclasses.field(default_factory=lambda: list(DEEP_BACKBONES))

    def validate(self) -> None:
        if not self.warmup:
            raise ConfigError("StudyPlan.warmup: name at least one architecture to warm up")
        reserved = (CORPUS, LOSSNET, ANALYSIS, EVALUATION, MOS)
        for label, spec in self.systems.items():
            if spec.get("arch") not in self.warmup:
                raise ConfigError(
                    f"StudyPlan.systems.{label}.arch must name a warm-up ({sorted(self.warmup)}), "
                    f"got {spec.get('arch')!r}"
                )
            if "/" in label or label.startswith("warmup-") or label in reserved:
                raise ConfigError(f"StudyPlan.systems: {label!r} is not a usable system label")
            load_recipe(spec.get("recipe", "conventional"))  # an unknown preset fails here, naming the known ones
        for section in ("compare", "contrasts"):
            for mal_label, base_label in getattr(self, section).items():
                for label in (mal_label, base_label):
                    if label not in self.systems:
                        raise ConfigError(
                            f"StudyPlan.{section}: {label!r} is not a system ({sorted(self.systems)}); "
                            f"when you replace the systems, replace or empty the {section} too ({section}={{}})"
                        )
        if self.cores < 1:
            raise ConfigError(f"StudyPlan.cores must be ≥ 1, got {self.cores}")
        if len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ConfigError(f"StudyPlan.seeds must be distinct seeds ≥ 0, got {self.seeds}")
        runs = [name for label, spec in self.systems.items() for name in self._seeded_runs(label, spec)]
        clashes = sorted({name for name in runs if runs.count(name) > 1})
        if clashes:
            raise ConfigError(f"StudyPlan: the runs {clashes} are named twice (a system label ends in -s<seed>?)")

    @classmethod
    def for_profile(cls, profile: str, **overrides: Any) -> StudyPlan:
        path = PROFILE_DIR / f"{profile}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
            raise ConfigError(f"unknown study profile {profile!r}: no {path}; profiles are {known}")
        cfg = cls.load(path)
        return cfg.replace(**overrides) if overrides else cfg

    # -- where things are -------------------------------------------------------------------------------------

    @property
    def study_dir(self) -> Path:
        return Path(self.runs_root) / self.profile

    @property
    def corpus_root(self) -> Path:
        return Path(self.data_root or Path("data") / "corpora" / str(self.corpus.get("profile", self.profile)))

    def run_dir(self, step: str) -> Path:
        """The one place a step's folder is spelled: ``<runs_root>/<profile>/<step>``."""
        return self.study_dir / step

    def checkpoint(self, label: str) -> Path:
        """The checkpoint of a trained run that counts (see :data:`COUNTED_CHECKPOINT`)."""
        return counted_checkpoint(self.run_dir(label))

    @property
    def lossnet_checkpoint(self) -> Path:
        from mal.pretrain import CHECKPOINT_NAME

        return self.run_dir(LOSSNET) / CHECKPOINT_NAME

    # -- what is trained --------------------------------------------------------------------------------------

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
                    "recipe": "deep-feature",
                    "loss.deep_feature_backbone": backbone,
                }
        return systems

    def uses_lossnet(self) -> bool:
        return any(spec.get("recipe") == "lossnet" for spec in self.systems.values())

    def stage2_seeds(self, spec: Mapping[str, Any]) -> list[int]:
        """The stage-2 seeds of one system: ``seeds``, or its warm-up's seed alone."""
        return list(self.seeds) or [int(spec.get("seed", self.seed))]

    def _seeded_runs(self, label: str, spec: Mapping[str, Any]) -> list[str]:
        default = int(spec.get("seed", self.seed))
        return [seeded_name(label, s, default) for s in self.stage2_seeds(spec)]

    def system_runs(self) -> dict[str, tuple[str, int]]:
        """Run (step) name → (system label, stage-2 seed), for every system of :meth:`all_systems` × its seeds."""
        out = {}
        for label, spec in self.all_systems().items():
            for name, seed in zip(self._seeded_runs(label, spec), self.stage2_seeds(spec), strict=True):
                out[name] = (label, seed)
        return out

    def warmups(self) -> dict[str, tuple[str, int]]:
        """Warm-up step name → (architecture, seed), for every (architecture, seed) a system needs."""
        pairs = {(arch, self.seed) for arch in self.warmup}
        pairs |= {(s["arch"], int(s.get("seed", self.seed))) for s in self.all_systems().values()}
        ordered = sorted(pairs, key=lambda p: (list(self.warmup).index(p[0]), p[1] != self.seed, p[1]))
        return {warmup_name(arch, seed, self.seed): (arch, seed) for arch, seed in ordered}

    def warmup_config(self, arch: str, seed: int, run_dir: Path) -> TrainConfig:
        """The validated warm-up TrainConfig of one architecture and seed."""
        fields = apply_overrides({}, {**flatten(self.train), **flatten(self.warmup[arch])})
        fields = apply_overrides(
            fields, {"stage": "warmup", "run_dir": str(run_dir), "data.root": str(self.corpus_root), "seed": seed}
        )
        fields.setdefault("model", {}).setdefault("name", arch)
        return TrainConfig.from_params(fields)

    def system_config(self, label: str, spec: Mapping[str, Any], seed: int | None = None) -> TrainConfig:
        """The validated stage-2 TrainConfig of one system at one stage-2 ``seed`` (default: its warm-up's), see
        :func:`branch_config`: the seed changes the data order and crops, never the warm-up it starts from."""
        warm_seed = int(spec.get("seed", self.seed))
        seed = warm_seed if seed is None else seed
        warm = warmup_name(spec["arch"], warm_seed, self.seed)
        warmup = self.warmup_config(spec["arch"], warm_seed, self.run_dir(warm)).to_dict()
        own = {k: v for k, v in spec.items() if k not in SYSTEM_KEYS}
        run = seeded_name(label, seed, warm_seed)
        own.update(run_dir=str(self.run_dir(run)), init_checkpoint=str(self.checkpoint(warm)), seed=seed)
        if own.get("recipe") == "lossnet":
            own["loss.lossnet_path"] = str(self.lossnet_checkpoint)
        return branch_config(warmup, self.stage2, own)

    def training_config(self, name: str) -> TrainConfig:
        """The validated TrainConfig of one training run of the study: a warm-up (``warmup-<arch>``) or a system's
        run (``<label>`` or ``<label>-s<seed>``)."""
        warmups, runs = self.warmups(), self.system_runs()
        if name in warmups:
            return self.warmup_config(*warmups[name], self.run_dir(name))
        if name in runs:
            label, seed = runs[name]
            return self.system_config(label, self.all_systems()[label], seed)
        raise ConfigError(f"study {self.profile!r} trains no run named {name!r}; runs are {[*warmups, *runs]}")


def training_steps(plan: StudyPlan, notebook_dir: Path | None = None, after: tuple[str, ...] = ()) -> list[Step]:
    """Notebook-02 steps of every warm-up and system of ``plan``; ``after`` are steps they all wait for."""
    extra = {"notebook_dir": notebook_dir} if notebook_dir is not None else {}
    steps = []
    for name, (arch, seed) in plan.warmups().items():
        cfg = plan.warmup_config(arch, seed, plan.run_dir(name))
        steps.append(_training_step(name, cfg, after, extra))
    systems = plan.all_systems()
    for name, (label, seed) in plan.system_runs().items():
        spec = systems[label]
        cfg = plan.system_config(label, spec, seed)
        warm = warmup_name(spec["arch"], int(spec.get("seed", plan.seed)), plan.seed)
        deps = (warm, LOSSNET) if spec.get("recipe") == "lossnet" else (warm,)
        steps.append(_training_step(name, cfg, deps, extra))
    return steps


def _training_step(name: str, cfg: TrainConfig, deps: tuple[str, ...], extra: dict[str, Any]) -> Step:
    params = {**cfg.to_parameters(), "if_exists": "overwrite"}  # a rerun replaces the step's previous outputs
    return Step(name, "02_training", params, Path(cfg.run_dir), deps=deps, threads=max(cfg.threads, 1), **extra)


def build_steps(plan: StudyPlan) -> list[Step]:
    """The whole study as notebook steps with their dependencies; every notebook's config is validated here."""
    from mal.analysis.config import AnalysisConfig
    from mal.cross_dataset import CrossDatasetConfig
    from mal.data.preparation import DataPreparationConfig
    from mal.pretrain import LossNetPretrainConfig

    corpus_root = str(plan.corpus_root)
    corpus = {**plan.corpus, "seed": plan.seed, "data_root": corpus_root, "run_dir": str(plan.run_dir(CORPUS))}
    if corpus.get("sources") is None:
        # The step names the sources it builds, so a change of the corpus profile's default sources reruns it (its
        # notebook and parameters would otherwise be unchanged) and step.json records what was built.
        corpus["sources"] = list(DataPreparationConfig.from_parameters(corpus).corpus.source_names())
    steps = [_step(CORPUS, "01_data_preparation", DataPreparationConfig, corpus, (), plan.cores)]
    if plan.uses_lossnet():
        params = {"threads": 1, **plan.lossnet, "data_root": corpus_root, "seed": plan.seed}
        params["run_dir"] = str(plan.run_dir(LOSSNET))
        steps.append(_step(LOSSNET, "05_lossnet_pretraining", LossNetPretrainConfig, params, (CORPUS,), 1))
    trained = training_steps(plan, after=(CORPUS,))
    steps += trained
    checkpoints = {s.name: str(counted_checkpoint(s.run_dir)) for s in trained}
    first_warmup = trained[0].name
    compared = list(plan.compare.items())[:1]
    analysed = [first_warmup] + [label for pair in compared for label in (pair[1], pair[0])]
    analysis = {
        "threads": 1,
        "judge": first_warmup,
        # k-curve decays are compared (paired) against the first comparison's baseline.
        "reference": compared[0][1] if compared else first_warmup,
        **plan.analysis,
        "data_root": corpus_root,
        "seed": plan.seed,
        "checkpoints": {k: v for k, v in checkpoints.items() if k in analysed},
        "run_dir": str(plan.run_dir(ANALYSIS)),
    }
    if plan.uses_lossnet():
        analysis["lossnet_checkpoint"] = str(plan.lossnet_checkpoint)
    deps = tuple(analysis["checkpoints"]) + ((LOSSNET,) if plan.uses_lossnet() else ())
    steps.append(_step(ANALYSIS, "03_feature_space_analysis", AnalysisConfig, analysis, deps, 1))
    mal_label, base_label = compared[0] if compared else ("", "")
    evaluation = {
        "workers": plan.cores,
        **plan.evaluation,
        "data_root": corpus_root,
        "seed": plan.seed,
        "checkpoints": checkpoints,
        "mal_system": mal_label,
        "baseline_system": base_label,
        "run_dir": str(plan.run_dir(EVALUATION)),
    }
    steps.append(
        _step(EVALUATION, "04_cross_dataset_evaluation", CrossDatasetConfig, evaluation, tuple(checkpoints), plan.cores)
    )
    return steps


def _step(name: str, notebook: str, schema: type[ConfigBase], params: dict, deps: tuple, threads: int) -> Step:
    """A notebook step whose parameters are validated against the notebook's schema now, not in its kernel."""
    cfg = schema.from_parameters(params)
    return Step(name, notebook, cfg.to_parameters(), Path(params["run_dir"]), deps=deps, threads=threads)
