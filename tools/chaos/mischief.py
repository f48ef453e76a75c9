"""What the fault campaign's fleet sends besides its well-behaved daemons: the envelopes that
become quarantine rows (CONTRACT §4), posted through the same cutting proxy so the kills, the
PostgreSQL restart and the Valkey outage hit them too.

Kinds, each on a thread of its own (set up before the faults, directly on a replica):

- `zombie`: the daemon of a superseded run (a run started, one envelope applied, then a new run
  started on the same thread) keeps sending v2 envelopes → 202 `quarantined` `mismatch`;
- `oversized`: the same zombie with an envelope over the 16 KiB inline limit → `mismatch`, the
  whole envelope offloaded to the object store (`payloadObjectKey`; skipped, and counted, when
  Valkey is down or the repo is over its offload rate);
- `stale_seq`: a live run's envelope with a `seq` not above the last accepted one and a new
  `eventId` → 202 `stale_seq`, no row;
- `strict_v1`: a v1 envelope (no `runId`) on a run frozen with `daemonRunIdStrict` →
  `quarantined` `missing_run_id`;
- `legacy_v1`: a v1 envelope on a run without strict → 200 `applied` + `legacyMode`, with a
  `legacy_mode` row (`quarantineId`); its retry after a cut lost the answer is a `duplicate`.

And one real daemon (the committed bundle, like the fleet's) becomes a zombie: `adopt` takes it
with its run, and a few seconds into the faults a new run is started on its thread through the
proxy. Its later batches are answered `quarantined` `mismatch` (it logs each at WARNING with its
`event_id`): each must have its row.

Each envelope is retried as a daemon retries (the same body) on 503, 429, a connection error or
a timeout, until it gets its answer. The ledger keeps every answer: each acknowledged
`quarantineId` must be a row exactly once at the end (a retry after a connection cut that had
committed makes another row, with another id: quarantine rows are not deduplicated).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from terragon_core import (
    DAEMON_EVENT_PAYLOAD_VERSION,
    DAEMON_TOKEN_HEADER,
    QUARANTINE_INLINE_LIMIT_BYTES,
    EnvelopeStatus,
    FeatureFlagName,
    QuarantineReason,
)
from tools.bench.stack import RunHandle, create_run, internal_client

EVENT_PATH = "/api/daemon-event"
RETRIED = {429, 502, 503, 504}
"""Answers a daemon retries with the same envelope (a dependency down, a replica gone)."""

EXPECTED: dict[str, tuple[EnvelopeStatus, QuarantineReason | None]] = {
    "zombie": (EnvelopeStatus.QUARANTINED, QuarantineReason.MISMATCH),
    "oversized": (EnvelopeStatus.QUARANTINED, QuarantineReason.MISMATCH),
    "stale_seq": (EnvelopeStatus.STALE_SEQ, None),
    "strict_v1": (EnvelopeStatus.QUARANTINED, QuarantineReason.MISSING_RUN_ID),
    "legacy_v1": (EnvelopeStatus.APPLIED, None),
}
KINDS = tuple(EXPECTED)
STRICT_REPO = "chaos/strict"
ZOMBIE_REPO = "chaos/zombie"
SUPERSEDE_AFTER = 2.0
"""Seconds into the faults when the real zombie daemon's run is superseded."""
_QUARANTINED_LINE = re.compile(r"\bstatus=quarantined\b.*")
_EVENT_ID = re.compile(r"\bevent_id=(\S+)")
_REASON = re.compile(r"\breason=(\S+)")


@dataclass
class ZombieDaemon:
    """A real daemon whose run is superseded while it runs."""

    run: RunHandle
    proc: subprocess.Popen[bytes]
    log: Path
    superseded_after: float | None = None
    """Seconds into the faults when the new run started (None: it never did)."""
    exit_code: int | None = None

    def quarantined(self) -> dict[str, str]:
        """The batches it logged as answered `quarantined`: event id → reason."""
        found: dict[str, str] = {}
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        for line in text.splitlines():
            if _QUARANTINED_LINE.search(line) and "event=batch_delivered" in line:
                event, reason = _EVENT_ID.search(line), _REASON.search(line)
                if event:
                    found[event.group(1)] = reason.group(1) if reason else ""
        return found


