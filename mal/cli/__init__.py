"""Command-line entry points, one module per command (see mal/__main__.py).

Command modules import only the standard library at the top (``--help`` and argument errors must answer
without loading torch); each ``run`` imports what its command needs.
"""

from __future__ import annotations

import sys


def report_error(command: str, err: BaseException | str) -> int:
    """Print ``err`` as one line on stderr, prefixed with the command; returns the exit status 1."""
    print(f"python -m mal {command}: error: {err}", file=sys.stderr)
    return 1
