"""Fault campaign against a fleet of real daemons: `uv run python -m tools.chaos --help`."""
