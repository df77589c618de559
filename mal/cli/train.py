"""Train one stage (warm-up or stage 2) of a study, or from a YAML TrainConfig; works under torchrun for DDP.

Examples:
  python -m mal train --study quick --run warmup-bandcrn          (configs/pipeline/quick.yaml)
  python -m mal train --study quick --run bandcrn-mal-frozen
  python -m mal train --study quick --run bandcrn-mal-frozen --set calibrate.mal=4.0 --set run_dir=runs/x
  python -m mal train --study quick --run warmup-bandcrn --resume
  python -m mal train --config my_train.yaml                        (any TrainConfig written as YAML)
  python -m torch.distributed.run --nproc_per_node 4 -m mal train --study full --run warmup-specmask
"""

from __future__ import annotations

import argparse
import json
import logging

from mal.cli import report_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--study", metavar="PROFILE", help="a study plan, configs/pipeline/<PROFILE>.yaml (with --run)")
    source.add_argument("--config", help="a YAML TrainConfig")
    parser.add_argument("--run", help="with --study: the warm-up or system to train, e.g. warmup-bandcrn")
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

    from mal.config import ConfigError, apply_overrides, parse_override
    from mal.data import DataError
    from mal.models.registry import CheckpointError
    from mal.plan import StudyPlan
    from mal.train import NonFiniteLossError, TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.study:
            if not args.run:
                raise ConfigError("--study needs --run NAME: one of the study's warm-ups or systems")
            raw = StudyPlan.for_profile(args.study).training_config(args.run).to_dict()
        else:
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
