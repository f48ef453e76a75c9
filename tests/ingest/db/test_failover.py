"""Failover (docs/operations.md "Failover"): the service on a primary and its synchronous standby,
both named in `DATABASE_URL` (libpq's multi-host form), ingesting several runs' envelopes as
daemons send them; the primary is SIGKILLed mid-load and the standby promoted. No restart of the
service: envelopes in the gap answer 503 `unavailable` (never a 500, never an acknowledgement of
something not stored), the next ones apply on the new primary within `RECOVERY_BOUND`, and the
new primary holds every acknowledged message exactly once after the daemons' retries.

Real servers throughout (`tools/standby.py`): nothing is mocked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from terragon_dashboard import live
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.daemon_events import envelope, post
from tests.fixtures.live_server import LiveServer
from tests.fixtures.net import free_port
from tests.fixtures.runs import start_run
from tests.fixtures.settings import settings_for
from tests.fixtures.waiting import until
from tools.standby import PrimaryAndStandby

RUNS = 4
WAIT = 1.0
"""`TERRAGON_DB_CONNECT_TIMEOUT`: how long a request waits for a connection before its 503."""
GAP = 2.0
"""Seconds between the primary's death and the promotion, longer than `WAIT`: daemons keep
sending meanwhile, and a request that finds no primary answers 503."""
RECOVERY_BOUND = 10.0
"""Seconds from the promotion to the first envelope applied on the new primary."""
RETRY_AFTER = 0.05
"""The daemon waits `Retry-After` (2 s) after a 503; shortened to keep the test short."""


@pytest.fixture(name="servers")
def fx_servers() -> Iterator[PrimaryAndStandby]:
    # A directory of our own, not tmp_path: concurrent sessions reset pytest's to 0700
    # (FIELD-NOTES "Embedded servers").
    servers = PrimaryAndStandby(Path(tempfile.mkdtemp(prefix="terragon-failover-")))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture(name="service")
def fx_service(servers: PrimaryAndStandby, valkey_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The service under uvicorn (the test client would run one request at a time), its
    DATABASE_URL naming both servers; idle connections to the primary at the kill (they die
    with it, unknown to the pool)."""
    settings = settings_for(servers.url(), valkey_url, tmp_path)
    settings = dataclasses.replace(
        settings, db=dataclasses.replace(settings.db, POOL_MIN=4, POOL_MAX=8, CONNECT_TIMEOUT=WAIT)
    )
    service = LiveServer(settings, free_port())
    service.start()
    try:
        yield service
    finally:
        service.stop()


@dataclass
class Daemon:
    """One run's sender, as the daemon sends: envelope after envelope (a fresh `eventId` and
    message `uuid` each), each one posted again after a 503 until it is acknowledged."""

    run_id: str
    token: str
    thread_id: str
    acked: list[tuple[str, float, str]] = field(default_factory=list)
    """(message uuid, when, status) of each acknowledged envelope, in order."""
    answers: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    async def send(self, client: Any, stop: asyncio.Event) -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            message_uuid = str(uuid.uuid4())
            body = envelope(
                self.run_id,
                seq,
                event_id=f"evt-{seq}",
                thread_id=self.thread_id,
                messages=[{"type": "assistant", "uuid": message_uuid, "message": {"seq": seq}}],
            )
            while True:
                response = await post(client, body, self.token)
                status = response.json().get("status")
                self.answers[f"{response.status_code} {status}"] += 1
                if (response.status_code, status) == (503, "unavailable"):
                    assert response.headers.get("Retry-After")
                    await asyncio.sleep(RETRY_AFTER)
                    continue
                # `duplicate`: an attempt whose commit reached the standby before the primary died
                # (a 503'd one, or the request's own first statement, done again on the new one).
                if (response.status_code, status) in ((200, "applied"), (202, "duplicate")):
                    self.acked.append((message_uuid, time.monotonic(), status))
                    break
                self.unexpected.append(f"seq {seq}: {response.status_code} {response.text}")
                return
            await asyncio.sleep(0.01)

    def acked_after(self, moment: float) -> int:
        return sum(1 for _, when, _ in self.acked if when > moment)


def _stored(url: str, run_id: str) -> Counter[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT message_uuid FROM run_message WHERE run_id = %s AND message_uuid IS NOT NULL",
            (run_id,),
        ).fetchall()
    return Counter(str(row[0]) for row in rows)


async def test_failover_to_a_synchronous_standby_loses_nothing_acknowledged(
    servers: PrimaryAndStandby, service: LiveServer
) -> None:
    headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=30) as client:
        daemons = []
        for i in range(RUNS):
            run_id, token = await start_run(client, thread_id=f"thread-{i}")
            daemons.append(Daemon(run_id, token, f"thread-{i}"))
        stop = asyncio.Event()
        senders = [asyncio.create_task(d.send(client, stop)) for d in daemons]
        try:
            await until(
                lambda: all(len(d.acked) >= 10 for d in daemons), "10 envelopes per run applied"
            )
            await asyncio.to_thread(servers.kill_primary)
            killed = time.monotonic()
            acked_before_kill = sum(len(d.acked) for d in daemons)
            await asyncio.sleep(GAP)
            await asyncio.to_thread(servers.promote)
            promoted = time.monotonic()
            await until(
                lambda: all(d.acked_after(promoted) >= 10 or d.unexpected for d in daemons),
                "10 envelopes per run applied on the new primary",
                seconds=RECOVERY_BOUND + 20,
            )
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*senders), timeout=30)

    answers = sum((d.answers for d in daemons), Counter[str]())
    assert [u for d in daemons for u in d.unexpected] == [], answers
    # Timed from the promotion: an answer that arrives just after the kill may be for a commit
    # made just before it (its request was in flight), which says nothing about the new primary.
    first_applied = min(when for d in daemons for _, when, _ in d.acked if when > promoted)
    recovery = first_applied - promoted
    print(  # the figure docs/operations.md "Failover" quotes (run with -s to see it)
        f"failover: {acked_before_kill} acked before the kill, first apply on the new primary "
        f"{first_applied - killed:.2f}s after the kill ({recovery:.2f}s after the promotion, "
        f"{promoted - killed:.2f}s gap); answers {dict(answers)}"
    )
    # At least one 503, not one per run: how many requests meet the gap is timing (one run in
    # 17 saw three 503s for four runs); what matters is that none got anything but these three.
    assert answers["503 unavailable"] >= 1, "the gap was answered 503"
    assert set(answers) <= {"200 applied", "202 duplicate", "503 unavailable"}, answers
    assert recovery <= RECOVERY_BOUND, f"first apply {recovery:.2f}s after the promotion"

    for daemon in daemons:  # on the new primary alone: what the old one had acknowledged is here
        stored = _stored(servers.standby.url(), daemon.run_id)
        acked = [message_uuid for message_uuid, _, _ in daemon.acked]
        assert [u for u in acked if u not in stored] == [], "acknowledged, then lost"
        assert [u for u, n in stored.items() if n > 1] == [], "stored twice"
        assert sorted(stored) == sorted(acked), "stored without an acknowledgement"

    # The dashboard's live view reads through the same multi-host URL, from whichever answers.
    assert await asyncio.to_thread(live.present_ids, servers.url(), [str(uuid.uuid4())]) == set()
