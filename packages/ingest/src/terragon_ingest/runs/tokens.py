"""Daemon tokens: minted at run start, returned once, stored as sha256 digests.

A token binds its thread (and user) and names the run it was minted for. It stays valid after its
run is superseded, so a stale daemon's envelopes are quarantined as `mismatch` rather than
rejected, until one hour after its run ended (`expired`), or until its thread is closed
(`revoked`): CONTRACT §4. Those rules are written once, in SQL (db/functions/
terragon_daemon_token.sql); both token checks (before the body is decoded, and the decision's)
read them there.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from terragon_core import SecurityReason
from terragon_ingest.runs import repository

if TYPE_CHECKING:
    from terragon_ingest.db import AsyncConn

TOKEN_PREFIX = "tdt_"


@dataclass(frozen=True, slots=True)
class TokenBinding:
    thread_id: str
    user_id: str
    run_id: str
    """The run the token was minted for (not necessarily the active one)."""
    expires_at: float | None = None
    """When it expires (epoch seconds) as last read: None while its run had not ended. A run
    that ends later expires an hour after that, longer than `KnownTokens` keeps an entry."""


@dataclass(frozen=True, slots=True)
class TokenRefused:
    """A known token that no longer authenticates: 401 with this `code`."""

    code: SecurityReason


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def mint_daemon_token(conn: AsyncConn, *, run_id: str, thread_id: str, user_id: str) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await repository.insert_daemon_token(
        conn,
        {
            "token_hash": hash_token(token),
            "thread_id": thread_id,
            "user_id": user_id,
            "run_id": run_id,
        },
    )
    return token


async def resolve_daemon_token(
    conn: AsyncConn, token: str | None
) -> TokenBinding | TokenRefused | None:
    """The binding of a live token; `TokenRefused` for an expired or revoked one; None for a
    missing or unknown one."""
    if not token:
        return None
    digest = hash_token(token)
    row = await repository.fetch_daemon_token(conn, digest)
    # The lookup is by digest; the compare is constant-time as a second line of defence.
    if row is None or not hmac.compare_digest(bytes(row.token_hash), digest):
        return None
    if row.refusal is not None:
        return TokenRefused(SecurityReason(row.refusal))
    expires = row.expires_at.timestamp() if row.expires_at is not None else None
    return TokenBinding(row.thread_id, row.user_id, row.run_id, expires)


class KnownTokens:
    """Digests of tokens this process has seen resolve, so that the token check that precedes body
    decoding (CONTRACT §4) costs a round trip once per daemon, not once per envelope.

    Only a gate in front of the decoder: an unknown, expired or revoked token is never remembered
    (it is answered 401 after one indexed lookup, its body never decoded), an entry is dropped
    when its token expires, and the authoritative check stays in SQL, so a token revoked while
    remembered (by another process: a close here forgets its thread's) is still answered 401
    `revoked` there with nothing written. Bounded: at most `max_entries`, each for `ttl_seconds`.
    """

    def __init__(self, max_entries: int = 10_000, ttl_seconds: float = 60.0) -> None:
        self._entries: OrderedDict[bytes, tuple[float, TokenBinding]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl_seconds

    def get(self, digest: bytes) -> TokenBinding | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, binding = entry
        if expires < time.monotonic() or (
            binding.expires_at is not None and binding.expires_at <= time.time()
        ):
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return binding

    def remember(self, digest: bytes, binding: TokenBinding) -> None:
        self._entries[digest] = (time.monotonic() + self._ttl, binding)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget_thread(self, thread_id: str) -> None:
        """Drop every entry of the thread (its tokens were just revoked)."""
        for digest in [d for d, (_, b) in self._entries.items() if b.thread_id == thread_id]:
            del self._entries[digest]
