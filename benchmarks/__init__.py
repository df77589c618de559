"""Speed benchmarks: each ``bench_*.py`` module has a ``main()`` that prints a side-by-side table.

Run all of them with ``python -m benchmarks`` (or ``make bench``), or some with ``python -m benchmarks models``.
"""
