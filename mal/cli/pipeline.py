"""Run the whole study: corpus, lossnet, warm-ups, stage-2 systems, analysis, evaluation, results.md.

Profiles live in configs/pipeline/<profile>.yaml: `quick` is the powered CPU study (10 systems x 3 stage-2
seeds; about 2 hours on 2 cores), `full` is meant for a GPU (hours), `smoke` is the tiny one the tests run.
--set changes any field of the plan, e.g. --set seeds=[0] for a one-seed look at a third of the training time
(its differences carry no seed-to-seed uncertainty). Steps whose outputs are complete for the same parameters
are skipped; --force reruns them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", help="configs/pipeline/<profile>.yaml (default: quick)")
    parser.add_argument("--config", type=Path, help="a pipeline YAML file instead of a named profile")
    parser.add_argument("--seed", type=int, help="override the profile's seed")
    parser.add_argument("--runs-root", help="parent folder of the study (default: runs)")
    parser.add_argument("--data-root", help="corpus root (default: data/corpora/<corpus profile>)")
    parser.add_argument("--cores", type=int, help="CPU cores to pack steps onto")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a study-plan field by dotted name (repeatable), e.g. --set seeds=[0] --set stage2.steps=200",
    )
    parser.add_argument("--force", action="store_true", help="rerun every step even when its outputs are complete")
    parser.add_argument("--dry-run", action="store_true", help="list the steps and their parameters, run nothing")


def run(args: argparse.Namespace) -> int:
    from mal.cli import report_error
    from mal.config import ConfigError

    try:
        return _run(args)
    except ConfigError as err:  # a bad profile, plan field or --set: one line, not a traceback
        return report_error("pipeline", err)


def _run(args: argparse.Namespace) -> int:
    from mal.pipeline import run_pipeline
    from mal.plan import StudyPlan, build_steps
    from mal.runner import fingerprints, is_complete

    overrides = {
        key: value
        for key, value in {
            "seed": args.seed,
            "runs_root": args.runs_root,
            "data_root": args.data_root,
            "cores": args.cores,
        }.items()
        if value is not None
    }
    if args.config:
        cfg = StudyPlan.load(args.config)
        cfg = cfg.replace(**overrides) if overrides else cfg
    else:
        cfg = StudyPlan.for_profile(args.profile, **overrides)
    if args.set:
        from mal.config import apply_overrides, parse_override

        cfg = StudyPlan.from_params(apply_overrides(cfg.to_dict(), dict(parse_override(t) for t in args.set)))
    if args.dry_run:
        steps = build_steps(cfg)
        prints = fingerprints(steps)
        for step in steps:
            deps = f" after {', '.join(step.deps)}" if step.deps else ""
            state = "run" if args.force or not is_complete(step, prints[step.name]) else "done"
            print(f"[{state}] {step.name}: notebooks/{step.notebook}.ipynb → {step.run_dir}{deps}")
        return 0
    results = run_pipeline(cfg, force=args.force)
    print(f"results: {results}")
    return 0
