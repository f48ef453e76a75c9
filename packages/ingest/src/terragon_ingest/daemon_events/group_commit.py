"""Group commit: ordinary envelopes that arrive while the database is busy are decided and applied
by one statement and one commit (`terragon_ingest_envelopes`), each through the one decision in
its own subtransaction.

Natural batching, not a timer: an envelope is sent at once while fewer than `max_in_flight`
statements of this process are running, so a lone envelope waits for nothing (no added latency at
low load); while they all run, arrivals queue, and the next free slot takes up to `max_batch` of
them in one statement (PostgreSQL groups WAL flushes the same way). So a batch forms within the
time one statement takes, never on a fixed delay.

Guarantees, each kept by construction:
- an envelope is answered only after the statement that applied it committed;
- two envelopes of one run keep their arrival order (stable sort by thread; the second sees the
  first's writes in the same transaction), and batches take run locks in one global order;
- one envelope's failure rolls back its own subtransaction only; such an envelope, and every
  envelope of a statement that failed as a whole, is decided again alone by the caller
  (`submit` answers None), never answered as part of a failed batch.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from terragon_ingest.daemon_events import repository
from terragon_ingest.db import connection

if TYPE_CHECKING:
    from terragon_ingest.daemon_events.repository import Decision
    from terragon_ingest.db import Pool
    from terragon_ingest.settings import Settings
    from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()

_Item = tuple[dict[str, Any], list[dict[str, Any]], "asyncio.Future[Decision | None]"]


def group_commit_for(pool: Pool, settings: Settings, metrics: Metrics) -> GroupCommit | None:
    correlation = settings.correlation
    if correlation.GROUP_COMMIT_MAX_BATCH <= 1:
        return None
    return GroupCommit(
        pool,
        max_batch=min(correlation.GROUP_COMMIT_MAX_BATCH, 32),
        max_in_flight=max(1, correlation.GROUP_COMMIT_IN_FLIGHT),
        metrics=metrics,
    )


class GroupCommit:
    def __init__(
        self, pool: Pool, *, max_batch: int, max_in_flight: int, metrics: Metrics | None = None
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[_Item] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batch_sizes: dict[int, int] = {}
        """Statements sent, by the number of envelopes in them (for tools/bench)."""

    async def submit(
        self, params: dict[str, Any], messages: list[dict[str, Any]]
    ) -> Decision | None:
        """The decision for one ordinary envelope; None when it must be decided again alone (its
        subtransaction failed, or its statement did). Sent alone, its error is raised here."""
        future: asyncio.Future[Decision | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((params, messages, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            self._in_flight += 1
            task = asyncio.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Item]) -> None:
        self.batch_sizes[len(batch)] = self.batch_sizes.get(len(batch), 0) + 1
        if self._metrics is not None:
            self._metrics.ingest_batch.observe(len(batch))
        try:
            if len(batch) == 1:  # alone: the plain statement, no subtransaction to pay for
                await _alone(self._pool, batch[0])
                return
            # One lock order for every batch: by thread, arrival order kept within one.
            ordered = sorted(
                range(len(batch)),
                key=lambda i: (batch[i][0]["thread_id"], batch[i][0]["thread_chat_id"]),
            )
            async with connection(self._pool) as conn:
                answers = await repository.ingest_envelopes(
                    conn, [(batch[i][0], batch[i][1]) for i in ordered]
                )
            for position, i in enumerate(ordered):
                _settle(batch[i][2], answers[position])
        except Exception as exc:  # the statement failed as a whole: nothing of it was written
            log.warning(
                "envelope_batch_failed",
                size=len(batch),
                error=str(exc),
                hint="each envelope is decided again alone",
            )
            for _params, _messages, future in batch:
                _settle(future, None)
        finally:
            self._in_flight -= 1
            self._dispatch()


async def _alone(pool: Pool, item: _Item) -> None:
    """One envelope, one plain statement; its error goes to its caller, as without grouping."""
    params, messages, future = item
    try:
        async with connection(pool) as conn:
            answer = await repository.ingest_envelope(conn, params, messages)
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    _settle(future, answer)


def _settle(future: asyncio.Future[Decision | None], answer: Decision | None) -> None:
    if not future.done():  # the request may have gone (client disconnected)
        future.set_result(answer)
