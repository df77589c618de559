"""Command-line entry points, one module per command (see mal/__main__.py)."""
