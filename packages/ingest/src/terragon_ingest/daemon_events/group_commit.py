"""Group commit: statements that arrive while the database is busy are sent as one statement and
one commit. Two kinds go this way: ordinary envelopes (`GroupCommit`: decided and applied by
`terragon_ingest_envelopes`, each through the one decision; in its own subtransaction only when
the batch is run again after a failure) and
quarantine rows (`QuarantineCommit`: `terragon_record_quarantines`, one set-based statement, all
or nothing: the rows are independent, so no row's answer depends on another's).

Natural batching, not a timer: while fewer than `max_in_flight` statements of its kind in this
process are running, an item is sent at the next turn of the event loop, together with every item
submitted in the same turn (requests whose bytes arrived in the same poll), so a lone item waits
for nothing but that turn (microseconds: no added latency at low load); while they all run,
arrivals queue, and the next free slot takes up to `max_batch` of them in one statement
(PostgreSQL groups WAL flushes the same way). So a batch forms within the time one statement
takes, never on a fixed delay. One grouped statement in flight per worker, and up to
`TERRAGON_GROUP_COMMIT_IN_FLIGHT` (2) once every running one has run
`TERRAGON_GROUP_COMMIT_SPILL_MS` (a statement stuck on one run's lock, or slow): one in flight
doubles the batches, cheaper per envelope on both sides now that a batch is decided as a set,
and the spill keeps one run's stuck statement from holding up every other run for longer than
that. Why sending a turn's first item at once was dropped: docs/performance.md "Group commit
tuning".

Tenancy (CONTRACT §4 "Budgets"): one run's envelopes occupy at most one of a worker's in-flight
statements (`lane`: the sending token's digest, one token per run, so no lookup): while a
statement holding a run's envelope runs, that run's later envelopes wait for it and every other
run's go ahead (with several slots, a flooding run holds one and the others keep the rest; with
one, its envelopes share each batch with everyone's, and its budget bounds them). An envelope
marked `alone` (a NUL escape, or a heavy one: `service.HEAVY_*`) is a statement of its own in a
slot of its own (`ALONE_IN_FLIGHT`) beside the grouped ones, so its cost is never added to a
neighbour's batch nor holds it up.

Guarantees, each kept by construction:
- an item is answered only after the statement that wrote it committed;
- two envelopes of one run keep their arrival order (the decision takes a run's envelopes of a
  batch in the order given, the second seeing the first's writes in the same transaction), and
  every batch takes its run locks in one global order (the decision locks them in run_id order,
  in one statement: batches never deadlock on each other);
- one envelope's failure changes no other's answer: the statement fails and writes nothing, the
  batch runs again with one subtransaction each (`repository.ingest_envelopes`), and the failing
  envelope's own rolls back; such an envelope, and every item of a statement that failed as a
  whole, is done again alone by the caller (`submit` answers None), never answered as part of a
  failed batch.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog

from terragon_ingest.daemon_events import repository
from terragon_ingest.db import connection

if TYPE_CHECKING:
    from terragon_ingest.daemon_events.repository import Decision, DecisionInput
    from terragon_ingest.db import AsyncConn, Pool
    from terragon_ingest.settings import Settings
    from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()

ALONE_IN_FLIGHT = 1
"""Statements of `alone` items (a heavy envelope, a NUL escape) one worker runs at once, in a slot
of their own beside the grouped ones: a heavy envelope never holds up its neighbours' batch."""

ItemT = TypeVar("ItemT")
AnswerT = TypeVar("AnswerT")


def group_commits_for(
    pool: Pool, settings: Settings, metrics: Metrics
) -> tuple[GroupCommit | None, QuarantineCommit | None]:
    """The envelopes' and the quarantine rows' group commit, as the settings size them (both off
    with `TERRAGON_GROUP_COMMIT_MAX_BATCH=1`)."""
    correlation = settings.correlation
    if correlation.GROUP_COMMIT_MAX_BATCH <= 1:
        return None, None
    max_batch = min(correlation.GROUP_COMMIT_MAX_BATCH, 32)
    max_in_flight = max(1, correlation.GROUP_COMMIT_IN_FLIGHT)
    spill = max(0.0, correlation.GROUP_COMMIT_SPILL_MS) / 1000
    return (
        GroupCommit(
            pool, max_batch=max_batch, max_in_flight=max_in_flight, spill=spill, metrics=metrics
        ),
        QuarantineCommit(pool, max_batch=max_batch, max_in_flight=max_in_flight, spill=spill),
    )


