"""Typed configuration of a training run: model, data, loss recipe, optimiser/schedule and the run itself.

A run is one *stage*:

- ``stage="warmup"`` (stage 1) trains a freshly initialised model with a conventional loss;
- ``stage="stage2"`` starts from a stage-1 checkpoint (``init_checkpoint``) and keeps training with any loss
  recipe: the conventional loss again (the fair baseline), MAL (``frozen`` / ``frozen-fe`` / ``dynamic``), or a
  deep feature loss.

Stage 2 restores the warm-up checkpoint's weights, optimiser state, step counter and RNG states, so every stage-2
branch of one warm-up sees the same starting point, learning rates and batches (the batch at global step ``s``
depends only on the data seed and ``s``; see :mod:`mal.training.data`). The learning rate is a function of the
global step: a branch either continues the warm-up's cosine (``optim.total_steps`` of the warm-up covers both
stages) or declares its own, e.g. a constant rate after a warm-up whose cosine has ended (the quick study;
docs/method.md, "Stage 2: a plateaued warm-up, then a constant rate").

The loss comes from a named recipe (``recipe: mal-frozen``, a preset in ``configs/recipes/``, see
:mod:`mal.training.recipes`); the config's own ``loss`` and ``calibrate`` values win over the preset's.
``calibrate`` scales the feature term on the stage's first batch; by default (``calibrate_by="grad-norm"``) so
that the total gradient is as long as the conventional terms' alone, i.e. a MAL branch takes the baseline's
step sizes.
Notebook 02's parameters are the flat view of this schema (:attr:`TrainConfig.PARAMETERS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from mal.config import C, ConfigBase, ConfigError
from mal.losses import LossConfig
from mal.training.recipes import load_recipe, switched_on

# Metrics validation may compute (names as in mal.metrics.score), and the ones where larger is better.
HIGHER_IS_BETTER = {"pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "ssnr", "csig", "cbak", "covl"}


@dataclasses.dataclass
class ModelConfig(ConfigBase):
    """Which model to train (``mal.models.build(name, **hparams)``)."""

    name: str = "specmask"  # registered model name: "specmask" | "waveunet"
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)  # constructor keywords; {} = model defaults


@dataclasses.dataclass
class DataConfig(ConfigBase):
    """Where the training pairs come from and how they are cut into batches."""

    loader: str = "mal-offline"  # mal.data.open_dataset loader name
    root: str = "data/corpora/quick"  # corpus root for the loader
    train_split: str = "train"  # split the segments are cut from
    valid_split: str = "valid"  # split the fixed validation subset is taken from
    segment_seconds: float = 2.0  # training segment length (s)
    batch_size: int = 16  # segments per optimiser step *per process* (DDP multiplies it by the world size)
    num_workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    remix: bool = False  # re-pair speech and noise on the fly (SegmentDataset's remix option)
    speed_perturb: float = 0.0  # clean speech at a speed drawn from 1 ± this (0.1: 90-110 %); needs remix
    tilt: float = 0.0  # clean speech through a random spectral tilt, coefficient in ± this; needs remix
    noise_speed_perturb: float = 0.0  # the noise at a speed drawn from 1 ± this (its spectrum shifts); needs remix
    noise_tilt: float = 0.0  # the noise through a random spectral tilt, coefficient in ± this; needs remix
    noise_mix: float = 0.0  # probability of a second utterance's noise 0-10 dB under the first; needs remix
    exclude_speakers: list[str] = dataclasses.field(default_factory=list)  # train speakers left out (screening)
    exclude_noise_types: list[str] = dataclasses.field(default_factory=list)  # train noise types left out (same)
    valid_files: int = 8  # size of the fixed validation subset (first N files of valid_split, in order)
    valid_max_seconds: float = 0.0  # crop every validation file to its first N s (0 = whole file)

    def validate(self) -> None:
        if self.segment_seconds <= 0:
            raise ConfigError(f"DataConfig.segment_seconds must be > 0, got {self.segment_seconds}")
        if self.batch_size < 1:
            raise ConfigError(f"DataConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"DataConfig.num_workers must be >= 0, got {self.num_workers}")
        if self.valid_files < 0:
            raise ConfigError(f"DataConfig.valid_files must be >= 0, got {self.valid_files}")
        from mal.data import augment  # here: importing mal.data at start-up would cost `mal train --help` ~1 s

        try:
            augment.check_settings(self.augmentation(), self.remix)
        except ValueError as err:
            raise ConfigError(f"DataConfig.{err}") from err
        if 0 < self.valid_max_seconds < 0.5:
            raise ConfigError(f"DataConfig.valid_max_seconds={self.valid_max_seconds}: PESQ needs at least 0.5 s")

    def augmentation(self) -> dict[str, float]:
        """The augmentation settings (``mal.data.augment.BOUNDS`` names), as SegmentDataset keywords."""
        from mal.data import augment

        return {name: getattr(self, name) for name in augment.BOUNDS}


@dataclasses.dataclass
class OptimConfig(ConfigBase):
    """Optimiser and learning-rate schedule.

    The schedule is a function of the *global* step (warm-up and stage 2 count on one axis): a linear ramp
    over ``lr_warmup_steps``, then constant or a cosine down to ``lr * min_lr_ratio`` at ``total_steps``.
    """

    name: Literal["adam", "adamw"] = "adam"  # torch.optim.Adam or AdamW
    lr: float = 1e-3  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas
    weight_decay: float = 0.0  # decoupled for adamw, L2 for adam
    grad_clip: float = 5.0  # max global gradient norm (0 = no clipping)
    lr_warmup_steps: int = 50  # linear LR ramp at the start of the schedule (not the training warm-up stage)
    schedule: Literal["cosine", "constant"] = "cosine"  # shape after the ramp
    total_steps: int = 0  # global step where the cosine ends; 0 = the end of this run. Set it to
    #                       warm-up + stage-2 steps in the warm-up config so stage 2 continues one cosine.
    min_lr_ratio: float = 0.05  # cosine floor as a fraction of lr

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"OptimConfig.lr must be > 0, got {self.lr}")
        if self.grad_clip < 0 or self.lr_warmup_steps < 0 or self.total_steps < 0:
            raise ConfigError("OptimConfig.grad_clip, lr_warmup_steps and total_steps must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"OptimConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclasses.dataclass
class TrainConfig(ConfigBase):
    """One training stage. ``TrainConfig.from_params`` takes the nested mapping of a YAML config file."""

    # Notebook 02's parameters: flat name → the field it sets. The recipe's loss and calibration are not among
    # them (a flat default would override the preset); tune them through ``overrides``, e.g.
    # {"loss.mal_layers": "all"} or {"calibrate.mal": 4.0}.
    PARAMETERS: ClassVar[dict[str, str]] = {
        "run_dir": "run_dir",
        "stage": "stage",
        "init_checkpoint": "init_checkpoint",
        "recipe": "recipe",
        "model": "model.name",
        "corpus_root": "data.root",
        "steps": "steps",
        "batch_size": "data.batch_size",
        "lr": "optim.lr",
        "seed": "seed",
        "device": "device",
        "threads": "threads",
    }

    run_dir: str = "runs/train"  # outputs: config.yaml, history.jsonl, checkpoints/{last,best}.pt, summary.json
    stage: Literal["warmup", "stage2"] = "warmup"  # stage 1 from scratch, or stage 2 from init_checkpoint
    steps: int = 1000  # optimiser steps in this stage
    init_checkpoint: str = ""  # stage 2: the warm-up checkpoint to continue from (its last.pt)
    recipe: str = "conventional"  # loss preset configs/recipes/<name>.yaml; loss/calibrate set here win over it
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    seed: int = 0  # model init (stage 1), data order and crops (every stage)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = CUDA when available
    amp: bool = True  # automatic mixed precision for the model forward (CUDA only; ignored on CPU)
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"  # float16 adds a GradScaler
    compile: bool = False  # torch.compile the model's forward
    threads: int = 0  # torch CPU threads per process (0 = torch's default: all cores)
    valid_every: int = 100  # validate every N steps of this stage (and always at the end; 0 = end only)
    checkpoint_every: int = 100  # write checkpoints/last.pt every N steps (and always at the end)
    log_every: int = 10  # one history row per N steps (mean of the terms over those steps)
    valid_metrics: list[str] = dataclasses.field(default_factory=lambda: ["pesq_wb", "si_sdr"])  # mal.metrics names
    best_metric: str = "pesq_wb"  # what checkpoints/best.pt maximises ("loss" = the validation loss, minimised)
    calibrate: dict[str, float] = dataclasses.field(default_factory=dict)  # term → ratio: at the stage's start set
    #   that term's weight so it starts at ratio × the other weighted terms (measured as calibrate_by says), on the
    #   stage's first batch (e.g. {"mal": 1.0}: MAL starts level with the conventional terms; docs/method.md)
    calibrate_by: Literal["grad-norm", "value"] = "grad-norm"  # what `calibrate` matches. grad-norm: the term's
    #   gradient norm is ratio × the other terms', then every weight is scaled so that the total gradient is as
    #   long as the other terms' alone (the baseline's step sizes; mal.losses.gradient_matched_weights). value:
    #   the term's loss value (the feasibility runs' rule; their MAL branches stepped 2-5x further than the baseline)
    calibrate_every: int = 0  # repeat the calibration every N steps of the stage, on that step's batch (0 = the
    #   first batch only). The gradients' ratio drifts as the weights move: calibrated once, the quick study's MAL
    #   branches ended with a 1.5x larger gradient norm and weight change than the baseline (docs/method.md)
    freeze_encoder: bool = False  # train the decoder only: model.encoder is frozen for the whole stage, in both
    #   the forward and any loss that runs it (the conventional-frozen-encoder control of MAL frozen-fe)
    nan_policy: Literal["stop", "skip"] = "stop"  # non-finite loss: stop with a message, or skip the step
    max_skipped_steps: int = 50  # with nan_policy="skip": stop anyway after this many skipped steps
    progress: bool = True  # tqdm progress bar (rank 0)

    @classmethod
    def from_params(cls: type[C], params: Mapping[str, Any] | None = None, _where: str = "", **overrides: Any) -> C:
        """As :meth:`ConfigBase.from_params`, with the named recipe's preset under the given values."""
        merged = {**(params or {}), **overrides}
        recipe = merged.get("recipe", "conventional")
        if isinstance(recipe, str):
            # The loss section is merged key by key; calibrate and freeze_encoder are one value each (an explicit
            # {} / false turns them off).
            preset = load_recipe(recipe)
            merged["loss"] = {**preset["loss"], **(merged.get("loss") or {})}
            merged.setdefault("calibrate", preset["calibrate"])
            if "freeze_encoder" in preset:
                merged.setdefault("freeze_encoder", preset["freeze_encoder"])
        return super().from_params(merged, _where)  # type: ignore[misc]

    def validate(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"TrainConfig.steps must be >= 1, got {self.steps}")
        preset_terms = switched_on(load_recipe(self.recipe)["loss"])
        loss_terms = switched_on(self.loss.to_dict())
        if preset_terms != loss_terms:
            raise ConfigError(
                f"TrainConfig.recipe={self.recipe!r} switches on {sorted(preset_terms) or 'no feature term'} but the "
                f"loss has {sorted(loss_terms) or 'none'} above 0; name the recipe that matches the loss"
            )
        if self.stage == "stage2" and not self.init_checkpoint:
            raise ConfigError("TrainConfig.init_checkpoint: stage2 starts from a warm-up checkpoint; give its path")
        if self.stage == "warmup" and self.init_checkpoint:
            raise ConfigError(
                "TrainConfig.init_checkpoint is only read in stage2; a warm-up starts from scratch "
                f"(got {self.init_checkpoint!r} with stage='warmup')"
            )
        for name in ("valid_every", "checkpoint_every", "threads", "max_skipped_steps", "calibrate_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.log_every < 1:
            raise ConfigError(f"TrainConfig.log_every must be >= 1, got {self.log_every}")
        unknown = [m for m in self.valid_metrics if m not in HIGHER_IS_BETTER]
        if unknown:
            raise ConfigError(
                f"TrainConfig.valid_metrics: unknown {unknown}; choose from {sorted(HIGHER_IS_BETTER)} "
                "(DNSMOS/DistillMOS are too slow for validation; use mal evaluate)"
            )
        for term, ratio in self.calibrate.items():
            if getattr(self.loss, term, 0.0) <= 0:
                raise ConfigError(
                    f"TrainConfig.calibrate: term {term!r} has weight 0 in the loss recipe; switch it on (loss.{term})"
                )
            if ratio <= 0:
                raise ConfigError(f"TrainConfig.calibrate[{term!r}] must be > 0, got {ratio}")
        if self.best_metric != "loss" and self.best_metric not in self.valid_metrics:
            raise ConfigError(
                f"TrainConfig.best_metric={self.best_metric!r} must be 'loss' or one of valid_metrics "
                f"{self.valid_metrics}"
            )
