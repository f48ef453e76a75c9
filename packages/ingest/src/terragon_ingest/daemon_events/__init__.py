"""`POST /api/daemon-event`: the correlation decision, the exactly-once apply, the quarantine store.
Other domains import what they use from here (an import-linter contract in pyproject.toml).

routes.py            the daemon-facing route (own body cap, strict decode, token, status bodies)
internal_routes.py   quarantine read-out, UI-validation read-out, the maintenance sweep trigger
service.py           the decision's Python half: token gate, decode, inputs it asks for, replies
repository.py        SQL (queries.sql; the decision is db/functions/terragon_ingest_envelopes.sql)
quarantine.py        quarantine rows: prefix, hash, size, inline payload or object-store offload
recording.py         a quarantine row's insert, event, counters and preview denials
replay.py            `terragon quarantine replay`: a stored envelope through the same decision
maintenance.py       the backstop sweep: finalize silent runs, remove orphan offloaded objects
terminal.py          endSha vs live HEAD, legacy UI outcome (read-only sandbox reader only)
ui_rules.py          `.terragon/preview-validation.json` and the default UI globs, with their limits
globs.py             UI-rule globs: parsed with limits, matched by an automaton (linear, no regex)
commands.py          `terragon quarantine list|show|replay`, `terragon maintenance sweep`
deps.py              DaemonEventsDeps: what the domain uses, built in the app's lifespan
"""

from __future__ import annotations

from terragon_ingest.daemon_events.deps import DaemonEventsDeps
from terragon_ingest.daemon_events.maintenance import sweep

__all__ = ["DaemonEventsDeps", "sweep"]
