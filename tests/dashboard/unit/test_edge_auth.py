"""The dashboard's sign-in pieces on a fake clock: the session cookie (signed, expiring,
revocable), the per-client throttle, and the host-name match."""

from __future__ import annotations

import pytest

from terragon_core import DASHBOARD_SESSION_SECONDS, SecurityReason
from terragon_dashboard import auth
from terragon_dashboard.edge import allowed_hosts, normalize_host


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lasts_twelve_hours_and_no_longer() -> None:
    clock = Clock()
    sessions = auth.Sessions(clock=clock)
    cookie = sessions.issue()
    assert sessions.check(cookie).ok
    clock.now += DASHBOARD_SESSION_SECONDS - 1
    assert sessions.check(cookie).ok
    clock.now += 1
    assert sessions.check(cookie) == auth.SessionCheck(
        ok=False, reason=SecurityReason.EXPIRED, expires_at=clock.now
    )


def test_a_cookie_of_another_key_or_edited_is_refused() -> None:
    sessions, other = auth.Sessions(), auth.Sessions()
    cookie = other.issue()
    assert sessions.check(cookie).reason is SecurityReason.SIGNATURE_MISMATCH
    version, expires, nonce, signature = sessions.issue().split(".")
    longer = f"{version}.{int(expires) + 86_400}.{nonce}.{signature}"  # a later expiry
    assert sessions.check(longer).reason is SecurityReason.SIGNATURE_MISMATCH
    for junk in ("", "x", "v1.1.2", "v1.a.b.c", "v2.1.2.3", "." * 5):
        assert not sessions.check(junk).ok
    assert sessions.check(None) == auth.SessionCheck(ok=False)


def test_sign_out_ends_the_session_and_only_that_one() -> None:
    sessions = auth.Sessions()
    mine, other = sessions.issue(), sessions.issue()
    assert sessions.revoke(mine)
    assert sessions.check(mine).reason is SecurityReason.REVOKED
    assert sessions.check(other).ok
    assert not sessions.revoke("v1.1.forged.0")


def test_the_sixth_try_within_a_minute_is_refused_for_a_minute() -> None:
    clock = Clock()
    throttle = auth.SignInThrottle(clock=clock)
    for n in range(1, 5):
        assert throttle.retry_after("a") is None
        assert throttle.failed("a") == n
        clock.now += 10
    assert throttle.retry_after("a") is None
    assert throttle.failed("a") == 5  # the fifth within a minute locks the client
    assert throttle.retry_after("a") == 60
    assert throttle.retry_after("b") is None  # per client
    clock.now += 59.5
    assert throttle.retry_after("a") == 1
    clock.now += 0.5
    assert throttle.retry_after("a") is None


def test_failures_older_than_a_minute_do_not_count() -> None:
    clock = Clock()
    throttle = auth.SignInThrottle(clock=clock)
    for _ in range(20):
        throttle.failed("a")
        clock.now += 15  # four per minute: never five within one
        assert throttle.retry_after("a") is None
    throttle.succeeded("a")
    assert throttle.failed("a") == 1


def test_the_throttle_forgets_the_oldest_clients_beyond_its_bound() -> None:
    throttle = auth.SignInThrottle(max_clients=3)
    for client in "abcdef":
        throttle.failed(client)
    assert throttle.failed("a") == 1  # forgotten, counted anew
    assert throttle.failed("f") == 2


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
    ],
)
def test_the_throttle_counts_an_ipv6_client_by_its_64(address: str | None, key: str) -> None:
    assert auth.client_key(address) == key


def test_password_comparison() -> None:
    assert auth.password_matches("correct horse battery", "correct horse battery")
    assert not auth.password_matches("correct horse batter", "correct horse battery")
    assert not auth.password_matches("", "correct horse battery")


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8501", "localhost"),
        ("LocalHost.", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8501", "::1"),
        ("dash.example.com:443", "dash.example.com"),
        ("user@localhost", None),
        ("localhost/x", None),
        ("localhost:99999", None),
        ("localhost:port", None),
        ("", None),
    ],
)
def test_a_host_header_is_matched_by_its_name_alone(header: str, name: str | None) -> None:
    assert normalize_host(header) == name


def test_the_default_names_are_the_bind_address_localhost_and_127_0_0_1() -> None:
    assert allowed_hosts((), "10.1.2.3") == {"10.1.2.3", "localhost", "127.0.0.1"}
    assert allowed_hosts((), None) == {"localhost", "127.0.0.1"}
    assert allowed_hosts(("Dash.Example.com", "[::1]"), "0.0.0.0") == {"dash.example.com", "::1"}
