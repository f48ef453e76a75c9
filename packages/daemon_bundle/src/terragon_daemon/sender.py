"""One HTTP attempt to deliver a sealed batch, and the retry policy around it.

- 2xx (200 `applied`, 202 `duplicate` / `stale_seq` / `quarantined`): delivered. A 202 is the
  server's final word and is never retried.
- Network error, 5xx, 408, 429: retried with exponential backoff and jitter, never sooner than
  the server's `Retry-After`. A 429 `rate_limited` (the run is over its per-minute budget) is
  waited out however often it comes: it never counts toward `max_attempts`.
- 400, 401, 403, 413 and every other status: dead letter, with the reason.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import secrets
import ssl
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from terragon_daemon import __version__
from terragon_daemon.contract import DAEMON_EVENT_PATH, DAEMON_TOKEN_HEADER, TRACEPARENT_HEADER

DELIVERED: Final = "delivered"
RETRY: Final = "retry"
DEAD_LETTER: Final = "dead_letter"

RETRY_AFTER_CAP_SECONDS: Final = 600.0
RATE_LIMITED_STATUS: Final = 429
_RETRYABLE_STATUSES: Final = frozenset({408, RATE_LIMITED_STATUS})
_RESPONSE_READ_LIMIT: Final = 64 * 1024


def classify(http_status: int) -> str:
    """What a status code means for the batch that got it."""
    if 200 <= http_status < 300:
        return DELIVERED
    if http_status >= 500 or http_status in _RETRYABLE_STATUSES:
        return RETRY
    return DEAD_LETTER


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP date; None if absent/garbage."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


class Backoff:
    """Exponential backoff with "equal jitter", never shorter than the server's `Retry-After`."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failed attempt (1-based)."""
        ceiling = min(self.cap, self.base * 2 ** max(failures - 1, 0))
        jittered = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        return max(jittered, retry_after or 0.0)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def trace_id_from(traceparent: str | None) -> str | None:
    """The trace-id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed."""
    parts = (traceparent or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    try:
        int(parts[1], 16)
    except ValueError:
        return None
    return parts[1].lower()


def traceparent_for(trace_id: str) -> str:
    """A fresh span of the run's trace for one attempt."""
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


@dataclass(frozen=True)
class Attempt:
    """What happened to one POST."""

    outcome: str
    http_status: int | None = None
    body_status: str | None = None
    reason: str | None = None
    retry_after: float | None = None
    error: str | None = None


class HttpSender:
    """POSTs envelope bodies with `http.client` (no third-party HTTP stack in the sandbox)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def post(self, ingest_url: str, token: str, traceparent: str, body: bytes) -> Attempt:
        url = urlsplit(ingest_url)
        path = url.path.rstrip("/") + DAEMON_EVENT_PATH
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"terragon-daemon/{__version__}",
            DAEMON_TOKEN_HEADER: token,
            TRACEPARENT_HEADER: traceparent,
        }
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(url.netloc, timeout=self.timeout, context=context)
        else:
            conn = http.client.HTTPConnection(url.netloc, timeout=self.timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read(_RESPONSE_READ_LIMIT)
            status = response.status
            retry_after = parse_retry_after(response.getheader("Retry-After"))
        except (OSError, http.client.HTTPException) as exc:
            return Attempt(RETRY, error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        body_status, reason = _read_status(raw)
        return Attempt(classify(status), status, body_status, reason, retry_after)


def _read_status(raw: bytes) -> tuple[str | None, str | None]:
    """`status` and `reason` from a JSON response body, tolerating anything else."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    status = data.get("status")
    reason = data.get("reason")
    return (
        status if isinstance(status, str) else None,
        reason if isinstance(reason, str) else None,
    )
