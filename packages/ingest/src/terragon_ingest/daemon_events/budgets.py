"""Per-run budgets (CONTRACT §4 "Budgets"): one tenant cannot starve another.

A run (the run its daemon token was minted for) may send at most
`TERRAGON_RUN_MAX_MESSAGES_PER_MINUTE` messages and `TERRAGON_RUN_MAX_BYTES_PER_MINUTE` body bytes
per one-minute window; over either → 429 `rate_limited` with `Retry-After`, nothing stored. An
envelope that alone exceeds a budget can never fit: it is admitted and quarantined
`invalid_envelope` (`never_fits`), and it uses up the rest of its run's window.

- **Fixed windows** (epoch minutes), not sliding: two counters per run, and `Retry-After` is
  simply the window's end, when the whole budget is back.
- **No round trip on the hot path**: each worker decides from its own memory. A background task
  (`run`) adds the increments of every run it admitted to Valkey every
  `TERRAGON_RUN_BUDGET_SYNC_SECONDS` (one pipeline) and reads back the totals, so the workers and
  replicas share one budget. The overshoot is bounded by the sync interval: a run can exceed its
  budget by what the other workers admit for it before they next sync.
- **Valkey, not PostgreSQL**, holds the shared counters: they live two windows and are written by
  every worker several times a second; in PostgreSQL they would cost WAL and vacuum for rows
  nobody keeps, on the database the envelopes need.
- **A budget outage never stops ingest**: when Valkey is down each worker's own accounting
  decides; the failure is logged once (and once when it heals) and counted
  (`preview.budget_sync_failure`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from terragon_core import (
    RUN_BUDGET_BYTES_FIELD,
    RUN_BUDGET_MESSAGES_FIELD,
    MetricName,
    run_budget_key,
)

if TYPE_CHECKING:
    from valkey.asyncio import Valkey

    from terragon_ingest.settings import Settings
    from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()

WINDOW_SECONDS = 60
_KEY_TTL_SECONDS = 2 * WINDOW_SECONDS
_NOTHING = (0, 0)


class RunBudgets:
    """One worker's accounting of every run's usage in the current window."""

    def __init__(
        self,
        *,
        max_messages: int,
        max_bytes: int,
        valkey: Valkey | None = None,
        env: str = "dev",
        metrics: Metrics | None = None,
        sync_seconds: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._valkey = valkey
        self._env = env
        self._metrics = metrics
        self._sync_seconds = sync_seconds
        self._clock = clock  # wall clock: every worker and replica must agree on the window
        self._window = -1
        self._stopped = False
        self._used: dict[str, list[int]] = {}
        """run id → [messages, bytes]: the totals Valkey last answered plus what this worker
        admitted since."""
        self._unsynced: dict[str, list[int]] = {}
        """run id → [messages, bytes] admitted here and not yet added to Valkey."""
        self._sync_down = False

    @classmethod
    def from_settings(
        cls, settings: Settings, valkey: Valkey | None, metrics: Metrics | None
    ) -> RunBudgets:
        correlation = settings.correlation
        return cls(
            max_messages=correlation.RUN_MAX_MESSAGES_PER_MINUTE,
            max_bytes=correlation.RUN_MAX_BYTES_PER_MINUTE,
            valkey=valkey,
            env=settings.server.ENV,
            metrics=metrics,
            sync_seconds=correlation.RUN_BUDGET_SYNC_SECONDS,
        )

    def _roll(self) -> float:
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window = window
            self._used = {}
            self._unsynced = {}
        return now

    def _retry_after(self, now: float) -> int:
        """Seconds to the window's end (at least 1)."""
        return max(1, math.ceil((self._window + 1) * WINDOW_SECONDS - now))

    def never_fits(self, messages: int, size: int) -> str | None:
        """Why an envelope alone exceeds a per-minute budget (it is quarantined), or None."""
        if messages > self.max_messages:
            return f"{messages} messages, over the run's {self.max_messages} per minute"
        if size > self.max_bytes:
            return f"{size} bytes, over the run's {self.max_bytes} per minute"
        return None

    def refuse_early(self, run_id: str, content_length: int | None) -> int | None:
        """Before the body is read: Retry-After when the run is already known to be over budget
        for this window (or the declared body cannot fit what is left), else None."""
        now = self._roll()
        used = self._used.get(run_id)
        if used is None:
            return None
        size = content_length or 0
        exhausted = used[0] >= self.max_messages or used[1] >= self.max_bytes
        if exhausted or (size <= self.max_bytes and used[1] + size > self.max_bytes):
            return self._retry_after(now)
        return None

    def admit(self, run_id: str, messages: int, size: int) -> int | None:
        """Charge one envelope to its run's window: None when admitted, else Retry-After seconds
        (nothing charged). An envelope that never fits is admitted (to be quarantined) unless the
        window is already spent, and uses up the rest of it."""
        now = self._roll()
        used = self._used.get(run_id)
        if used is None:
            used = self._used[run_id] = [0, 0]
        if used[0] >= self.max_messages or used[1] >= self.max_bytes:
            return self._retry_after(now)
        fits = used[0] + messages <= self.max_messages and used[1] + size <= self.max_bytes
        if not fits and self.never_fits(messages, size) is None:
            return self._retry_after(now)
        used[0] += messages
        used[1] += size
        unsynced = self._unsynced.get(run_id)
        if unsynced is None:
            self._unsynced[run_id] = [messages, size]
        else:
            unsynced[0] += messages
            unsynced[1] += size
        return None

    def refund(self, run_id: str, messages: int, size: int) -> None:
        """Give back what `admit` charged for an envelope that was not stored (a 503): the
        daemon sends it again, and that attempt is charged."""
        if int(self._clock() // WINDOW_SECONDS) != self._window:
            return
        for counts in (self._used.get(run_id), self._unsynced.setdefault(run_id, [0, 0])):
            if counts is not None:
                counts[0] -= messages
                counts[1] -= size

    async def sync_once(self) -> bool:
        """Add this worker's unsynced increments to Valkey and read back the totals of every run
        it has seen this window (adding 0 reads the others' usage). False when Valkey failed (the
        increments are kept for the next try)."""
        self._roll()
        if self._valkey is None or not self._used:
            return True
        window, pending = self._window, self._unsynced
        self._unsynced = {}
        runs = list(self._used)
        try:
            async with self._valkey.pipeline(transaction=False) as pipe:
                for run_id in runs:
                    key = run_budget_key(self._env, run_id, window)
                    messages, size = pending.get(run_id, _NOTHING)
                    pipe.hincrby(key, RUN_BUDGET_MESSAGES_FIELD, messages)
                    pipe.hincrby(key, RUN_BUDGET_BYTES_FIELD, size)
                    pipe.expire(key, _KEY_TTL_SECONDS)
                results = await pipe.execute()
        except Exception as exc:  # Valkey down or slow: the local accounting keeps deciding
            if self._window == window:
                for run_id, (messages, size) in pending.items():
                    again = self._unsynced.setdefault(run_id, [0, 0])
                    again[0] += messages
                    again[1] += size
            self._failed(exc)
            return False
        if self._sync_down:
            self._sync_down = False
            log.info("run_budget_sync_restored", hint="runs' budgets are shared again")
        if self._window != window:  # the window ended while we waited: its totals are moot
            return True
        for i, run_id in enumerate(runs):
            messages, size = int(results[3 * i]), int(results[3 * i + 1])
            since = self._unsynced.get(run_id, _NOTHING)  # admitted while the pipeline ran
            self._used[run_id] = [messages + since[0], size + since[1]]
        return True

    def _failed(self, exc: Exception) -> None:
        if self._metrics is not None:
            self._metrics.inc(MetricName.BUDGET_SYNC_FAILURE, repo=None, user=None, provider=None)
        if not self._sync_down:
            self._sync_down = True
            log.warning(
                "run_budget_sync_failed",
                error=str(exc),
                hint="Valkey is unreachable; each worker enforces run budgets on its own until "
                "it is back (a run may then get up to one budget per worker)",
            )

    def stop(self) -> None:
        """End `run` at its next turn. The lifespan cancels it too, but a cancellation that lands
        inside the Valkey client's pipeline may be turned into another error there, which the loop
        would survive: this flag ends it either way."""
        self._stopped = True

    async def run(self) -> None:
        """The sync loop, until `stop` (or a cancellation)."""
        while not self._stopped:
            await asyncio.sleep(self._sync_seconds)
            try:
                await self.sync_once()
            except Exception as exc:  # never let the loop die: the next interval tries again
                self._failed(exc)
