"""Flat training parameters (a notebook's parameters cell, a sweep grid) → a nested :class:`TrainConfig`.

Notebooks and sweeps speak in a handful of flat, named knobs (``recipe="mal"``, ``mal_variant="frozen"``,
``lambda_mal=1.0`` ...); the trainer wants the nested config. :class:`TrainingParams` is the flat form, typed
and validated like every config, and :meth:`TrainingParams.to_train_config` is the one documented mapping:

1. start from ``base_config`` (a named YAML TrainConfig, e.g. ``configs/quick/train_warmup.yaml``) or the
   TrainConfig defaults;
2. set the fields the flat knobs name (run_dir, stage, steps, model, batch size, device, ...);
3. build the loss from ``recipe``:

   ============== ====================================================================================
   recipe         loss
   ============== ====================================================================================
   conventional   the base config's conventional terms (normalised L1 + MR-STFT by default)
   mal            ``lambda_mal`` · MAL(mal_variant, mal_layers) + ``lambda_rec`` · conventional terms
                  (``calibrate=True``: λ_mal is set at the stage start so that the MAL term starts at
                  ``lambda_mal`` × the conventional terms)
   deep_feature   ``lambda_mal`` · deep feature loss(deep_feature_backbone) + ``lambda_rec`` · conventional
   lossnet        ``lambda_mal`` · pretrained lossnet(lossnet_path) + ``lambda_rec`` · conventional
   ============== ====================================================================================

4. apply ``overrides``: dotted keys into the nested config (``{"optim.lr": 3e-4}``), for anything else.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from mal.config import ConfigBase, ConfigError
from mal.training.config import TrainConfig

# The conventional terms of a LossConfig, scaled by lambda_rec when another term leads the recipe.
CONVENTIONAL_TERMS = ("l1", "mrstft", "spectral", "sisdr")
# The non-conventional terms; a recipe switches on one of them and switches off the others.
FEATURE_TERMS = ("mal", "deep_feature", "lossnet")


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of the nested mapping ``config`` with dotted-key ``overrides`` set.

    ``apply_overrides({"optim": {"lr": 1e-3}}, {"optim.lr": 3e-4})`` → ``{"optim": {"lr": 3e-4}}``. A key
    whose parent is missing creates it; the config class rejects names that do not exist.
    """
    out = copy.deepcopy(dict(config))
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {part!r} is a value ({child!r}), not a section")
            node = child
        node[parts[-1]] = value
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=3e-4"`` → ``("optim.lr", 0.0003)``; the value is read as YAML (numbers, lists, true/false)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. optim.lr=3e-4)")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


