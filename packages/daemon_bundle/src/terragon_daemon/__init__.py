"""terragon_daemon: the sandbox daemon that streams an agent's output to the ingest service.

Standard library only, Python >= 3.10: it runs inside sandboxes we do not control and ships as
one zipapp (`dist/terragon-daemon.pyz`). Module map:

- `contract`  values duplicated from `terragon_core` (parity-tested)
- `protocol`  control messages on the Unix socket (`start`, `stop`, `kill`, `ping`)
- `envelope`  the `POST /api/daemon-event` body (v1 legacy and v2)
- `batcher`   when to seal a batch (interval, count, byte cap)
- `spool`     sealed batches, run state and dead letters on disk
- `files`     atomic replace and durable append (what the spool writes with)
- `sender`    one HTTP attempt and the retry policy
- `delivery`  the per-run delivery loop (one batch in flight)
- `agent`     the agent subprocess and `git rev-parse HEAD`
- `run`       one run: agent output → batches → delivery
- `supervisor` all runs of this daemon; resume after restart
- `settings`  the frozen settings object; `logs` the key=value log format
- `server`    the Unix socket server
- `cli`       `python -m terragon_daemon`
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
