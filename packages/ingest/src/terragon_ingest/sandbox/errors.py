"""What reading a sandbox can fail with; correlation turns each into an `inconclusive` outcome or
a `working-tree-fallback` diff source, with the message as the reason."""

from __future__ import annotations


class SandboxReadError(Exception):
    """The sandbox could not be read (no checkout, git failed, timed out, output over the cap)."""


class SandboxFileRefused(SandboxReadError):
    """A file the reader was asked for is there but is not a plain, small file inside the
    checkout (a FIFO, a device, a directory, a symlink, over the size cap): it is not read."""
