"""The quarantine store: every quarantined envelope becomes a recoverable row (DESIGN "quarantine
is data, not a log line").

A row keeps `payloadPrefix2k` (the first 2048 bytes of the envelope as received, cut on a UTF-8
boundary), `payloadHash` (sha256 hex of the whole) and `payloadSize`. Envelopes up to 16 KiB are
also kept whole in the row (`payload_inline`); larger ones are offloaded whole to the object store
at `quarantine_object_key(...)`, at most `OFFLOADS_PER_REPO_PER_MINUTE` per repo per minute
(Valkey INCR+EXPIRE). Over the limit, or with Valkey down, the offload is skipped and counted and
the row keeps prefix and hash only: the row itself always commits.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
import structlog
from valkey.exceptions import ValkeyError

from terragon_core import (
    QUARANTINE_INLINE_LIMIT_BYTES,
    QUARANTINE_PREFIX_BYTES,
    MetricName,
    QuarantineReason,
    QuarantineRecord,
    quarantine_object_key,
    quarantine_offload_pending_key,
    quarantine_offload_rate_key,
)

if TYPE_CHECKING:
    from terragon_ingest.daemon_events.deps import DaemonEventsDeps
    from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()

RATE_KEY_TTL_SECONDS = 120


class Dimensions(msgspec.Struct, frozen=True):
    """The thread's repo, user and sandbox: every quarantine row and metric carries them."""

    repo_full_name: str | None
    user_id: str | None
    sandbox_provider: str | None
    codesandbox_id: str | None = None


def utf8_prefix(body: bytes, limit: int = QUARANTINE_PREFIX_BYTES) -> str:
    """The first `limit` bytes of `body`, shortened to end on a UTF-8 character boundary."""
    if len(body) <= limit:
        return body.decode("utf-8", errors="replace")
    cut = limit
    while cut > 0 and (body[cut] & 0xC0) == 0x80:  # body[cut] continues the previous char
        cut -= 1
    return body[:cut].decode("utf-8", errors="replace")


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def _offload_allowed(deps: DaemonEventsDeps, repo: str, dims: Dimensions) -> bool:
    limit = deps.settings.correlation.OFFLOADS_PER_REPO_PER_MINUTE
    key = quarantine_offload_rate_key(deps.settings.server.ENV, repo, int(time.time() // 60))
    try:
        async with deps.valkey.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, RATE_KEY_TTL_SECONDS)
            count, _ = await pipe.execute()
    except (ValkeyError, OSError) as exc:
        log.warning(
            "quarantine_offload_skipped",
            reason="cache_unavailable",
            repo=repo,
            error=str(exc),
            hint="the row keeps prefix and hash; check Valkey",
        )
        _count_skip(deps.metrics, dims, "cache_unavailable")
        return False
    if int(count) > limit:
        _count_skip(deps.metrics, dims, "rate_limited")
        return False
    return True


def _count_skip(metrics: Metrics, dims: Dimensions, reason: str) -> None:
    metrics.inc(
        MetricName.QUARANTINE_OFFLOAD_SKIPPED,
        repo=dims.repo_full_name,
        user=dims.user_id,
        provider=dims.sandbox_provider,
        reason=reason,
    )


async def cache_clock(deps: DaemonEventsDeps) -> float:
    """Valkey's clock (`TIME`), the one every replica shares: the pending set's scores and the
    sweep's cutoff are both on it, so a replica whose own clock runs ahead never removes an
    object whose row is still on its way."""
    seconds, micros = await deps.valkey.time()
    return float(seconds) + float(micros) / 1e6


async def offload(
    deps: DaemonEventsDeps, body: bytes, thread_id: str, dims: Dimensions
) -> str | None:
    """Write the whole envelope to the object store; None when the offload was skipped.

    The key is registered as pending first, so maintenance can remove the object if its row never
    commits (crash, DB outage, duplicate). A store failure raises `ObjectStoreUnavailable` (503).
    """
    if not await _offload_allowed(deps, dims.repo_full_name or "", dims):
        return None
    key = quarantine_object_key(thread_id, datetime.now(UTC).date(), str(uuid.uuid4()))
    try:
        registered = await cache_clock(deps)
        await deps.valkey.zadd(
            quarantine_offload_pending_key(deps.settings.server.ENV), {key: registered}
        )
    except (ValkeyError, OSError):
        _count_skip(deps.metrics, dims, "cache_unavailable")
        return None
    await deps.objects.put(key, body)
    deps.metrics.inc(
        MetricName.QUARANTINE_OFFLOAD,
        repo=dims.repo_full_name,
        user=dims.user_id,
        provider=dims.sandbox_provider,
    )
    return key


async def build_row(
    deps: DaemonEventsDeps,
    *,
    body: bytes,
    reason: QuarantineReason,
    thread_id: str,
    thread_chat_id: str,
    run_id: str | None,
    active_run_id: str | None,
    token_run_id: str | None,
    strict: bool,
    payload_version: int | None,
    event_id: str | None,
    seq: int | None,
    trace_id: str,
    dims: Dimensions,
) -> QuarantineRecord:
    """The quarantine row, with the payload inline or offloaded (its id and time are made at
    insert)."""
    inline = len(body) <= QUARANTINE_INLINE_LIMIT_BYTES
    object_key = None if inline else await offload(deps, body, thread_id, dims)
    return QuarantineRecord(
        thread_id=thread_id,
        thread_chat_id=thread_chat_id,
        run_id=run_id,
        active_run_id=active_run_id,
        token_run_id=token_run_id,
        strict=strict,
        reason=reason,
        payload_version=payload_version,
        payload_hash=payload_hash(body),
        payload_size=len(body),
        payload_prefix_2k=utf8_prefix(body),
        payload_inline=body.decode("utf-8", errors="replace") if inline else None,
        payload_object_key=object_key,
        offload_skipped=not inline and object_key is None,
        repo_full_name=dims.repo_full_name,
        user_id=dims.user_id,
        sandbox_provider=dims.sandbox_provider,
        event_id=event_id,
        seq=seq,
        trace_id=trace_id,
    )
