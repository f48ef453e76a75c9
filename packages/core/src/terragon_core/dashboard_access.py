"""Who may reach the dashboard: one declaration of its sign-in mode and host names, read by the
dashboard (which enforces them) and by `terragon up` / `terragon dashboard` (which warn before
starting it). Neither imports the other, so the declaration lives here."""

from __future__ import annotations

from dataclasses import dataclass

from terragon_core.env import setting


@dataclass(frozen=True, slots=True)
class DashboardAccessSettings:
    AUTH: str | None = setting(
        "TERRAGON_DASHBOARD_AUTH",
        "str",
        None,
        "`password`: the dashboard asks every browser to sign in with "
        "`TERRAGON_DASHBOARD_PASSWORD` and keeps it signed in for 12 hours (HttpOnly cookie); "
        "unset: no sign-in, and payload prefixes only when it is served on a loopback address.",
        read=lambda env: (env.get("TERRAGON_DASHBOARD_AUTH") or "").strip().lower() or None,
    )
    HOSTS: tuple[str, ...] = setting(
        "TERRAGON_DASHBOARD_HOSTS",
        "list",
        (),
        "The host names the dashboard answers to, comma-separated, without port; any other "
        "`Host` (or websocket `Origin`) gets 403 (a DNS-rebinding page reads nothing).",
        shown_default="the bind address, `localhost`, `127.0.0.1`",
    )
