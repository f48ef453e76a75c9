"""The dashboard's sign-in numbers and cookie name (CONTRACT §7)."""

from __future__ import annotations

from typing import Final

DASHBOARD_SESSION_COOKIE: Final = "terragon_dashboard_session"
"""The signed, expiring, HttpOnly cookie that keeps a browser signed in to the dashboard."""
DASHBOARD_SESSION_SECONDS: Final = 12 * 3600
"""A sign-in lasts at most this long (across reloads and tabs); then the browser signs in again."""
DASHBOARD_SIGN_IN_MAX_FAILURES: Final = 5
"""Failed sign-ins from one client within `DASHBOARD_SIGN_IN_WINDOW_SECONDS` before it is locked."""
DASHBOARD_SIGN_IN_WINDOW_SECONDS: Final = 60
DASHBOARD_SIGN_IN_LOCK_SECONDS: Final = 60
"""How long a locked client's further tries are refused (429, `Retry-After`)."""
