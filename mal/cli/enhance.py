"""Enhance a file or a folder of audio with a trained checkpoint (writes 16 kHz mono WAV/FLAC)."""

from __future__ import annotations

import argparse

from mal.audio import AudioError
from mal.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="noisy audio file, or a folder searched recursively for .wav/.flac/.ogg")
    parser.add_argument("output", help="output file, or folder (input sub-folders are mirrored)")
    parser.add_argument("--checkpoint", required=True, help="mal checkpoint (.pt) to enhance with")
    parser.add_argument(
        "--float", action="store_true", help="write 32-bit float samples instead of 16-bit PCM (no clipping)"
    )
    parser.add_argument(
        "--chunk-seconds", type=float, default=10.0, help="chunk length for long files; 0 = whole file (default 10)"
    )
    parser.add_argument("--overlap-seconds", type=float, default=0.5, help="cross-faded overlap between chunks")
    parser.add_argument("--device", default="", help="cpu, cuda, cuda:1 … (default: CUDA when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from mal.enhance import EnhanceConfig, enhance_path
    from mal.models.registry import CheckpointError

    try:
        cfg = EnhanceConfig.from_params(
            checkpoint=args.checkpoint,
            subtype="FLOAT" if args.float else "PCM_16",
            chunk_seconds=args.chunk_seconds,
            overlap_seconds=args.overlap_seconds,
            device=args.device,
        )
        written = enhance_path(
            args.input,
            args.output,
            cfg.checkpoint,
            subtype=cfg.subtype,
            chunk_seconds=cfg.chunk_seconds if cfg.chunk_seconds > 0 else None,
            overlap_seconds=cfg.overlap_seconds,
            device=cfg.device or None,
            progress=not args.quiet,
        )
    except (AudioError, ConfigError, CheckpointError) as err:
        print(f"mal enhance: error: {err}")
        return 1
    print(f"wrote {len(written)} file(s) under {args.output}")
    return 0
