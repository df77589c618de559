"""Training engine for the two-stage MAL paradigm (warm-up → stage 2). The public entry is :mod:`mal.train`.

Modules: ``config`` (typed configs), ``loop`` (the trainer), ``data`` (step-seeded batches), ``schedule``
(LR as a function of the global step), ``checkpoint`` (atomic training checkpoints with RNG state),
``validate``, ``history`` (history.jsonl), ``distributed`` (torchrun / DDP), ``recipes`` (the loss presets in
configs/recipes/).
"""
