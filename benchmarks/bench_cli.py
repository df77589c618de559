"""CPU time of ``python -m mal --help`` and of an argument error, beside a bare interpreter and ``import torch``.

Each command runs in a fresh interpreter; its CPU time (user + system, from ``RUSAGE_CHILDREN``) is what the
shell's ``time`` reports as user + sys. The commands take turns within each round; medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("python -m mal --help", ["-m", "mal", "--help"]),
    ("python -m mal enhance (argument error)", ["-m", "mal", "enhance"]),
    ("python -m mal train --help", ["-m", "mal", "train", "--help"]),
    ("python -c 'import torch'", ["-c", "import torch"]),
]


def cpu_seconds(args: list[str]) -> float:
    """User + system CPU seconds of one ``python <args>`` run (its exit status is not checked: errors count)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, *args], env=env, capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(rounds: int = 5) -> list[tuple[str, float]]:
    samples: list[list[float]] = [[] for _ in COMMANDS]
    for _ in range(rounds):
        for (_, args), times in zip(COMMANDS, samples, strict=True):
            times.append(cpu_seconds(args))
    return [(label, statistics.median(times)) for (label, _), times in zip(COMMANDS, samples, strict=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv or [])
    print(f"{'command':<42} CPU s (median of {args.rounds})")
    for label, seconds in measure(args.rounds):
        print(f"{label:<42} {seconds:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
