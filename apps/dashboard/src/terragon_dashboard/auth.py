"""Sign-in for the dashboard: a password from the environment, compared in constant time; a
signed, expiring, HttpOnly cookie that keeps a browser signed in; a per-client throttle.

Why not Streamlit's OIDC `st.login`: it needs Authlib and an identity provider reachable from
the server; a shared password works offline and is enough to keep payload prefixes (the first
2 KiB of quarantined envelopes) from anyone who merely reaches the port.

The password is checked by an HTTP route of the dashboard's server (`edge.py`), not by the
Streamlit script: only an HTTP answer can set an HttpOnly cookie, and a route sees the client's
address for the throttle. The script only reads the cookie (`st.context.cookies`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from terragon_core import (
    DASHBOARD_SESSION_SECONDS,
    DASHBOARD_SIGN_IN_LOCK_SECONDS,
    DASHBOARD_SIGN_IN_MAX_FAILURES,
    DASHBOARD_SIGN_IN_WINDOW_SECONDS,
    SecurityReason,
)

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
    """Constant time whatever the lengths: the digests are compared, not the strings."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


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


@dataclass(frozen=True, slots=True)
class SessionCheck:
    """What a presented cookie is worth: `ok`, else why not (a `SecurityReason`; None when no
    cookie was presented)."""

    ok: bool
    reason: SecurityReason | None = None
    expires_at: float | None = None


_VERSION: Final = "v1"


class Sessions:
    """Signed, expiring session cookies: `v1.<expires>.<nonce>.<hmac>`, HMAC-SHA256 under a key
    drawn at random when the dashboard process starts, so there is no secret to set or leak and a
    restart signs every browser out; signing out revokes the nonce until its expiry (held in this
    process, bounded by the sessions it issued)."""

    def __init__(
        self,
        key: bytes | None = None,
        *,
        lifetime: float = DASHBOARD_SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key or secrets.token_bytes(32)
        self._lifetime = lifetime
        self._clock = clock
        self._revoked: dict[str, float] = {}  # nonce -> its expiry
        self._lock = threading.Lock()

    @property
    def lifetime(self) -> int:
        return int(self._lifetime)

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        expires = int(self._clock() + self._lifetime)
        body = f"{_VERSION}.{expires}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._sign(body)}"

    def _parse(self, value: str | None) -> tuple[SessionCheck, str | None]:
        if not value:
            return SessionCheck(ok=False), None
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
            return SessionCheck(ok=False, reason=SecurityReason.SIGNATURE_MISMATCH), None
        body, signature = ".".join(parts[:3]), parts[3]
        if not hmac.compare_digest(self._sign(body).encode(), signature.encode()):
            return SessionCheck(ok=False, reason=SecurityReason.SIGNATURE_MISMATCH), None
        expires, nonce = float(parts[1]), parts[2]
        if expires <= self._clock():
            return SessionCheck(ok=False, reason=SecurityReason.EXPIRED, expires_at=expires), None
        with self._lock:
            if nonce in self._revoked:
                return SessionCheck(ok=False, reason=SecurityReason.REVOKED), None
        return SessionCheck(ok=True, expires_at=expires), nonce

    def check(self, value: str | None) -> SessionCheck:
        return self._parse(value)[0]

    def revoke(self, value: str | None) -> bool:
        """Sign out: the cookie's session ends now, in every tab that holds it."""
        check, nonce = self._parse(value)
        if nonce is None or check.expires_at is None:
            return False
        now = self._clock()
        with self._lock:
            self._revoked = {n: e for n, e in self._revoked.items() if e > now}
            self._revoked[nonce] = check.expires_at
        return True


def client_key(address: str | None) -> str:
    """Whom the throttle counts: the client's IP, an IPv6 client by its /64 (one host holds a
    whole /64 and could otherwise pick a new address per try)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class SignInThrottle:
    """After `max_failures` failed sign-ins from one client within `window` seconds, that
    client's further tries are refused for `lock` seconds (the password is not even compared).
    Holds at most `max_clients` clients (the oldest are forgotten first)."""

    def __init__(
        self,
        *,
        max_failures: int = DASHBOARD_SIGN_IN_MAX_FAILURES,
        window: float = DASHBOARD_SIGN_IN_WINDOW_SECONDS,
        lock: float = DASHBOARD_SIGN_IN_LOCK_SECONDS,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self._window, self._lock_for, self._max_clients = window, lock, max_clients
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._mutex = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None if it may try now."""
        with self._mutex:
            until = self._locked_until.get(client)
            now = self._clock()
            if until is None:
                return None
            if until <= now:
                del self._locked_until[client]
                return None
            return max(1, int(until - now + 0.999))

    def failed(self, client: str) -> int:
        """Record a failure; returns the client's failures within the window (at
        `max_failures` the client is locked)."""
        with self._mutex:
            now = self._clock()
            failures = self._failures.pop(client, None) or deque()
            while failures and failures[0] <= now - self._window:
                failures.popleft()
            failures.append(now)
            self._failures[client] = failures  # re-inserted: the dict's order is recency
            if len(failures) >= self.max_failures:
                self._locked_until[client] = now + self._lock_for
                del self._failures[client]
            while len(self._failures) > self._max_clients:
                del self._failures[next(iter(self._failures))]
            while len(self._locked_until) > self._max_clients:
                del self._locked_until[next(iter(self._locked_until))]
            return len(failures)

    def succeeded(self, client: str) -> None:
        with self._mutex:
            self._failures.pop(client, None)


SESSIONS: Final = Sessions()
"""The dashboard process's sessions: its sign-in route issues them, its script checks them."""
THROTTLE: Final = SignInThrottle()
