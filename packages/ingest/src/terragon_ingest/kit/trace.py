"""W3C trace context: read `traceparent`, or start a new trace when it is absent or malformed.

Generic (no domain): the error handlers in `kit.http` name the trace id in 5xx answers."""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def trace_id_from(traceparent: str | None) -> str:
    """The 32-hex trace id of a valid `traceparent`, else a fresh one."""
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1)
    return secrets.token_hex(16)
