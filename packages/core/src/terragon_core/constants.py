"""Numbers and fixed strings of the contract (CONTRACT §1, §4, §5)."""

from __future__ import annotations

from typing import Final

PREVIEW_SESSION_TTL_SECONDS: Final = 1800
DAEMON_EVENT_PAYLOAD_VERSION: Final = 2
LEGACY_PAYLOAD_VERSION: Final = 1
LEGACY_THREAD_CHAT_ID: Final = "legacy-thread-chat-id"
SCHEMA_VERSION: Final = 1
"""Observability event schema version (CONTRACT §6)."""

# Quarantine payload controls (CONTRACT §4).
QUARANTINE_PREFIX_BYTES: Final = 2048
QUARANTINE_INLINE_LIMIT_BYTES: Final = 16 * 1024
QUARANTINE_OFFLOADS_PER_REPO_PER_MINUTE: Final = 20
QUARANTINE_RETENTION_DAYS: Final = 30
PREVIEW_EVENT_RETENTION_DAYS: Final = QUARANTINE_RETENTION_DAYS
"""CONTRACT §4/§6 name no period for preview events: they keep the quarantine's 30 days (issue 15)."""

# Envelope field limits (CONTRACT §4). Over the first → 400 `invalid` (the envelope cannot even be
# attributed); over the others → quarantined `invalid_envelope` (202: kept, never retried forever).
ENVELOPE_ID_MAX_CHARS: Final = 256
"""`threadId`, `threadChatId`, `runId`."""
ENVELOPE_FIELD_MAX_CHARS: Final = 128
"""`eventId`, `endSha` and a message's `uuid`."""
ENVELOPE_SEQ_MAX: Final = 2**63 - 1
"""`seq` is in 1 … 2^63-1: PostgreSQL's bigint."""

# Maintenance backstop (CONTRACT §4).
MAINTENANCE_INTERVAL_SECONDS: Final = 60
STALE_RUN_WINDOW_SECONDS: Final = 30 * 60
MISSING_END_SHA_GRACE_SECONDS: Final = 5 * 60

# Repo-access cache (CONTRACT §5).
REPO_ACCESS_POSITIVE_TTL_CAP_SECONDS: Final = 60
REPO_ACCESS_NEGATIVE_TTL_SECONDS: Final = 5
GITHUB_NAME_MAX_CHARS: Final = 256
"""A repo full name or login on the internal API (GitHub's are far shorter: 39 + 1 + 100)."""
GITHUB_DELIVERY_ID_MAX_CHARS: Final = 256
"""`X-GitHub-Delivery` is a GUID (36 characters); a longer one is a 400, not an index error."""
WEBHOOK_DIGEST_RETENTION_DAYS: Final = 30
"""A webhook body applied in the last 30 days is a `duplicate` under any delivery id; retention
deletes older digests."""

# Daemon event wire.
DAEMON_TOKEN_HEADER: Final = "X-Daemon-Token"
DAEMON_TOKEN_GRACE_SECONDS: Final = 60 * 60
"""A daemon token is accepted until this long after its run ended (late retries still get their
final answer), then 401 `expired` (CONTRACT §4). The SQL spells it `interval '1 hour'`
(db/functions/terragon_daemon_token.sql); tests/hostile/test_token_lifetime.py holds them equal."""
TRACEPARENT_HEADER: Final = "traceparent"
PROXY_REQUEST_ID_HEADER: Final = "x-proxy-req-id"
TERMINAL_MESSAGE_TYPES: Final = frozenset({"result", "custom-stop", "custom-error"})
UI_RULES_PATH: Final = ".terragon/preview-validation.json"
DEFAULT_UI_RULES: Final = ("**/*.{tsx,jsx,css,scss,mdx}", "public/**/*")
DEFAULT_UI_EXCLUDES: Final = ("docs/**/*", ".github/**/*")
UI_RULES_INVALID_BLOCKING_REASON: Final = "ui_rules_invalid"
DOCKER_DAEMON_SOCKET_PATH: Final = "/run/terragon/daemon.sock"
"""Inside a `docker` sandbox: where its daemon listens (`--socket`); run start hands the start
message to it there, through the Engine API's exec."""

# UI rules are untrusted input (CONTRACT §4): bounds of the rules file, and of the work one
# terminal decision may spend matching (over them the outcome is `inconclusive`).
UI_RULES_MAX_GLOBS: Final = 100
"""Globs in one rules file, `uiRules` and `excludes` together."""
UI_RULES_MAX_GLOB_LENGTH: Final = 256
"""Characters in one glob."""
UI_RULES_MAX_ALTERNATIVES: Final = 256
"""Patterns one glob would expand to (`{a,b}{c,d}` is 4); counted, never expanded."""
UI_MATCH_MAX_PATHS: Final = 100_000
"""Changed paths matched in one decision; more is `inconclusive` (unknown is not "no UI")."""
UI_MATCH_DEADLINE_SECONDS: Final = 2.0
"""Time one decision may spend matching (off the event loop); past it, `inconclusive`."""

RUN_MAX_MESSAGES_PER_MINUTE: Final = 6000
"""Default of `TERRAGON_RUN_MAX_MESSAGES_PER_MINUTE`: messages one run may send per minute
(CONTRACT §4 "Budgets")."""
RUN_MAX_BYTES_PER_MINUTE: Final = 32 * 1024 * 1024
"""Default of `TERRAGON_RUN_MAX_BYTES_PER_MINUTE`: body bytes one run may send per minute."""

UP_STATE_FILE: Final = "up.json"
"""Written by `terragon up` into its data directory: `{pid, databaseUrl, valkeyUrl, api}`; every
command given `--data-dir` finds the running installation's servers in it (and the dashboard knows
from it that `--data-dir` alone finds the database)."""
