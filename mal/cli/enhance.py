"""Enhance a file or a folder of audio with a trained checkpoint (writes 16 kHz mono WAV, FLAC, OGG or MP3)."""

from __future__ import annotations

import argparse

from mal.cli import report_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="noisy audio file, or a folder searched recursively for .wav/.flac/.ogg")
    parser.add_argument(
        "output", help="output file (.wav, .flac, .ogg, .mp3), or folder (input sub-folders are mirrored)"
    )
    parser.add_argument("--checkpoint", required=True, help="mal checkpoint (.pt) to enhance with")
    parser.add_argument(
        "--float", action="store_true", help="write 32-bit float .wav samples instead of 16-bit PCM (no clipping)"
    )
    parser.add_argument(
        "--chunk-seconds", type=float, default=10.0, help="chunk length for long files; 0 = whole file (default 10)"
    )
    parser.add_argument("--overlap-seconds", type=float, default=0.5, help="cross-faded overlap between chunks")
    parser.add_argument("--device", default="", help="cpu, cuda, cuda:1 … (default: CUDA when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import warnings

    from mal.audio import AudioError
    from mal.config import ConfigError
    from mal.enhance import EnhanceConfig, ModelDivergedError, enhance_path
    from mal.models.registry import CheckpointError

    try:
        cfg = EnhanceConfig.from_params(
            checkpoint=args.checkpoint,
            subtype="FLOAT" if args.float else "PCM_16",
            chunk_seconds=args.chunk_seconds,
            overlap_seconds=args.overlap_seconds,
            device=args.device,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*file\\(s\\) failed; see")  # each one is reported below
            result = enhance_path(
                args.input,
                args.output,
                cfg.checkpoint,
                subtype=cfg.subtype,
                chunk_seconds=cfg.chunk_seconds if cfg.chunk_seconds > 0 else None,
                overlap_seconds=cfg.overlap_seconds,
                device=cfg.device or None,
                progress=not args.quiet,
            )
    except (AudioError, ConfigError, CheckpointError, ModelDivergedError) as err:
        return report_error("enhance", err)
    print(f"wrote {len(result.written)} file(s) under {args.output}")
    for src, reason in result.failed.items():
        report_error("enhance", f"{src}: {reason}")
    if result.failed:
        return report_error("enhance", f"{len(result.failed)} file(s) failed; see {result.summary}")
    return 0
