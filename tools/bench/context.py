"""What every benchmark receives: the options, a scratch directory, the running stack."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.bench.stack import Stack


@dataclass
class Options:
    quick: bool = False
    connections: int = 32
    seconds: float = 10.0
    """Per load phase (≥ 10 s in the full mode, ~3 s with --quick)."""
    soak_seconds: float = 0.0
    soak_rate: float = 0.7
    profile: bool = False
    """Sample the service with py-spy during the apply load."""
    workers: int = 1
    """Worker processes of the service and of the no-I/O ceiling (the same server setup)."""
    replicas: int = 1
    """Soak: service replicas (behind the balancing proxy when more than one)."""
    s3: bool = False
    """Soak: the archive and payloads on a moto S3 bucket."""


@dataclass
class Context:
    options: Options
    workdir: Path
    stack: Stack
    status: Callable[[str], None] = print
    _phases: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def phase(self) -> int:
        """A fresh number per load phase (keeps event ids and thread ids unique)."""
        return next(self._phases)
