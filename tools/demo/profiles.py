"""What each demo sandbox does, chosen so the dashboard shows every trend within minutes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    repo: str
    strict: bool
    """The repo's `daemonRunIdStrict` flag (frozen into each run at start)."""
    payload_version: int
    git: bool
    """False: the checkout is not a git repo, so the terminal batch has no endSha."""
    agent_args: tuple[str, ...]


PROFILES: tuple[Profile, ...] = (
    Profile("strict-v2", "acme/web", True, 2, True, ("--messages", "8", "--commits", "1")),
    Profile("legacy-v2", "acme/api", False, 2, True, ("--messages", "6", "--commits", "1")),
    Profile("legacy-v1", "acme/api", False, 1, True, ("--messages", "6", "--commits", "1")),
    Profile("strict-v1", "globex/site", True, 1, True, ("--messages", "5", "--commits", "1")),
    Profile("no-end-sha", "initech/app", False, 2, False, ("--messages", "4", "--no-git")),
    Profile(
        "oversized",
        "globex/site",
        True,
        1,
        True,
        ("--messages", "3", "--payload-bytes", "24000", "--commits", "1"),
    ),
)

USERS: tuple[str, ...] = ("ada", "grace", "linus")


def profile_for(index: int) -> Profile:
    return PROFILES[index % len(PROFILES)]