@dataclass
class Ack:
    """One envelope and the answer it finally got."""

    kind: str
    event_id: str
    status: str
    """The answer's `status`, or `unanswered` when it got none before its deadline."""
    reason: str | None
    quarantine_id: str | None
    attempts: int
    size: int

    @property
    def expected(self) -> bool:
        status, reason = EXPECTED[self.kind]
        if status == EnvelopeStatus.APPLIED and self.status == EnvelopeStatus.DUPLICATE:
            # The retry of an applied envelope whose answer a cut lost (a v1 body's digest is
            # its dedupe id): its legacy_mode row was written by the first attempt, unnamed.
            return self.attempts > 1
        if self.status != status or (reason is not None and self.reason != reason):
            return False
        # The legacy apply and every quarantine name their row.
        return status == EnvelopeStatus.STALE_SEQ or self.quarantine_id is not None


@dataclass
class Ledger:
    acks: list[Ack] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    """Attempts retried, by what the attempt met (a status code or an exception name)."""

    def quarantined(self) -> dict[str, Ack]:
        """Acknowledged quarantine rows by id (the legacy apply's `legacy_mode` row included)."""
        return {a.quarantine_id: a for a in self.acks if a.quarantine_id is not None}

    def unexpected(self) -> list[Ack]:
        return [a for a in self.acks if not a.expected]

    def by_kind(self) -> Counter[str]:
        return Counter(a.kind for a in self.acks)


@dataclass
class _Sender:
    """One misbehaving daemon: its run's token, thread and the next seq it sends."""

    run: RunHandle
    run_id: str | None
    """The `runId` its v2 envelopes name (None: a v1 daemon)."""
    seq: int = 1


