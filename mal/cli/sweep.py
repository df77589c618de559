"""Run an ablation sweep: notebook 02 once per grid point (papermill), results collected into one CSV.

Examples:
  python -m mal sweep configs/sweeps/mal_variants.yaml
  python -m mal sweep configs/sweeps/mal_variants.yaml --dry-run      # list the points only
  python -m mal sweep configs/sweeps/mal_variants.yaml --cores 4 --force
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="sweep YAML (configs/sweeps/*.yaml)")
    parser.add_argument("--cores", type=int, default=None, help="override the sweep's cores")
    parser.add_argument("--force", action="store_true", help="rerun points that already finished")
    parser.add_argument("--dry-run", action="store_true", help="print the points and their parameters, run nothing")


def run(args: argparse.Namespace) -> int:
    from mal.sweep import SweepConfig, build_steps, run_sweep

    cfg = SweepConfig.load(args.config)
    if args.cores is not None:
        cfg = cfg.replace(cores=args.cores)
    if args.dry_run:
        for step in build_steps(cfg):
            print(f"{step.name}  (after {', '.join(step.deps)})" if step.deps else step.name)
            print("  " + json.dumps(step.params))
        return 0
    table = run_sweep(cfg, force=args.force)
    print(f"{len(table)} runs → {cfg.root / 'results.csv'}")
    return 0
