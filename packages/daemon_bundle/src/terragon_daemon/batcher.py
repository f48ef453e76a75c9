"""When to seal a batch: on the flush interval, the message count or the byte cap.

Pure bookkeeping over raw JSON messages with an injected clock; the run decides what sealing
means. A message's size is its JSON length; a message larger than the byte cap travels alone
(the server may answer 413; the batch is then dead-lettered).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Batcher:
    """Collects agent messages until a batch is due."""

    def __init__(
        self,
        *,
        max_messages: int,
        max_bytes: int,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_messages < 1 or max_bytes < 1 or interval < 0:
            raise ValueError("batch limits must be positive")
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._interval = interval
        self._clock = clock
        self._pending: list[bytes] = []
        self._bytes = 0
        self._first_at: float | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, message: bytes) -> list[list[bytes]]:
        """Add one message; return the batches that became full (zero, one or two)."""
        full: list[list[bytes]] = []
        size = len(message)
        if self._pending and self._bytes + size > self._max_bytes:
            full.append(self.take())
        if not self._pending:
            self._first_at = self._clock()
        self._pending.append(message)
        self._bytes += size
        if len(self._pending) >= self._max_messages or self._bytes >= self._max_bytes:
            full.append(self.take())
        return full

    def take(self) -> list[bytes]:
        """Everything pending, leaving the batcher empty."""
        batch, self._pending = self._pending, []
        self._bytes = 0
        self._first_at = None
        return batch

    def seconds_until_due(self) -> float | None:
        """None while empty; otherwise how long until the interval flush (<= 0: due now)."""
        if self._first_at is None:
            return None
        return self._first_at + self._interval - self._clock()
