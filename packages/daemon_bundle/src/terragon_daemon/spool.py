"""The on-disk spool: run state, sealed batches and dead letters, written atomically.

```
{spool}/runs/{runKey}/state.json              spec (with token), lastSealedSeq, traceId, flags
{spool}/runs/{runKey}/batches/{seq:010d}.json sealed, not delivered: a JSON header line
                                              (seq, eventId, terminal), then the exact body
{spool}/runs/{runKey}/dead-letter.jsonl       batches the server refused, with the reason
```

Sealing fixes a batch's `eventId` and `seq` once: the batch file is written (tmp + fsync +
`os.replace`, see `files`) before anything is sent, and a restart resends it unchanged. `seq`
continues from the larger of the state's `lastSealedSeq` and the highest batch file, so sealing
costs one durable write and no crash ever reuses a number: the state takes the number over
before the newest batch file is removed. Deleting a delivered batch needs no fsync: if the unlink
is lost, the batch is resent with its own `eventId` and the server answers `duplicate`.
Files are private (0600) because the state holds the run's token.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terragon_daemon.envelope import encode_envelope
from terragon_daemon.files import (
    TMP_SUFFIX,
    append_json_line,
    atomic_write_bytes,
    atomic_write_json,
)
from terragon_daemon.logs import log_event
from terragon_daemon.protocol import StartSpec

log = logging.getLogger(__name__)

STATE_FORMAT = 1
COMPLETED_RETENTION_SECONDS = 7 * 24 * 3600
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def run_key(spec: StartSpec) -> str:
    """A filesystem-safe, unique directory name for a run."""
    if spec.run_id is None:
        return f"legacy-{uuid.uuid4().hex}"
    safe = _UNSAFE.sub("_", spec.run_id)[:80]
    if safe != spec.run_id or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{hashlib.sha256(spec.run_id.encode()).hexdigest()[:12]}"
    return safe


@dataclass(frozen=True)
class SealedBatch:
    """A batch whose `eventId`, `seq` and wire bytes are fixed for good."""

    seq: int
    event_id: str
    terminal: bool
    body: bytes
    """The exact request body; every retry, before or after a restart, sends these bytes."""

    def header(self) -> dict[str, Any]:
        return {"seq": self.seq, "eventId": self.event_id, "terminal": self.terminal}

    def to_file(self) -> bytes:
        """A JSON header line, then the body bytes as they go on the wire."""
        return json.dumps(self.header(), sort_keys=True).encode() + b"\n" + self.body

    @classmethod
    def from_file(cls, data: bytes) -> SealedBatch:
        header, _, body = data.partition(b"\n")
        fields = json.loads(header)
        return cls(int(fields["seq"]), str(fields["eventId"]), bool(fields["terminal"]), body)

    def to_json(self) -> dict[str, Any]:
        """For the dead-letter file: the header plus the body as text."""
        return {**self.header(), "body": self.body.decode("utf-8")}


class SpoolRun:
    """One run's directory. Not thread-safe: the run serialises access under its lock."""

    def __init__(self, directory: Path, state: dict[str, Any], pending: list[SealedBatch]) -> None:
        self.directory = directory
        self.key = directory.name
        self.spec = StartSpec.from_json(state["spec"])
        self.trace_id: str = state["traceId"]
        self.pending = sorted(pending, key=lambda b: b.seq)
        self.last_sealed_seq = max([int(state["lastSealedSeq"]), *(b.seq for b in pending)])
        self.terminal_sealed = bool(state["terminalSealed"]) or any(b.terminal for b in pending)
        self.complete = bool(state.get("complete", False))
        self.delivered = int(state.get("delivered", 0))
        self.dead_lettered = int(state.get("deadLettered", 0))

    @property
    def batches_dir(self) -> Path:
        return self.directory / "batches"

    @property
    def dead_letter_path(self) -> Path:
        return self.directory / "dead-letter.jsonl"

    def _batch_path(self, seq: int) -> Path:
        return self.batches_dir / f"{seq:010d}.json"

    def save_state(self) -> None:
        atomic_write_json(
            self.directory / "state.json",
            {
                "format": STATE_FORMAT,
                "spec": self.spec.to_json(),
                "traceId": self.trace_id,
                "lastSealedSeq": self.last_sealed_seq,
                "terminalSealed": self.terminal_sealed,
                "complete": self.complete,
                "delivered": self.delivered,
                "deadLettered": self.dead_lettered,
            },
        )

    def seal(self, messages: list[bytes], *, terminal: bool, end_sha: str | None) -> SealedBatch:
        """Fix `eventId` and the next `seq` for `messages` and persist the batch."""
        if self.terminal_sealed:
            raise RuntimeError(f"run {self.key!r} already sealed its terminal batch")
        seq = self.last_sealed_seq + 1
        event_id = str(uuid.uuid4())
        body = encode_envelope(
            self.spec, messages, event_id=event_id, seq=seq, terminal=terminal, end_sha=end_sha
        )
        batch = SealedBatch(seq, event_id, terminal, body)
        atomic_write_bytes(self._batch_path(seq), batch.to_file())
        self.last_sealed_seq = seq
        self.terminal_sealed = terminal
        self.pending.append(batch)
        return batch

    def mark_delivered(self, batch: SealedBatch) -> None:
        """Drop a delivered batch. While a newer batch file exists it still records the highest
        `seq`; the newest one is only unlinked after the state has taken the number over."""
        self.pending.remove(batch)
        self.delivered += 1
        if batch.seq == self.last_sealed_seq:
            self.save_state()
        self._batch_path(batch.seq).unlink(missing_ok=True)

    def dead_letter(self, batch: SealedBatch, reason: str, detail: dict[str, Any]) -> None:
        """Append the batch and why it was refused to `dead-letter.jsonl`, then drop it."""
        record = {"deadLetteredAt": time.time(), "reason": reason, **detail}
        append_json_line(self.dead_letter_path, {**record, "batch": batch.to_json()})
        self.pending.remove(batch)
        self.dead_lettered += 1
        self.save_state()
        self._batch_path(batch.seq).unlink(missing_ok=True)

    def mark_complete(self) -> None:
        self.complete = True
        self.save_state()


