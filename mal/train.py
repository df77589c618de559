"""Train a speech-enhancement model in two stages: a conventional warm-up, then MAL (or a comparator).

::

    from mal.plan import StudyPlan
    from mal.train import train
    study = StudyPlan.for_profile("quick")                       # configs/pipeline/quick.yaml
    warm = train(study.training_config("warmup-bandcrn"))
    mal_run = train(study.training_config("bandcrn-mal-frozen"))  # continues the warm-up's last.pt

The same from the shell: ``python -m mal train --study quick --run warmup-bandcrn [--resume]``, then
``--run bandcrn-mal-frozen``; ``python -m mal train --config my.yaml`` takes any TrainConfig YAML, and
on several GPUs or nodes: ``python -m torch.distributed.run --nproc_per_node 4 -m mal train --config ...``.
See :mod:`mal.training.loop` for what a stage does and :mod:`mal.training.data` for why every stage-2
branch sees the same batches.
"""

from __future__ import annotations

from mal.training.checkpoint import read_training_checkpoint
from mal.training.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
from mal.training.history import read_history
from mal.training.loop import NonFiniteLossError, TrainResult, train
from mal.training.recipes import load_recipe, recipe_names

__all__ = [
    "DataConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "load_recipe",
    "read_history",
    "read_training_checkpoint",
    "recipe_names",
    "train",
]
