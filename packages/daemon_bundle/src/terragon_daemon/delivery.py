"""The per-run delivery loop: oldest sealed batch first, exactly one in flight.

Because a run never has two batches on the wire, `seq` reaches the server in order and a
`stale_seq` answer only ever means a replay. A batch leaves the spool when it is delivered (2xx)
or dead-lettered (400/401/403/413, other 4xx, or `max_attempts` retries used up; a 429 is waited
out after its `Retry-After` and never used up); until then the same sealed batch (same eventId and
seq) is retried with backoff, and a daemon restart picks it up unchanged.
"""

from __future__ import annotations

import logging
import threading

from terragon_daemon.logs import log_event
from terragon_daemon.sender import (
    DEAD_LETTER,
    DELIVERED,
    RATE_LIMITED_STATUS,
    Attempt,
    Backoff,
    HttpSender,
    traceparent_for,
)
from terragon_daemon.spool import SealedBatch, SpoolRun

log = logging.getLogger(__name__)


class Deliverer:
    """Delivers one run's sealed batches; shares the run's condition with the producer."""

    def __init__(
        self,
        run: SpoolRun,
        cond: threading.Condition,
        sender: HttpSender,
        backoff: Backoff,
        max_attempts: int = 0,
    ) -> None:
        self.run = run
        self._cond = cond
        self._sender = sender
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._producer_done = False
        self._abort = threading.Event()
        self.complete = threading.Event()

    def producer_finished(self) -> None:
        """No more batches will be sealed (call with the condition held)."""
        self._producer_done = True
        self._cond.notify_all()

    def abort(self) -> None:
        """Stop now; undelivered batches stay in the spool for the next start."""
        with self._cond:
            self._abort.set()
            self._cond.notify_all()

    def loop(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                if not self._deliver(batch):
                    return
        except Exception:
            log.exception("delivery_failed run_key=%s", self.run.key)

    def _next_batch(self) -> SealedBatch | None:
        with self._cond:
            while not self.run.pending and not self._producer_done and not self._abort.is_set():
                self._cond.wait()
            if self._abort.is_set():
                return None
            if self.run.pending:
                return self.run.pending[0]
            self.run.mark_complete()
            log_event(
                log,
                logging.INFO,
                "run_delivery_complete",
                run_key=self.run.key,
                last_seq=self.run.last_sealed_seq,
                delivered=self.run.delivered,
                dead_lettered=self.run.dead_lettered,
            )
            self.complete.set()
            return None

    def _deliver(self, batch: SealedBatch) -> bool:
        """Deliver or dead-letter `batch`; False if aborted while waiting to retry."""
        spec = self.run.spec
        failures = 0
        rate_limited = 0  # 429s: the server's budget says "later", never a reason to give up
        while True:
            traceparent = traceparent_for(self.run.trace_id)
            attempt = self._sender.post(spec.ingest_url, spec.token, traceparent, batch.body)
            if attempt.outcome == DELIVERED:
                with self._cond:
                    self.run.mark_delivered(batch)
                self._log(logging.INFO, "batch_delivered", batch, attempt, failures + 1)
                return True
            if attempt.outcome == DEAD_LETTER:
                self._dead_letter(batch, attempt, f"http_{attempt.http_status}", failures + 1)
                return True
            failures += 1
            if attempt.http_status == RATE_LIMITED_STATUS:
                rate_limited += 1
            elif self._max_attempts and failures - rate_limited >= self._max_attempts:
                self._dead_letter(batch, attempt, "retries_exhausted", failures)
                return True
            delay = self._backoff.delay(failures, attempt.retry_after)
            self._log(logging.WARNING, "batch_retry_scheduled", batch, attempt, failures, delay)
            if self._abort.wait(delay):
                return False

    def _dead_letter(self, batch: SealedBatch, attempt: Attempt, reason: str, tries: int) -> None:
        detail = {
            "httpStatus": attempt.http_status,
            "responseStatus": attempt.body_status,
            "responseReason": attempt.reason,
            "error": attempt.error,
            "attempts": tries,
        }
        with self._cond:
            self.run.dead_letter(batch, reason, detail)
        self._log(logging.ERROR, "batch_dead_lettered", batch, attempt, tries, reason=reason)

    def _log(
        self,
        level: int,
        event: str,
        batch: SealedBatch,
        attempt: Attempt,
        tries: int,
        delay: float | None = None,
        reason: str | None = None,
    ) -> None:
        if attempt.body_status in ("quarantined", "stale_seq"):
            level = max(level, logging.WARNING)
        fields: dict[str, object] = {
            "run_key": self.run.key,
            "seq": batch.seq,
            "event_id": batch.event_id,
            "terminal": batch.terminal,
            "http_status": attempt.http_status,
            "status": attempt.body_status,
            "reason": reason or attempt.reason,
            "attempt": tries,
        }
        if attempt.error:
            fields["error"] = attempt.error
        if delay is not None:
            fields["retry_in"] = round(delay, 3)
        log_event(log, level, event, **fields)
