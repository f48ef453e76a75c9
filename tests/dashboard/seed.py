"""Seed data for the archive and dashboard tests: quarantine rows and preview events written
straight into a test database with SQL (the correlation path is another domain's test subject)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import psycopg

from terragon_core import (
    PreviewEventName,
    QuarantineReason,
    QuarantineRecord,
    quarantine_object_key,
)

QUARANTINE = "daemon_event_quarantine"
PREVIEW_EVENT = "preview_event"


@dataclass
class Row:
    at: datetime
    reason: QuarantineReason = QuarantineReason.MISMATCH
    repo: str = "acme/web"
    user: str = "user-1"
    provider: str = "docker"
    thread_id: str = "thread-1"
    run_id: str | None = None
    active_run_id: str | None = None
    size: int = 120
    offloaded: bool = False
    offload_skipped: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    payload: str | None = None
    """The whole envelope (ASCII): its hash, size and prefix are the row's; None = a stand-in."""

    @property
    def object_key(self) -> str | None:
        if not self.offloaded:
            return None
        return quarantine_object_key(self.thread_id, self.at.astimezone(UTC).date(), self.id)


def ensure_day_partitions(conn: psycopg.Connection[Any], first: date, days: int) -> None:
    for table in (QUARANTINE, PREVIEW_EVENT):
        conn.execute(
            "SELECT terragon_ensure_day_partitions(%s::regclass, %s, %s)", (table, first, days)
        )


def insert_quarantine(conn: psycopg.Connection[Any], rows: list[Row]) -> None:
    """The rows as core's QuarantineRecord, by the one insert of a quarantine row."""
    records = [
        QuarantineRecord(
            id=r.id,
            created_at=r.at,
            thread_id=r.thread_id,
            thread_chat_id="legacy-thread-chat-id",
            run_id=r.run_id,
            active_run_id=r.active_run_id,
            reason=r.reason,
            strict=None,
            payload_version=2,
            payload_hash=hashlib.sha256((r.payload or r.id).encode()).hexdigest(),
            payload_size=len(r.payload) if r.payload is not None else r.size,
            payload_prefix_2k=r.payload[:2048]
            if r.payload is not None
            else '{"threadId": "' + r.thread_id + '", "note": "a,b\n\\"quoted\\""}',
            payload_object_key=r.object_key,
            offload_skipped=r.offload_skipped,
            repo_full_name=r.repo,
            user_id=r.user,
            sandbox_provider=r.provider,
            event_id=f"evt-{r.id[:8]}",
            seq=1,
            trace_id=uuid.uuid4().hex,
        )
        for r in rows
    ]
    conn.execute(
        "SELECT terragon_insert_quarantine(r) FROM jsonb_array_elements(%s::jsonb) AS r",
        (msgspec.json.encode(records).decode(),),
    )


def insert_access_denied(conn: psycopg.Connection[Any], times: list[datetime]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO preview_event (ts_server, schema_version, event_name, origin, trace_id,
                   thread_id, properties)
               VALUES (%s, 1, %s, 'preview_proxy', %s, 'thread-1', '{"reason": "expired"}')""",
            [(t, PreviewEventName.ACCESS_DENIED.value, uuid.uuid4().hex) for t in times],
        )


def insert_strict_run(conn: psycopg.Connection[Any], run_id: str, *, strict: bool) -> None:
    """A thread and a run whose frozen `daemonRunIdStrict` is `strict` (for the strict column)."""
    conn.execute(
        """INSERT INTO thread (thread_id, user_id, repo_full_name, sandbox_provider, codesandbox_id)
           VALUES ('thread-1', 'user-1', 'acme/web', 'docker', 'sb-1')
           ON CONFLICT (thread_id) DO NOTHING"""
    )
    conn.execute(
        """INSERT INTO thread_run (run_id, thread_id, thread_chat_id, start_request_id,
               trigger_source, status, frozen_sandbox_preview, frozen_daemon_run_id_strict)
           VALUES (%s, 'thread-1', 'legacy-thread-chat-id', %s, 'ui', 'finished', true, %s)""",
        (run_id, f"req-{run_id}", strict),
    )


def spread(start: datetime, count: int, step: timedelta, **fields: Any) -> list[Row]:
    return [Row(at=start + i * step, **fields) for i in range(count)]


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, options="-c timezone=UTC")


def utc_day(offset_days: int, hour: int = 12, minute: int = 0) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=offset_days, hours=hour, minutes=minute)
