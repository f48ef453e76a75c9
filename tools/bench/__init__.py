"""Benchmarks with their ceilings measured in the same run: `uv run python -m tools.bench --help`."""