class SpoolLockedError(RuntimeError):
    """Another daemon process owns this spool directory."""


class Spool:
    """The spool root: creates runs and finds the unfinished ones after a restart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs_dir = root / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Take the spool for this process (released by the OS when the process dies)."""
        fd = os.open(self.root / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLockedError(f"spool {str(self.root)!r} is used by another daemon") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def exists(self, key: str) -> bool:
        return (self.runs_dir / key / "state.json").exists()

    def create_run(self, key: str, spec: StartSpec, trace_id: str) -> SpoolRun:
        directory = self.runs_dir / key
        (directory / "batches").mkdir(parents=True, exist_ok=False, mode=0o700)
        state = {
            "spec": spec.to_json(),
            "traceId": trace_id,
            "lastSealedSeq": 0,
            "terminalSealed": False,
        }
        run = SpoolRun(directory, state, [])
        run.save_state()
        return run

    def load_run(self, key: str) -> SpoolRun:
        directory = self.runs_dir / key
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
        pending: list[SealedBatch] = []
        for path in sorted(directory.glob(f"**/*{TMP_SUFFIX}")):
            path.unlink(missing_ok=True)  # a write that never reached os.replace
        for path in sorted((directory / "batches").glob("*.json")):
            if path.name.startswith("."):
                continue
            pending.append(SealedBatch.from_file(path.read_bytes()))
        return SpoolRun(directory, state, pending)

    def load_unfinished(self) -> list[SpoolRun]:
        """Runs to resume, oldest key first; prunes completed runs past their retention."""
        runs: list[SpoolRun] = []
        now = time.time()
        for directory in sorted(self.runs_dir.iterdir()):
            state_path = directory / "state.json"
            if not state_path.is_file():
                continue
            try:
                run = self.load_run(directory.name)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log_event(
                    log,
                    logging.ERROR,
                    "spool_run_unreadable",
                    run_key=directory.name,
                    error=str(exc),
                )
                continue
            if not run.complete:
                runs.append(run)
            elif now - state_path.stat().st_mtime > COMPLETED_RETENTION_SECONDS:
                shutil.rmtree(directory, ignore_errors=True)
                log_event(log, logging.INFO, "spool_run_pruned", run_key=run.key)
        return runs