class Mischief:
    """Sets up the misbehaving daemons' runs (`setup`, before the faults), then sends their
    envelopes round-robin until `stop` (`start` / `stop`, a thread of its own)."""

    def __init__(self, ingest_url: str, *, pace: float = 0.5, deadline: float = 120.0) -> None:
        self.ingest_url = ingest_url
        self.pace = pace
        self.deadline = deadline
        """Seconds one envelope is retried before it counts as `unanswered`."""
        self.ledger = Ledger()
        self.senders: dict[str, _Sender] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=5)
        self.zombie: ZombieDaemon | None = None

    def adopt(self, run: RunHandle, proc: subprocess.Popen[bytes], log: Path) -> None:
        """The real daemon of `run` (started like the fleet's, logging to `log`) to supersede."""
        self.zombie = ZombieDaemon(run, proc, log)

    # ------------------------------------------------------------ before the faults

    def setup(self, client: httpx.Client) -> None:
        """Runs on four threads; the zombie's run superseded after one applied envelope; the
        stale sender's run past seq 2. `client`: the internal API of a replica (the setup's
        envelopes go to it directly, before the faults)."""
        direct_url = str(client.base_url).rstrip("/")
        zombie, _ = create_run(client, "chaos-zombie", repo=ZOMBIE_REPO)
        stale, _ = create_run(client, "chaos-stale", repo="chaos/stale")
        client.put(
            f"/api/internal/flags/{FeatureFlagName.DAEMON_RUN_ID_STRICT}",
            json={"enabled": True, "repoFullName": STRICT_REPO},
        ).raise_for_status()
        strict, _ = create_run(client, "chaos-strict", repo=STRICT_REPO)
        legacy, _ = create_run(client, "chaos-legacy", repo="chaos/legacy")
        self.senders = {
            "zombie": _Sender(zombie, zombie.run_id),
            "stale_seq": _Sender(stale, stale.run_id),
            "strict_v1": _Sender(strict, None),
            "legacy_v1": _Sender(legacy, None),
        }
        self.senders["oversized"] = self.senders["zombie"]
        for kind in ("zombie", "stale_seq", "stale_seq"):
            answer = self._post(direct_url, self._envelope(kind, fresh_seq=True), deadline=30)
            if answer.get("status") != EnvelopeStatus.APPLIED:
                raise RuntimeError(f"mischief setup: {kind} envelope answered {answer}")
        # A new run on the zombie's thread: its daemon is now a zombie.
        create_run(client, "chaos-zombie", repo=ZOMBIE_REPO, request_id="req-chaos-zombie-2")

    # ------------------------------------------------------------ during the faults

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mischief", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout: float = 120.0) -> None:
        """Stop sending; wait for the zombie daemon to finish its agent (as the fleet drains)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.deadline + 30)
            self._thread = None
        zombie = self.zombie
        if zombie is not None and zombie.exit_code is None:
            try:
                zombie.exit_code = zombie.proc.wait(drain_timeout)
            except subprocess.TimeoutExpired:
                zombie.proc.terminate()
                zombie.exit_code = zombie.proc.wait(30)
        self._http.close()

    def _supersede(self, zombie: ZombieDaemon, started: float) -> None:
        """A new run on the zombie's thread, through the proxy (retried like the platform)."""
        with internal_client(self.ingest_url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    create_run(
                        client,
                        zombie.run.thread_id,
                        repo=ZOMBIE_REPO,
                        chat_id=zombie.run.thread_chat_id,
                        request_id=f"req-{zombie.run.thread_id}-2",
                    )
                except httpx.HTTPError as exc:
                    self.ledger.retries[f"supersede {type(exc).__name__}"] += 1
                    self._stop.wait(0.5)  # pacing between attempts
                    continue
                zombie.superseded_after = time.monotonic() - started
                return

    def _run(self) -> None:
        turn = 0
        window = time.monotonic()
        while not self._stop.is_set():
            zombie = self.zombie
            if (
                zombie
                and zombie.superseded_after is None
                and time.monotonic() - window > SUPERSEDE_AFTER
            ):
                self._supersede(zombie, window)
            kind = KINDS[turn % len(KINDS)]
            turn += 1
            body = self._envelope(kind)
            started = time.monotonic()
            attempts: list[int] = []
            try:
                answer = self._post(
                    self.ingest_url, body, deadline=self.deadline, attempts=attempts
                )
            except Exception as exc:  # recorded as an unexpected answer, never a silent stop
                answer = {"status": f"error {type(exc).__name__}: {exc}"[:200]}
            envelope = json.loads(body)
            self.ledger.acks.append(
                Ack(
                    kind=kind,
                    event_id=envelope.get("eventId") or envelope["messages"][0]["uuid"],
                    status=str(answer.get("status", "unanswered")),
                    reason=answer.get("reason"),
                    quarantine_id=answer.get("quarantineId"),
                    attempts=len(attempts),
                    size=len(body),
                )
            )
            self._stop.wait(max(0.0, self.pace - (time.monotonic() - started)))

    # ------------------------------------------------------------ envelopes

    def _envelope(self, kind: str, *, fresh_seq: bool = False) -> bytes:
        sender = self.senders[kind]
        message: dict[str, Any] = {
            "type": "assistant",
            "uuid": str(uuid.uuid4()),
            "message": {"role": "assistant", "content": f"chaos {kind}"},
        }
        if kind == "oversized":
            message["message"]["content"] = "x" * (QUARANTINE_INLINE_LIMIT_BYTES + 4096)
        body: dict[str, Any] = {
            "threadId": sender.run.thread_id,
            "threadChatId": sender.run.thread_chat_id,
            "messages": [message],
        }
        if sender.run_id is not None:
            seq = sender.seq
            if kind != "stale_seq" or fresh_seq:
                sender.seq += 1
            else:
                seq = 1  # never above the last accepted (2)
            body |= {
                "payloadVersion": DAEMON_EVENT_PAYLOAD_VERSION,
                "runId": sender.run_id,
                "eventId": f"chaos-{kind}-{uuid.uuid4()}",
                "seq": seq,
            }
        return json.dumps(body).encode()

    def _post(
        self, base: str, body: bytes, *, deadline: float, attempts: list[int] | None = None
    ) -> dict[str, Any]:
        """POST `body` until an answer that is not retried (its JSON), or {} at the deadline."""
        envelope = json.loads(body)
        token = next(
            s.run.token for s in self.senders.values() if s.run.thread_id == envelope["threadId"]
        )
        headers = {DAEMON_TOKEN_HEADER: token, "content-type": "application/json"}
        give_up = time.monotonic() + deadline
        delay = 0.2
        tries = attempts if attempts is not None else []
        while True:
            tries.append(1)
            try:
                response = self._http.post(base + EVENT_PATH, content=body, headers=headers)
                if response.status_code not in RETRIED:
                    try:
                        return dict(response.json())
                    except ValueError:  # not the contract's JSON: an unexpected answer
                        return {"status": f"http {response.status_code} (not JSON)"}
                self.ledger.retries[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                self.ledger.retries[type(exc).__name__] += 1
            if time.monotonic() + delay > give_up:
                return {}
            time.sleep(delay)  # a daemon's backoff between attempts
            delay = min(delay * 2, 2.0)
