"""Train a speech-enhancement model in two stages: a conventional warm-up, then MAL (or a comparator).

::

    from mal.train import TrainConfig, train
    warm = train(TrainConfig.load("configs/quick/train_warmup.yaml"))
    stage2 = yaml.safe_load(open("configs/quick/train_stage2.yaml"))    # recipe: conventional (the baseline)
    mal_run = train(TrainConfig.from_params({**stage2, "recipe": "mal-frozen"}))  # the preset fills the loss

The same from the shell: ``python -m mal train --config configs/quick/train_warmup.yaml [--resume]`` and
``python -m mal train --config configs/quick/train_stage2.yaml --set recipe=mal-frozen``, and
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