class _Batcher(Generic[ItemT, AnswerT]):
    """The queue, the in-flight budget and the failure rule; a kind says how one item is written
    alone (`_alone`, its error raised to its caller) and how several are (`_grouped`)."""

    def __init__(
        self, pool: Pool, *, max_batch: int, max_in_flight: int, spill: float = 0.0
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._spill = spill
        """Seconds every running grouped statement must have run before another one starts."""
        self._running_since: list[float] = []
        """When each running grouped statement started (event-loop time)."""
        self._spill_timer: asyncio.TimerHandle | None = None
        self._waiting: list[_Waiting[ItemT, AnswerT]] = []
        self._busy: set[object] = set()
        """Lanes with an item in a running statement."""
        self._in_flight = 0
        """Grouped statements running (at most `max_in_flight`)."""
        self._in_flight_alone = 0
        """Statements of an `alone` item running (at most `ALONE_IN_FLIGHT`, beside the others)."""
        self._dispatch_pending = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batch_sizes: dict[int, int] = {}
        """Statements sent, by the number of items in them (for tests and tools/bench)."""

    @property
    def queued(self) -> int:
        """Items waiting for a free slot (for tests and tools/bench)."""
        return len(self._waiting)

    async def _submit(
        self, item: ItemT, *, lane: object = None, alone: bool = False
    ) -> AnswerT | None:
        future: asyncio.Future[AnswerT | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(item, future, lane, alone))
        if not self._dispatch_pending:  # the turn's first item: send at the next turn
            self._dispatch_pending = True
            asyncio.get_running_loop().call_soon(self._dispatch_turn)
        return await future

    def _dispatch_turn(self) -> None:
        self._dispatch_pending = False
        self._dispatch()

    def _grouped_slot(self) -> bool:
        """A grouped statement may start: none runs, or (under `max_in_flight`) every running one
        has run `spill` seconds (stuck on a lock, or slow). Otherwise arrivals queue into the next
        batch; a timer looks again when the youngest running one reaches `spill`."""
        if self._in_flight >= self._max_in_flight:
            return False
        if not self._running_since:
            return True
        loop = asyncio.get_running_loop()
        wait = self._spill - (loop.time() - max(self._running_since))
        if wait <= 0:
            return True
        if self._spill_timer is None:
            self._spill_timer = loop.call_later(wait, self._spill_check)
        return False

    def _spill_check(self) -> None:
        self._spill_timer = None
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting:
            grouped = self._grouped_slot()
            alone = self._in_flight_alone < ALONE_IN_FLIGHT
            batch = self._take(grouped=grouped, alone=alone) if grouped or alone else []
            if not batch:  # no free slot, or each waiting item's lane is busy (or its slot)
                return
            lanes = {w.lane for w in batch if w.lane is not None}
            self._busy |= lanes
            is_alone = batch[0].alone
            started = asyncio.get_running_loop().time()
            if is_alone:
                self._in_flight_alone += 1
            else:
                self._in_flight += 1
                self._running_since.append(started)
            task = asyncio.create_task(
                self._send(
                    [(w.item, w.future) for w in batch], lanes, alone=is_alone, started=started
                )
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self, *, grouped: bool, alone: bool) -> list[_Waiting[ItemT, AnswerT]]:
        """The next statement's items, in arrival order: up to `max_batch`, none of a busy lane,
        an `alone` item only by itself; only the kinds whose slot is free (`grouped`, `alone`).
        A skipped item's lane is closed for the rest of this pass, so a run's envelopes never
        overtake each other."""
        head = self._waiting[: self._max_batch]
        if grouped and not self._busy and not any(w.alone for w in head):
            del self._waiting[: self._max_batch]  # the common case: take the head
            return head
        batch: list[_Waiting[ItemT, AnswerT]] = []
        kept: list[_Waiting[ItemT, AnswerT]] = []
        closed = set(self._busy)
        for waiting in self._waiting:
            full = len(batch) >= self._max_batch or (batch and batch[0].alone)
            slot = alone if waiting.alone else grouped
            if full or not slot or waiting.lane in closed or (waiting.alone and batch):
                kept.append(waiting)
                if waiting.lane is not None:
                    closed.add(waiting.lane)
                continue
            batch.append(waiting)
        self._waiting = kept
        return batch

    def _observe(self, size: int) -> None:
        self.batch_sizes[size] = self.batch_sizes.get(size, 0) + 1

    async def _alone(self, conn: AsyncConn, item: ItemT) -> AnswerT:
        raise NotImplementedError

    async def _grouped(self, conn: AsyncConn, items: list[ItemT]) -> list[AnswerT | None]:
        """The answers in the items' order; None for an item whose subtransaction failed."""
        raise NotImplementedError

    async def _send(
        self,
        batch: list[tuple[ItemT, asyncio.Future[AnswerT | None]]],
        lanes: set[object],
        *,
        alone: bool,
        started: float,
    ) -> None:
        self._observe(len(batch))
        try:
            if len(batch) == 1:  # alone: the plain statement, no subtransaction to pay for
                await self._send_alone(*batch[0])
                return
            async with connection(self._pool) as conn:  # in arrival order
                answers = await self._grouped(conn, [item for item, _ in batch])
            for (_item, future), answer in zip(batch, answers, strict=True):
                _settle(future, answer)
        except Exception as exc:  # the statement failed as a whole: nothing of it was written
            log.warning(
                "group_commit_batch_failed",
                kind=type(self).__name__,
                size=len(batch),
                error=str(exc),
                hint="each item is written again alone",
            )
            for _item, future in batch:
                _settle(future, None)
        finally:
            self._busy -= lanes
            if alone:
                self._in_flight_alone -= 1
            else:
                self._in_flight -= 1
                self._running_since.remove(started)
            self._dispatch()

    async def _send_alone(self, item: ItemT, future: asyncio.Future[AnswerT | None]) -> None:
        """One item, one plain statement; its error goes to its caller, as without grouping."""
        try:
            async with connection(self._pool) as conn:
                answer = await self._alone(conn, item)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        _settle(future, answer)


class GroupCommit(_Batcher["DecisionInput", "Decision"]):
    """Ordinary envelopes: the one decision, grouped."""

    def __init__(
        self,
        pool: Pool,
        *,
        max_batch: int,
        max_in_flight: int,
        spill: float = 0.0,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(pool, max_batch=max_batch, max_in_flight=max_in_flight, spill=spill)
        self._metrics = metrics

    async def submit(self, inputs: DecisionInput, *, alone: bool = False) -> Decision | None:
        """The decision for one ordinary envelope; None when it must be decided again alone (its
        subtransaction failed, or its statement did). Sent alone, its error is raised here. Its
        lane is its token (one run's envelopes: one statement at a time); `alone`: a statement of
        its own."""
        return await self._submit(inputs, lane=inputs.token_hash, alone=alone)

    def _observe(self, size: int) -> None:
        super()._observe(size)
        if self._metrics is not None:
            self._metrics.ingest_batch.observe(size)

    async def _alone(self, conn: AsyncConn, item: DecisionInput) -> Decision:
        return await repository.ingest_envelope(conn, item)

    async def _grouped(self, conn: AsyncConn, items: list[DecisionInput]) -> list[Decision | None]:
        return await repository.ingest_envelopes(conn, items)


class QuarantineCommit(_Batcher[dict[str, Any], list[str]]):
    """Quarantine rows (`repository.quarantine_item`), grouped; rows are independent, no order.
    A failed batch answers None for every item: each is recorded again alone, `once`."""

    async def submit(self, item: dict[str, Any]) -> list[str] | None:
        """The sessions denied once the row committed; None when it must be recorded again alone.
        Sent alone, its error is raised here."""
        return await self._submit(item)

    async def _alone(self, conn: AsyncConn, item: dict[str, Any]) -> list[str]:
        return await repository.insert_quarantine(conn, item)

    async def _grouped(
        self, conn: AsyncConn, items: list[dict[str, Any]]
    ) -> list[list[str] | None]:
        return await repository.insert_quarantines(conn, items)


@dataclass(slots=True)
class _Waiting(Generic[ItemT, AnswerT]):
    item: ItemT
    future: asyncio.Future[AnswerT | None]
    lane: object
    """Items of one lane run in one statement at a time (None: no lane)."""
    alone: bool


def _settle(future: asyncio.Future[AnswerT | None], answer: AnswerT | None) -> None:
    if not future.done():  # the request may have gone (client disconnected)
        future.set_result(answer)
