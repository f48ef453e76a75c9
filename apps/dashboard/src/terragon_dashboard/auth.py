"""Sign-in for the dashboard: a password from the environment, compared in constant time.

Why not Streamlit's OIDC `st.login`: it needs Authlib and an identity provider reachable from
the server; a shared password works offline and is enough to keep payload prefixes (the first
2 KiB of quarantined envelopes) from anyone who merely reaches the port.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Final

MIN_PASSWORD_LENGTH: Final = 12
MODES: Final = ("password",)


def config_problem(mode: str | None, password: str | None) -> str | None:
    """Why the configured sign-in cannot work (the page then shows nothing), or None."""
    if mode is None:
        return None
    if mode not in MODES:
        return (
            f"TERRAGON_DASHBOARD_AUTH={mode!r} is not supported; use 'password' "
            "(with TERRAGON_DASHBOARD_PASSWORD) or unset it"
        )
    if not password or len(password) < MIN_PASSWORD_LENGTH:
        return (
            "TERRAGON_DASHBOARD_AUTH=password needs TERRAGON_DASHBOARD_PASSWORD of at least "
            f"{MIN_PASSWORD_LENGTH} characters"
        )
    return None


def password_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def may_read_payloads(*, mode: str | None, signed_in: bool, server_address: str) -> bool:
    """Payload prefixes: for signed-in users; with no sign-in configured, only when the page is
    served on a loopback address (whoever reaches it is on this machine)."""
    if mode is not None:
        return signed_in
    return is_loopback(server_address)
