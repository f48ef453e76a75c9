"""The HTTP edge (CONTRACT §3 "Edge limits"), tried as a stranger on the network would, against
`terragon serve` in a child process (its real protocol on a real socket; its memory read from
/proc): no credential costs more than its headers, no connection outlives its time bounds, the
process refuses connections over its cap rather than queueing them, and one `Host` is the rule.

The limits are made small through the environment (1 s timeouts) so that each case takes seconds.
Before this, every bound below failed: the token and the signature waited for the body (or read
all of it), nothing timed out headers or a stalled body, a fresh connection was held forever, there
was no cap, and two `Host` headers were served. What must keep working passed before too (a slow
body that keeps coming; a client that sends its whole body before it reads, which an early answer
must not reset), and the internal routes already
answered 401 from the headers (Litestar runs the guard before a handler's body is read): that
test proves it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import psycopg.conninfo
import pytest
from prometheus_client.parser import text_string_to_metric_families

from terragon_core import MetricName, prometheus_name
from tests.fixtures.net import free_port
from tests.fixtures.processes import OutputLines
from tests.fixtures.runs import START_PATH, start_body, thread_body
from tests.fixtures.settings import good_secrets
from tests.fixtures.waiting import wait_until
from tests.ingest.cli.test_cli_up import TERRAGON, _status

TIMEOUT = 1.0
"""Header, body and keep-alive timeouts of the server under test (seconds)."""
SLACK = 2.5
"""How late past a timeout a close may be seen (a loaded 2-core machine, a 1 s timer)."""
MiB = 1024 * 1024
WEBHOOK_CAP = 64 * 1024
UPLOADERS = 100


class Served:
    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, log: OutputLines, internal_token: str
    ) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        self.internal_token = internal_token
        self.metrics_headers: dict[str, str] = {}

    def edge_rejected(self, reason: str) -> float:
        """`preview_edge_rejected_total{reason=...}` from `/metrics`."""
        response = httpx.get(f"{self.base}/metrics", headers=self.metrics_headers, timeout=10)
        assert response.status_code == 200, response.text
        name = f"{prometheus_name(MetricName.EDGE_REJECTED)}_total"
        return sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == name and sample.labels.get("reason") == reason
        )

    def start_run(self, thread_id: str) -> str:
        """A thread and a run through the internal API; the run's daemon token."""
        auth = {"Authorization": f"Bearer {self.internal_token}"}
        with httpx.Client(base_url=self.base, headers=auth, timeout=10) as client:
            response = client.post("/api/internal/threads", json=thread_body(thread_id))
            assert response.status_code == 201, response.text
            response = client.post(START_PATH, json=start_body(thread_id))
            assert response.status_code == 200, response.text
            return response.json()["daemonMessage"]["token"]

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS for the server")

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


