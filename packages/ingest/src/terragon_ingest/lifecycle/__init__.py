"""Lifecycle: periodic jobs (maintenance sweep, rollup, retention) and their scheduler."""