@dataclasses.dataclass
class TrainingParams(ConfigBase):
    """The flat knobs of notebook 02 and of ablation sweeps (see the module docstring for the mapping)."""

    run_dir: str = "runs/02_training"  # outputs of this run
    base_config: str = "configs/quick/train_warmup.yaml"  # named TrainConfig the knobs below override ("" = defaults)
    stage: Literal["warmup", "stage2"] = "warmup"  # stage 1 from scratch, or stage 2 from init_checkpoint
    init_checkpoint: str = ""  # stage2: the warm-up run's checkpoints/last.pt
    corpus_root: str = ""  # corpus root ("" = the base config's data.root)
    model: str = ""  # model name ("" = the base config's); hyperparameters via overrides {"model.hparams": {...}}
    recipe: Literal["conventional", "mal", "deep_feature", "lossnet"] = "conventional"  # loss recipe
    mal_variant: Literal["frozen", "frozen-fe", "dynamic"] = "frozen"  # recipe=mal: which MAL encoder
    mal_layers: str = "all"  # recipe=mal: "bottleneck", "all" or comma-separated indices ("0,2,-1")
    mal_distance: Literal["l1", "l2"] = "l1"  # recipe=mal: feature distance
    mal_encoder_grad: bool = False  # recipe=mal, dynamic: let the MAL term train the encoder too
    lambda_mal: float = 1.0  # weight of the MAL / deep-feature / lossnet term
    lambda_rec: float = 1.0  # weight of the conventional terms next to it (recipe != conventional)
    calibrate: bool = False  # read lambda_mal as a ratio: the feature term starts at lambda_mal × the others
    deep_feature_backbone: str = "wavlm_base"  # recipe=deep_feature: torchaudio backbone
    lossnet_path: str = ""  # recipe=lossnet: the pretrained lossnet checkpoint
    steps: int = 0  # optimiser steps in this stage (0 = the base config's)
    batch_size: int = 0  # segments per step (0 = the base config's)
    lr: float = 0.0  # peak learning rate (0 = the base config's)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where to train
    threads: int = 0  # torch CPU threads (0 = the base config's; 1 lets two runs share two cores)
    seed: int = -1  # data order / init seed (-1 = the base config's)
    if_exists: Literal["error", "resume", "overwrite"] = "overwrite"  # when run_dir already holds a run
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # dotted keys, e.g. {"optim.lr": 3e-4}

    def validate(self) -> None:
        if self.stage == "stage2" and not self.init_checkpoint:
            raise ConfigError("TrainingParams.init_checkpoint: stage2 needs the warm-up run's checkpoints/last.pt")
        if self.recipe == "lossnet" and not self.lossnet_path:
            raise ConfigError("TrainingParams.lossnet_path: recipe='lossnet' needs a pretrained lossnet checkpoint")
        parse_layers(self.mal_layers)

    def to_train_config(self) -> TrainConfig:
        """The nested TrainConfig these parameters describe."""
        if self.base_config:
            path = Path(self.base_config)
            if not path.is_file():
                raise ConfigError(f"TrainingParams.base_config: {path} not found (run from the repository root?)")
            base = yaml.safe_load(path.read_text()) or {}
        else:
            base = {}
        cfg = TrainConfig.from_params(base).to_dict()
        cfg["run_dir"] = self.run_dir
        cfg["stage"] = self.stage
        cfg["init_checkpoint"] = self.init_checkpoint if self.stage == "stage2" else ""
        cfg["device"] = self.device
        if self.corpus_root:
            cfg["data"]["root"] = self.corpus_root
        if self.model and self.model != cfg["model"]["name"]:
            cfg["model"] = {"name": self.model, "hparams": {}}
        if self.steps:
            cfg["steps"] = self.steps
        if self.batch_size:
            cfg["data"]["batch_size"] = self.batch_size
        if self.lr:
            cfg["optim"]["lr"] = self.lr
        if self.threads:
            cfg["threads"] = self.threads
        if self.seed >= 0:
            cfg["seed"] = self.seed
        cfg["loss"] = self.loss_dict(cfg["loss"])
        feature_term = {"mal": "mal", "deep_feature": "deep_feature", "lossnet": "lossnet"}.get(self.recipe)
        cfg["calibrate"] = {feature_term: self.lambda_mal} if self.calibrate and feature_term else {}
        return TrainConfig.from_params(apply_overrides(cfg, self.overrides))

    def loss_dict(self, base_loss: Mapping[str, Any]) -> dict[str, Any]:
        """The LossConfig mapping of ``recipe`` on top of the base config's conventional terms."""
        loss = dict(base_loss)
        for term in FEATURE_TERMS:
            loss[term] = 0.0
        if self.recipe == "conventional":
            return loss
        for term in CONVENTIONAL_TERMS:
            loss[term] = float(loss.get(term, 0.0)) * self.lambda_rec
        if self.recipe == "mal":
            loss.update(
                mal=self.lambda_mal,
                mal_variant=self.mal_variant,
                mal_layers=parse_layers(self.mal_layers),
                mal_distance=self.mal_distance,
                mal_encoder_grad=self.mal_encoder_grad,
            )
        elif self.recipe == "deep_feature":
            loss.update(deep_feature=self.lambda_mal, deep_feature_backbone=self.deep_feature_backbone)
        else:
            loss.update(lossnet=self.lambda_mal, lossnet_path=self.lossnet_path)
        return loss


def parse_layers(text: str) -> str | list[int]:
    """``"all"`` / ``"bottleneck"`` stay names; ``"0,2,-1"`` becomes ``[0, 2, -1]``."""
    text = text.strip()
    if text in ("all", "bottleneck"):
        return text
    try:
        layers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"mal_layers={text!r}: use 'bottleneck', 'all' or comma-separated encoder indices like '0,2,-1'"
        ) from None
    if not layers:
        raise ConfigError("mal_layers is empty; use 'bottleneck', 'all' or indices like '0,2,-1'")
    return layers
