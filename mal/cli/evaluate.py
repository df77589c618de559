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
        help="dataset to evaluate on (repeatable), e.g. ood=mal-offline:data/corpora/quick:test_ood (a bare split "
        "name means the mal-offline corpus at data_root)",
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


def _label_value(text: str, option: str, form: str) -> tuple[str, str]:
    from mal.config import ConfigError

    label, sep, value = text.partition("=")
    if not sep or not label or not value:
        raise ConfigError(f"{option} {text!r}: expected {form}")
    return label, value


def run(args: argparse.Namespace) -> int:
    import yaml

    from mal.config import ConfigError
    from mal.data import DataError
    from mal.evaluate import EvalConfig, run_evaluation
    from mal.models.registry import CheckpointError

    try:
        params = EvalConfig.load(args.config).to_dict() if args.config else {}
        if args.baselines is not None:
            params["baselines"] = [b for b in args.baselines.split(",") if b]
        for item in args.checkpoint:
            name, path = _label_value(item, "--checkpoint", "NAME=PATH")
            params.setdefault("checkpoints", {})[name] = path
        if args.dataset:
            params["datasets"] = dict(_label_value(d, "--dataset", "LABEL=LOADER:ROOT[:SPLIT]") for d in args.dataset)
        if args.metrics:
            params["metrics"] = [m.strip() for m in args.metrics.split(",") if m.strip()]
        for field, value in (
            ("workers", args.workers),
            ("out_dir", args.out),
            ("max_files", args.max_files),
            ("audio_examples", args.audio_examples),
            ("device", args.device),
        ):
            if value is not None:
                params[field] = value
        if args.quiet:
            params["progress"] = False
        result = run_evaluation(EvalConfig.from_params(params))
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
