"""Command line: ``python -m mal <command> ...``.

Each command lives in ``mal/cli/<command>.py`` with a one-line module docstring (its help), an
``add_arguments(parser)`` and a ``run(args) -> int``. The CLI is the only place that sees an argparse
namespace: ``run`` turns it into typed configs and calls the library.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

# Order shown in --help: the pipeline's own order.
COMMANDS = ("corpus", "train", "sweep", "evaluate", "enhance", "pipeline")


def available_commands() -> list[str]:
    """Commands whose module exists in this installation."""
    return [c for c in COMMANDS if importlib.util.find_spec(f"mal.cli.{c}") is not None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mal", description="Model as Loss for speech enhancement.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name in available_commands():
        module = importlib.import_module(f"mal.cli.{name}")
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else "", description=(module.__doc__ or "").strip())
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
