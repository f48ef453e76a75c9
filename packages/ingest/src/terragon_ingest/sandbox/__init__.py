"""Sandboxes, seen two ways: a read-only reader (run correlation) and delivery (run start).

`reader` may never import the run-context writers (import-linter enforces it); `delivery` is used
only by run start.
"""
