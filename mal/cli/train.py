"""Train one stage (warm-up or stage 2) from a YAML TrainConfig; works under torchrun for DDP.

Examples:
  python -m mal train --config configs/quick/train_warmup.yaml
  python -m mal train --config configs/quick/train_mal_frozen.yaml \
      --set init_checkpoint=runs/quick/warmup/checkpoints/last.pt
  python -m mal train --config configs/quick/train_warmup.yaml --resume
  python -m torch.distributed.run --nproc_per_node 4 -m mal train --config configs/full/train_warmup.yaml
"""

from __future__ import annotations

import argparse
import json
import logging

from mal.cli import report_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML TrainConfig (configs/quick/train_*.yaml, ...)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue run_dir from checkpoints/last.pt")
    mode.add_argument("--overwrite", action="store_true", help="discard a run already in run_dir")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field by dotted name, e.g. --set optim.lr=3e-4 --set run_dir=runs/x (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar (log files, batch jobs)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from mal.config import ConfigError
    from mal.data import DataError
    from mal.models.registry import CheckpointError
    from mal.train import NonFiniteLossError, TrainConfig, apply_overrides, train
    from mal.training.params import parse_override

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"--config: {path} not found")
        raw = yaml.safe_load(path.read_text()) or {}
        overrides = dict(parse_override(o) for o in args.overrides)
        if args.no_progress:
            overrides["progress"] = False
        cfg = TrainConfig.from_params(apply_overrides(raw, overrides))
        if_exists = "resume" if args.resume else "overwrite" if args.overwrite else "error"
        result = train(cfg, if_exists=if_exists)
    except (ConfigError, DataError, CheckpointError, FileExistsError, NonFiniteLossError) as err:
        return report_error("train", err)
    if result.summary:
        keys = ("stage", "global_step", "step_time_s", "samples_per_s", "valid", "noisy", "best")
        print(json.dumps({k: result.summary.get(k) for k in keys}, indent=2, default=str))
    return 0
