"""In-process alert hooks: the two Prometheus rules evaluated from Postgres, POSTed once per
breach window, with the dimensions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from terragon_core import ACCESS_DENIED_ALERT, ANONYMOUS_USER, QUARANTINE_ALERT
from terragon_ingest.archive import repository
from terragon_ingest.archive.tasks import run_rollup
from terragon_ingest.telemetry import repository as alert_repository
from terragon_ingest.telemetry.alerts import evaluate_alerts, find_breaches
from tests.dashboard.seed import Row, connect, insert_access_denied, insert_quarantine
from tests.fixtures.settings import settings_for


class Receiver:
    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.status == 200:
                    receiver.posts.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture(name="receiver")
def fx_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _storm(url: str, end: datetime) -> None:
    """16 minutes before `end`: acme/hot at 10/min, acme/cool at 2/min, 25 denials/min."""
    rows, denials = [], []
    for minute in range(1, 17):
        base = end - timedelta(minutes=minute)
        rows += [Row(at=base + timedelta(seconds=5 * i), repo="acme/hot") for i in range(10)]
        rows += [Row(at=base + timedelta(seconds=7 * i), repo="acme/cool") for i in range(2)]
        denials += [base + timedelta(seconds=2 * i) for i in range(25)]
    with connect(url) as conn:
        insert_quarantine(conn, rows)
        insert_access_denied(conn, denials)


def test_each_breach_window_notifies_once_with_its_dimensions(
    database_url: str, receiver: Receiver
) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    _storm(database_url, end)
    with repository.connect(database_url) as conn:
        notified = evaluate_alerts(conn, receiver.url, end)
        assert {(b.rule, json.dumps(b.dimensions)) for b in notified} == {
            (QUARANTINE_ALERT, '{"repo": "acme/hot"}'),
            (ACCESS_DENIED_ALERT, "{}"),
        }
        assert evaluate_alerts(conn, receiver.url, end) == []  # same window: no second POST
        assert evaluate_alerts(conn, receiver.url, end + timedelta(hours=1)) == []  # cleared
        assert alert_repository.fetch_alert_states(conn) == set()
        assert len(evaluate_alerts(conn, receiver.url, end)) == 2  # a new window notifies again
    hot = next(p for p in receiver.posts if p["alert"] == QUARANTINE_ALERT)
    assert hot["dimensions"] == {"repo": "acme/hot"}
    assert hot["ratePerMinute"] == 10 and hot["thresholdPerMinute"] == 5
    assert hot["metric"] == "preview_quarantine_total" and hot["status"] == "firing"
    assert len(receiver.posts) == 4


def test_a_failed_post_is_retried_at_the_next_evaluation(
    database_url: str, receiver: Receiver
) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    _storm(database_url, end)
    receiver.status = 500
    with repository.connect(database_url) as conn:
        assert evaluate_alerts(conn, receiver.url, end) == []
        assert alert_repository.fetch_alert_states(conn) == set()
        receiver.status = 200
        assert len(evaluate_alerts(conn, receiver.url, end)) == 2
    assert len(receiver.posts) == 2


def test_the_rollup_job_evaluates_the_hooks(
    database_url: str, valkey_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    settings = settings_for(database_url, valkey_url, tmp_path, ALERT_WEBHOOK_URL=receiver.url)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    _storm(database_url, now - timedelta(minutes=1))
    result = run_rollup(settings)
    assert result.rows["quarantine"] > 0
    assert {p["alert"] for p in receiver.posts} == {QUARANTINE_ALERT, ACCESS_DENIED_ALERT}
    assert (tmp_path / "archive" / "quarantine_daily").is_dir()


def test_a_strangers_denials_never_open_the_access_denied_window(database_url: str) -> None:
    """Denials without a valid credential are `user_id = 'anonymous'` (CONTRACT §3): like the
    Prometheus rule, the hook leaves them out, so a cookie-less flood cannot page."""
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    times = [end - timedelta(minutes=m, seconds=s) for m in range(1, 17) for s in range(0, 60, 2)]
    with connect(database_url) as conn:
        insert_access_denied(conn, times)
        conn.execute("UPDATE preview_event SET user_id = %s", [ANONYMOUS_USER])
    with repository.connect(database_url) as conn:
        assert find_breaches(conn, end) == []
        conn.execute("UPDATE preview_event SET user_id = 'user-1'")
        assert [b.rule for b in find_breaches(conn, end)] == [ACCESS_DENIED_ALERT]