@pytest.fixture(name="database", scope="module")
def fx_database(pg_admin_url: str, template_database: str) -> Iterator[str]:
    name = f"edge_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')  # type: ignore[arg-type]
    info = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
    info["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@contextlib.contextmanager
def _serve(database: str, valkey_url: str, data_dir: Path, **limits: str) -> Iterator[Served]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAGON_", "PROMETHEUS_"))}
    env |= {
        "DATABASE_URL": database,
        "VALKEY_URL": valkey_url,
        "TERRAGON_DATA_DIR": str(data_dir),
        "TERRAGON_BACKGROUND_JOBS": "false",
        "TERRAGON_DB_POOL_MAX": "4",
        **limits,
    }
    secrets = good_secrets()
    env |= secrets
    proc = subprocess.Popen(
        [TERRAGON, "--log-format", "json", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    log = OutputLines(proc)
    try:
        try:
            wait_until(lambda: _status(f"http://127.0.0.1:{port}/readyz") == 200, 60, "readyz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log.text()[-3000:]}") from None
        served = Served(proc, port, log, secrets["TERRAGON_INTERNAL_TOKEN"])
        if metrics_token := secrets.get("TERRAGON_METRICS_TOKEN"):
            served.metrics_headers = {"Authorization": f"Bearer {metrics_token}"}
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


@pytest.fixture(name="edge", scope="module")
def fx_edge(
    database: str, valkey_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    seconds = str(TIMEOUT)
    with _serve(
        database,
        valkey_server_url,
        tmp_path_factory.mktemp("edge"),
        TERRAGON_HEADER_TIMEOUT_SECONDS=seconds,
        TERRAGON_BODY_TIMEOUT_SECONDS=seconds,
        TERRAGON_KEEP_ALIVE_SECONDS=seconds,
        TERRAGON_WEBHOOK_MAX_BODY_BYTES=str(WEBHOOK_CAP),
        TERRAGON_MAX_CONNECTIONS="500",
    ) as served:
        yield served


def _head(
    path: str, headers: dict[str, str] | list[tuple[str, str]], method: str = "POST"
) -> bytes:
    pairs = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in pairs), "", ""]
    return "\r\n".join(lines).encode()


def _answer(sock: socket.socket, within: float) -> tuple[int | None, bytes, float]:
    """(status or None if closed without one, what was read, seconds taken) within `within`."""
    started = time.monotonic()
    deadline = started + within
    got = b""
    while b"\r\n\r\n" not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no answer within {within}s (read {got[:200]!r})")
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None, got, time.monotonic() - started
        got += chunk
    return int(got.split(b" ", 2)[1]), got, time.monotonic() - started


def _closed_within(
    sock: socket.socket, within: float, *, trickle: bytes = b"", every: float = 0.2
) -> float:
    """Seconds until the server closed `sock` (fails after `within`). With `trickle`, one byte of
    it is sent every `every` seconds meanwhile, as a slowloris client does."""
    started = time.monotonic()
    deadline = started + within
    trickled = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the server held the connection over {within}s")
        ready, _, _ = select.select([sock], [], [], min(left, every))
        if ready:
            try:
                if not sock.recv(65536):
                    return time.monotonic() - started
            except ConnectionResetError:
                return time.monotonic() - started
        elif trickled < len(trickle):
            try:
                sock.send(trickle[trickled : trickled + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            trickled += 1


# -- credentials from the headers alone ---------------------------------------------------------


@pytest.mark.parametrize("token", [None, "tdt_unknown"])
def test_daemon_event_answers_401_from_the_headers_alone(edge: Served, token: str | None) -> None:
    """Only the headers are sent (a 4 MiB body announced): the answer comes without the body."""
    headers = {"Host": "x", "Content-Type": "application/json", "Content-Length": str(4 * MiB)}
    if token:
        headers["X-Daemon-Token"] = token
    with edge.connect() as sock:
        sock.sendall(_head("/api/daemon-event", headers))
        status, raw, _ = _answer(sock, TIMEOUT * 0.8)  # before any body timeout could answer
    assert status == 401, raw
    assert b'"unauthorized"' in raw


@pytest.mark.parametrize("connection", ["close", "keep-alive"])
def test_a_client_that_sends_its_whole_body_still_reads_the_401(
    edge: Served, connection: str
) -> None:
    """A daemon sends the whole body before reading (urllib asks `Connection: close`): the early
    401 must not turn into a reset under it. The service half-closes and drops the rest of the
    body, then closes."""
    body = b"x" * (4 * MiB)
    headers = {
        "Host": "x",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": connection,
        "X-Daemon-Token": "tdt_revoked_or_unknown",
    }
    with edge.connect() as sock:
        sock.sendall(_head("/api/daemon-event", headers))
        sock.sendall(body)  # no reset while the body goes out
        status, raw, _ = _answer(sock, 10)
        assert status == 401, raw
        if connection == "close":
            _closed_within(sock, 5)


def test_a_body_trickled_after_the_401_is_not_waited_for(edge: Served) -> None:
    """After its 401, an endless chunked body that keeps making progress is dropped for at most
    three body timeouts, then the connection is closed."""
    headers = {"Host": "x", "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    with edge.connect() as sock:
        sock.sendall(_head("/api/daemon-event", headers))
        status, raw, _ = _answer(sock, TIMEOUT * 0.8)
        assert status == 401, raw
        chunks = b"1\r\nx\r\n" * 200  # a body byte every 0.3 s: progress, never an end
        took = _closed_within(sock, 3 * TIMEOUT + SLACK, trickle=chunks, every=0.05)
    assert took > 2 * TIMEOUT  # progress kept it open past the body timeout, not forever


def test_internal_routes_answer_401_from_the_headers_alone(edge: Served) -> None:
    """Litestar's guard runs before the handler's body is read: no Authorization, no body read."""
    headers = {"Host": "x", "Content-Type": "application/json", "Content-Length": str(MiB)}
    for path in ("/api/internal/threads", "/api/internal/runs/start", "/api/internal/flags/x"):
        with edge.connect() as sock:
            method = "PUT" if "flags" in path else "POST"
            sock.sendall(_head(path, headers, method))
            status, raw, _ = _answer(sock, TIMEOUT * 0.8)
        assert status == 401, (path, raw)


def test_webhook_over_the_cap_is_413_before_the_signature(edge: Served) -> None:
    """No signature at all: a 413 shows the cap was applied before the signature was looked at."""
    announced = {"Host": "x", "Content-Type": "application/json", "X-GitHub-Event": "member"}
    with edge.connect() as sock:  # a larger Content-Length: 413 before any of the body
        sock.sendall(_head("/api/webhooks/github", announced | {"Content-Length": str(2 * MiB)}))
        status, raw, _ = _answer(sock, TIMEOUT * 0.8)
    assert status == 413, raw
    assert b"too_large" in raw
    with edge.connect() as sock:  # a chunked body that grows past the cap: 413 at the cap
        sock.sendall(_head("/api/webhooks/github", announced | {"Transfer-Encoding": "chunked"}))
        chunk = b"x" * 16384
        for _ in range(WEBHOOK_CAP // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, raw, _ = _answer(sock, 5)
    assert status == 413, raw
    assert edge.log.count("github_webhook_signature_rejected") == 0
    assert edge.edge_rejected("too_large") == 2
    with edge.connect() as sock:  # under the cap, unsigned: the signature decides (401)
        body = b"{}"
        sock.sendall(_head("/api/webhooks/github", announced | {"Content-Length": "2"}) + body)
        status, raw, _ = _answer(sock, 5)
    assert status == 401, raw


def test_unauthenticated_uploads_cost_only_their_headers(edge: Served) -> None:
    """Two rounds of 100 connections each uploading 4 MiB at once without a valid token (800 MiB
    in all): each is answered 401, and the server's RSS stays within a bound far below what it
    was sent (before: +46 MiB, each body read whole before the token was looked at)."""
    body = b"x" * (4 * MiB)
    baseline = edge.rss_kib()

    def upload(i: int) -> int | None:
        headers = {
            "Host": "x",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        if i % 2:
            headers["X-Daemon-Token"] = f"tdt_stranger_{i}"
        with edge.connect() as sock:
            sock.sendall(_head("/api/daemon-event", headers))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(body)  # (closed on us: still no memory held)
            status, _, _ = _answer(sock, 30)
            return status

    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:  # every 10 ms while the uploads are in flight: the peak
        while not done.wait(0.01):
            samples.append(edge.rss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(UPLOADERS) as pool:
            for _ in range(2):
                statuses = list(pool.map(upload, range(UPLOADERS)))
                assert statuses == [401] * UPLOADERS, statuses
    finally:
        done.set()
        sampler.join(5)
    grown_mib = (max(samples) - baseline) / 1024
    assert len(samples) > 10
    assert grown_mib < 32, f"RSS grew {grown_mib:.0f} MiB for 800 MiB of unauthenticated uploads"
    assert _status(f"{edge.base}/healthz") == 200


# -- time bounds --------------------------------------------------------------------------------


def test_slowloris_headers_are_cut_off(edge: Served) -> None:
    """Partial headers trickled a byte at a time: 408 and closed once the header timeout passes,
    however steadily the bytes come."""
    trickle = b"X-Slow: " + b"a" * 200

    def slow(_: int) -> tuple[int | None, float]:
        with edge.connect() as sock:
            sock.sendall(b"POST /api/daemon-event HTTP/1.1\r\nHost: x\r\n")
            took = _closed_within(sock, TIMEOUT + SLACK, trickle=trickle)
            return None, took

    with ThreadPoolExecutor(20) as pool:
        took = [t for _, t in pool.map(slow, range(20))]
    assert max(took) < TIMEOUT + SLACK
    with edge.connect() as sock:  # and the answer, where it can be sent, is a 408
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        status, raw, _ = _answer(sock, TIMEOUT + SLACK)
    assert status == 408, raw
    assert edge.edge_rejected("header_timeout") >= 21


def test_a_stalled_body_is_408(edge: Served) -> None:
    """A body that stops making progress: 408 and closed (the webhook reads its body)."""
    headers = {"Host": "x", "Content-Type": "application/json", "Content-Length": "1000"}
    with edge.connect() as sock:
        sock.sendall(_head("/api/webhooks/github", headers) + b'{"zen": "')
        status, raw, took = _answer(sock, TIMEOUT + SLACK)
        assert status == 408, raw
        assert took >= TIMEOUT * 0.9
        _closed_within(sock, SLACK)
    assert edge.edge_rejected("body_timeout") >= 1


def test_a_daemons_stalled_body_is_408_and_its_next_envelope_is_served(edge: Served) -> None:
    """With a live token the body is read, under the same progress bound; the app that was
    reading sees a disconnect (no crash logged), and the daemon's retry is served."""
    token = edge.start_run("thread-stall")
    headers = {
        "Host": "x",
        "Content-Type": "application/json",
        "Content-Length": "1000",
        "X-Daemon-Token": token,
    }
    with edge.connect() as sock:
        sock.sendall(_head("/api/daemon-event", headers) + b'{"threadId": "thread-stall"')
        status, raw, took = _answer(sock, TIMEOUT + SLACK)
        assert status == 408, raw
        assert took >= TIMEOUT * 0.9
    body = {"threadId": "thread-stall", "threadChatId": "chat-1", "messages": []}
    response = httpx.post(
        f"{edge.base}/api/daemon-event", json=body, headers={"X-Daemon-Token": token}, timeout=10
    )
    assert response.status_code in (200, 202), response.text
    assert edge.log.count("request_crashed") == 0


def test_a_slow_body_that_keeps_coming_is_served(edge: Served) -> None:
    """The body bound is on progress, not on the whole: 3 timeouts' worth of a trickled body."""
    body = b'{"zen": "' + b"z" * 11 + b'"}'
    headers = {"Host": "x", "Content-Type": "application/json", "Content-Length": str(len(body))}
    with edge.connect() as sock:
        sock.sendall(_head("/api/webhooks/github", headers))
        started = time.monotonic()
        for i in range(len(body)):  # a byte every 0.15 s: 3 s in all
            ready, _, _ = select.select([sock], [], [], 0.15)
            assert not ready, "answered before the body was complete"
            sock.send(body[i : i + 1])
        status, raw, _ = _answer(sock, 5)
    assert time.monotonic() - started > 2 * TIMEOUT
    assert status == 401, raw  # the signature decides: the body was read whole


def test_idle_connections_are_closed(edge: Served) -> None:
    """A connection that never sends, and a keep-alive connection after its answer."""
    with edge.connect() as sock:
        assert _closed_within(sock, TIMEOUT + SLACK) >= TIMEOUT * 0.9
    with edge.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, raw, _ = _answer(sock, 5)
        assert status == 200, raw
        assert _closed_within(sock, TIMEOUT + SLACK) >= TIMEOUT * 0.5


def test_two_host_headers_are_400_and_counted(edge: Served) -> None:
    before = edge.edge_rejected("duplicate_host")
    headers = [("Host", "127.0.0.1"), ("Host", "evil.example")]
    with edge.connect() as sock:
        sock.sendall(_head("/healthz", headers, "GET"))
        status, raw, _ = _answer(sock, 5)
    assert status == 400, raw
    assert b"duplicate_host" in raw
    assert edge.edge_rejected("duplicate_host") == before + 1


# -- the connection cap -------------------------------------------------------------------------


def test_connections_over_the_cap_are_refused_not_queued(
    database: str, valkey_server_url: str, tmp_path: Path
) -> None:
    cap = 20
    limits = {
        "TERRAGON_MAX_CONNECTIONS": str(cap),
        "TERRAGON_HEADER_TIMEOUT_SECONDS": "60",
        "TERRAGON_KEEP_ALIVE_SECONDS": "60",
    }
    with _serve(database, valkey_server_url, tmp_path, **limits) as edge:
        _refused_over_the_cap(edge, cap)


def _refused_over_the_cap(edge: Served, cap: int) -> None:
    flood: list[socket.socket] = []
    try:
        for _ in range(cap):  # each holds its place with partial headers
            sock = edge.connect()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            flood.append(sock)
        for _ in range(3):  # over the cap: refused at once, never answered later
            with edge.connect() as extra:
                try:
                    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    continue
                status, raw, took = _answer(extra, 5)
                assert status in (503, None), raw
                assert took < 2
    finally:
        for sock in flood:
            sock.close()
    # the flood gone, the service answers again
    wait_until(lambda: _status(f"{edge.base}/healthz") == 200, 10, "healthz after the flood")
