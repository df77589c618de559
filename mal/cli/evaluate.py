"""Evaluate systems (noisy input, spectral gating, checkpoints) on datasets; writes per-file and summary tables.

Examples:
  python -m mal evaluate --config eval.yaml      (an EvalConfig written as YAML)
  python -m mal evaluate --dataset in=mal-offline:data/corpora/quick:test \
      --dataset ood=mal-offline:data/corpora/quick:test_ood --checkpoint mal=runs/mal/last.pt --workers 2
  python -m mal evaluate --dataset vbd=voicebank-demand:/data/vbd:test --metrics pesq_wb,stoi,estoi,si_sdr
"""

from __future__ import annotations

import argparse

from mal.cli import report_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML EvalConfig; the options below override or extend it")
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="LABEL=LOADER:ROOT[:SPLIT]",
        help="dataset to evaluate on (repeatable), e.g. ood=mal-offline:data/corpora/quick:test_ood",
    )
    parser.add_argument(
        "--checkpoint", action="append", default=[], metavar="NAME=PATH", help="checkpoint system (repeatable)"
    )
    parser.add_argument(
        "--baselines",
        default=None,
        help="comma-separated reference systems among noisy,spectral-gating,oracle-mask (default all; '' for none)",
    )
    parser.add_argument("--metrics", help="comma-separated metric names (default: every metric defined at 16 kHz)")
    parser.add_argument("--workers", type=int, help="scoring processes (default 1)")
    parser.add_argument("--out", help="output folder (default runs/evaluate)")
    parser.add_argument("--max-files", type=int, default=None, help="first N files of each dataset (0 = all)")
    parser.add_argument("--audio-examples", type=int, default=None, help="write enhanced audio of N files/dataset")
    parser.add_argument("--device", default=None, help="model device (default: CUDA when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_dataset(text: str, max_files: int | None) -> dict:
    """``LABEL=LOADER:ROOT[:SPLIT]`` → DatasetSpec fields (the root may itself contain ':' only with a split)."""
    from mal.config import ConfigError

    label, sep, rest = text.partition("=")
    loader, sep2, location = rest.partition(":")
    if not sep or not sep2 or not label or not loader or not location:
        raise ConfigError(f"--dataset {text!r}: expected LABEL=LOADER:ROOT[:SPLIT]")
    root, split = location, ""
    head, sep3, tail = location.rpartition(":")
    if sep3 and "/" not in tail and "\\" not in tail:
        root, split = head, tail
    spec = {"name": label, "loader": loader, "root": root, "split": split}
    if max_files is not None:
        spec["max_files"] = max_files
    return spec


def run(args: argparse.Namespace) -> int:
    import yaml

    from mal.config import ConfigError
    from mal.data import DataError
    from mal.evaluate import DEFAULT_BASELINES, EvalConfig, run_evaluation
    from mal.models.registry import CheckpointError

    try:
        params = {}
        if args.config:
            params = EvalConfig.load(args.config).to_dict()
        systems = params.get("systems")
        if systems is None or args.baselines is not None or args.checkpoint:
            base = ",".join(DEFAULT_BASELINES) if args.baselines is None else args.baselines
            if systems is None or args.baselines is not None:
                systems = [{"name": b, "kind": b} for b in base.split(",") if b]
            for item in args.checkpoint:
                name, sep, path = item.partition("=")
                if not sep or not name or not path:
                    raise ConfigError(f"--checkpoint {item!r}: expected NAME=PATH")
                systems.append({"name": name, "kind": "checkpoint", "checkpoint": path})
        params["systems"] = systems
        if args.dataset:
            params["datasets"] = [parse_dataset(d, args.max_files) for d in args.dataset]
        elif args.max_files is not None:
            params["datasets"] = [{**d, "max_files": args.max_files} for d in params.get("datasets", [])]
        if args.metrics:
            params["metrics"] = [m.strip() for m in args.metrics.split(",") if m.strip()]
        for field, value in (
            ("workers", args.workers),
            ("out_dir", args.out),
            ("audio_examples", args.audio_examples),
            ("device", args.device),
        ):
            if value is not None:
                params[field] = value
        if args.quiet:
            params["progress"] = False
        cfg = EvalConfig.from_params(params)
        result = run_evaluation(cfg)
    except (ConfigError, DataError, CheckpointError) as err:
        return report_error("evaluate", err)
    table = result.summary.pivot_table(index=["dataset", "system"], columns="metric", values="mean", sort=False)
    print(table.round(3).to_string())
    print(yaml.safe_dump({"wrote": [str(result.out_dir / n) for n in ("per_file.csv", "summary.csv")]}).strip())
    failed = result.failures()
    for (system, dataset, file_id), reason in failed.items():
        report_error("evaluate", f"{dataset}/{file_id} ({system}): {reason}")
    if failed:
        n_files = len({(dataset, file_id) for _, dataset, file_id in failed})
        return report_error("evaluate", f"{n_files} file(s) failed; their rows in per_file.csv say why")
    return 0
