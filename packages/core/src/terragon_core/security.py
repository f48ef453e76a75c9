"""Security reason → HTTP status: the one table (CONTRACT §1)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from terragon_core.enums import SecurityReason

SECURITY_REASON_STATUS: Final = MappingProxyType(
    {
        SecurityReason.TOKEN_REPLAY: 409,
        SecurityReason.RATE_LIMITED: 429,
        SecurityReason.CACHE_UNAVAILABLE: 503,
        SecurityReason.PROXY_SSRF_BLOCKED: 403,
        SecurityReason.PROXY_PATH_DENIED: 403,
        SecurityReason.BINDING_MISMATCH: 403,
        SecurityReason.EXPIRED: 401,
        SecurityReason.REVOKED: 401,
        SecurityReason.SIGNATURE_MISMATCH: 401,
        SecurityReason.PERMISSION_DENIED: 403,
    }
)


def http_status_for(reason: SecurityReason) -> int:
    """The HTTP status a denial with `reason` answers with."""
    return SECURITY_REASON_STATUS[reason]
