"""Run every ``benchmarks/bench_*.py`` module's ``main()`` in turn (or only those named on the command line)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def discover() -> list[str]:
    """Names of the benchmark modules, without the ``bench_`` prefix, sorted."""
    folder = Path(__file__).parent
    return sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    names = discover()
    wanted = list(sys.argv[1:] if argv is None else argv) or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
        return 2
    for name in wanted:
        print(f"=== benchmarks.bench_{name} ===", flush=True)
        start = time.perf_counter()
        importlib.import_module(f"benchmarks.bench_{name}").main()
        print(f"=== bench_{name} done in {time.perf_counter() - start:.1f} s ===\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
