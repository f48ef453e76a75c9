"""Re-drive a quarantined envelope through the same decision path (`terragon quarantine replay`).

After an operator fix (a flag, a daemon upgrade, a repaired run), the stored envelope is decided
again exactly as a delivery would be; only its token check is skipped (the operator is trusted and
the row already names the thread). Idempotent: the apply dedupes on (runId, eventId), a replay
that is quarantined again writes no new row, and an applied replay is not re-driven without
`force`. The outcome is recorded on the row (`replayed_at`, `replay_status`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec
import structlog

from terragon_core import EnvelopeError, QuarantineReason, decode_envelope
from terragon_ingest.daemon_events import repository
from terragon_ingest.daemon_events.service import Delivery, decide
from terragon_ingest.db import connection
from terragon_ingest.errors import NotFound, UserError
from terragon_ingest.telemetry import trace_id_from

if TYPE_CHECKING:
    from terragon_core import QuarantineRecord
    from terragon_ingest.daemon_events.deps import DaemonEventsDeps
    from terragon_ingest.objects import QuarantineObjects

log = structlog.get_logger()


class PayloadNotRecoverable(UserError):
    """The quarantined payload is not stored whole (offload skipped); only prefix and hash remain."""


class ReplayOutcome(msgspec.Struct, frozen=True, rename="camel"):
    """What `quarantine replay` prints for a row (camelCase, as `list` and `show` print)."""

    quarantine_id: str
    replay_status: str
    """`applied`, `duplicate`, `stale_seq` or `quarantined:<reason>`."""
    re_driven: bool
    """False when an earlier replay had already applied it (and `force` was not given)."""


async def replay_quarantined(
    deps: DaemonEventsDeps, quarantine_id: str, *, force: bool = False
) -> ReplayOutcome:
    async with connection(deps.pool) as conn:
        row = await repository.fetch_quarantine(conn, quarantine_id)
    if row is None:
        raise NotFound(f"quarantine row {quarantine_id!r} not found")
    if row.replay_status == "applied" and not force:
        return ReplayOutcome(quarantine_id, "applied", re_driven=False)
    body = await stored_payload(deps.objects, row)
    try:
        envelope = decode_envelope(body)
    except EnvelopeError as exc:
        raise PayloadNotRecoverable(f"stored payload does not decode: {exc}") from exc
    # Decided as its delivery was, under its token's run. Rows older than that column: a
    # runId-less `mismatch` row was a zombie or came with no active run, so it is replayed as if
    # by an unknown run (never applied to another run); any other as its run's own daemon: the
    # run it names, else (runId-less) the run that was active.
    token_run_id = row.token_run_id
    if token_run_id is None:
        zombie = row.reason == QuarantineReason.MISMATCH and row.run_id is None
        token_run_id = "" if zombie else (row.run_id or row.active_run_id or "")
    trace_id = row.trace_id or trace_id_from(None)
    delivery = Delivery(
        envelope, body, trace_id, token_run_id=token_run_id, replay_of=quarantine_id
    )
    reply = await decide(deps, delivery)
    status = reply.ack.status.value
    if reply.ack.reason is not None:
        status += f":{reply.ack.reason.value}"
    async with connection(deps.pool) as conn:
        await repository.mark_replayed(conn, quarantine_id, status)
    log.info("quarantine_replayed", quarantine_id=quarantine_id, replay_status=status)
    return ReplayOutcome(quarantine_id, status, re_driven=True)


async def stored_payload(objects: QuarantineObjects, row: QuarantineRecord) -> bytes:
    """The whole envelope as received: inline, from the object store, or a complete prefix."""
    body: bytes | None = None
    if row.payload_inline is not None:
        body = row.payload_inline.encode()
    elif row.payload_object_key:
        body = await objects.get(row.payload_object_key)
    elif len(row.payload_prefix_2k.encode()) == row.payload_size:
        body = row.payload_prefix_2k.encode()
    if body is None or hashlib.sha256(body).hexdigest() != row.payload_hash:
        raise PayloadNotRecoverable(
            f"quarantine row {row.id!r}: the whole payload ({row.payload_size} bytes) is "
            "not stored (offload skipped or object missing); inspect payloadPrefix2k instead"
        )
    return body
