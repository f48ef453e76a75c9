"""Runs: threads, run rows, the run-context pointer and its writers, flags, daemon tokens."""
