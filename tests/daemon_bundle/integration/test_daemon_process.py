"""The daemon as a real process: one-shot and socket modes, SIGTERM, SIGKILL + restart, and the
built bundle on Python 3.10. Waits are on log lines, replies and exit codes, with deadlines."""

from __future__ import annotations

import json
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from terragon_core import decode_envelope, given, v2_fields_valid
from terragon_daemon.server import request
from terragon_daemon.spool import SealedBatch
from terragon_daemon_bundle.builder import build
from tests.daemon_bundle.support import (
    FAST_FLAGS,
    WAIT,
    DaemonProcess,
    FakeIngest,
    Reply,
    agent_command,
    head_sha,
    python310,
    start_message,
)


@pytest.fixture(name="processes")
def fx_processes() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for process in started:
        process.close()


def spawn(
    processes: list[DaemonProcess],
    *args: str,
    pyz: Path | None = None,
    python: str = sys.executable,
) -> DaemonProcess:
    process = DaemonProcess([*FAST_FLAGS, *args], pyz=pyz, python=python)
    processes.append(process)
    return process


def test_one_shot_from_file_and_stdin(
    processes: list[DaemonProcess], ingest: FakeIngest, repo: Path, tmp_path: Path
) -> None:
    start = tmp_path / "start.json"
    start.write_text(json.dumps(start_message(ingest.url, repo, ["--messages", "3"])))
    daemon = spawn(processes, "--spool-dir", str(tmp_path / "spool-a"), "--start-json", str(start))
    assert daemon.wait() == 0, daemon.log()
    assert "event=batch_delivered" in daemon.log()
    assert "daemon-token-1" not in daemon.log()  # tokens never reach the logs
    first_run = len(ingest.received)
    assert ingest.received[-1].message_types[-1] == "result"

    message = start_message(ingest.url, repo, ["--messages", "1"], runId="run-2")
    daemon = spawn(processes, "--spool-dir", str(tmp_path / "spool-b"), "--start-json", "-")
    assert daemon.proc.stdin is not None
    daemon.proc.stdin.write(json.dumps(message))
    daemon.proc.stdin.close()
    assert daemon.wait() == 0, daemon.log()
    assert {r.json["runId"] for r in ingest.received[first_run:]} == {"run-2"}


def test_one_shot_exit_code_reports_dead_letters(
    processes: list[DaemonProcess], ingest: FakeIngest, repo: Path, tmp_path: Path
) -> None:
    ingest.responder = lambda _r: Reply(401, {"status": "unauthorized"})
    start = tmp_path / "start.json"
    start.write_text(json.dumps(start_message(ingest.url, repo, ["--messages", "1"])))
    daemon = spawn(processes, "--spool-dir", str(tmp_path / "spool"), "--start-json", str(start))
    assert daemon.wait() == 1
    assert "event=batch_dead_lettered" in daemon.log()


def test_restart_after_sigkill_resends_sealed_batches_unchanged(
    processes: list[DaemonProcess], ingest: FakeIngest, repo: Path, tmp_path: Path
) -> None:
    ingest.responder = lambda _r: Reply(503, {"status": "unavailable"}, {"Retry-After": "0"})
    spool = tmp_path / "spool"
    start = tmp_path / "start.json"
    start.write_text(json.dumps(start_message(ingest.url, repo, ["--messages", "6"])))
    first = spawn(
        processes,
        "--spool-dir",
        str(spool),
        "--max-batch-messages",
        "2",
        "--start-json",
        str(start),
    )
    first.wait_log(r"event=batch_sealed .*terminal=true")
    ingest.wait_for(lambda received: len(received) >= 3)  # seq 1 is being retried
    first.proc.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL

    batch_files = sorted((spool / "runs" / "run-1" / "batches").glob("*.json"))
    spooled = [SealedBatch.from_file(p.read_bytes()) for p in batch_files]
    assert [b.seq for b in spooled] == list(range(1, len(spooled) + 1))
    assert spooled[-1].terminal is True
    seen_before = {r.event_id for r in ingest.received}
    assert seen_before == {spooled[0].event_id}  # only seq 1 ever left the first process

    ingest.responder = lambda _r: Reply(200, {"status": "applied"})
    before = len(ingest.received)
    second = spawn(processes, "--spool-dir", str(spool), "--drain")
    assert second.wait() == 0, second.log()
    resent = ingest.received[before:]
    assert [(r.seq, r.event_id, r.body) for r in resent] == [
        (b.seq, b.event_id, b.body) for b in spooled
    ]
    assert "event=batch_sealed" not in second.log()  # nothing re-sealed
    assert given(decode_envelope(resent[-1].body).end_sha) == head_sha(repo)


def test_socket_mode_control_and_sigterm_flushes(
    processes: list[DaemonProcess], ingest: FakeIngest, repo: Path, short_dir: Path
) -> None:
    socket_path = short_dir / "d.sock"
    daemon = spawn(processes, "--socket", str(socket_path), "--spool-dir", str(short_dir / "spool"))
    daemon.wait_log("event=control_socket_listening")
    assert request(socket_path, {"type": "ping"})["type"] == "pong"

    first = start_message(ingest.url, repo, ["--messages", "1"], runId="run-a")
    assert request(socket_path, first) == {"ok": True, "runKey": "run-a", "payloadVersion": 2}
    daemon.wait_log(r"event=run_delivery_complete run_key=run-a")

    stopped = start_message(ingest.url, repo, ["--messages", "2", "--hang"], runId="run-b")
    assert request(socket_path, stopped)["ok"] is True
    ingest.wait_for(lambda received: any(r.json["runId"] == "run-b" for r in received))
    assert request(socket_path, {"type": "stop", "runId": "run-b"})["stopped"] == ["run-b"]
    daemon.wait_log(r"event=run_delivery_complete run_key=run-b")

    hanging = start_message(ingest.url, repo, ["--messages", "2", "--hang"], runId="run-c")
    assert request(socket_path, hanging)["ok"] is True
    ingest.wait_for(lambda received: any(r.json["runId"] == "run-c" for r in received))
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.log()
    assert "drained=true" in daemon.log()
    assert not socket_path.exists()

    by_run: dict[str, list[dict[str, object]]] = {}
    for r in ingest.received:
        by_run.setdefault(r.json["runId"], []).extend(r.json["messages"])
    assert by_run["run-a"][-1]["type"] == "result"
    assert (by_run["run-b"][-1]["type"], by_run["run-b"][-1]["reason"]) == ("custom-stop", "stop")
    assert by_run["run-c"][-1]["type"] == "custom-stop"
    assert by_run["run-c"][-1]["reason"] == "daemon_shutdown"


def test_socket_rejects_garbage_and_second_daemon(
    processes: list[DaemonProcess], short_dir: Path
) -> None:
    socket_path = short_dir / "d.sock"
    daemon = spawn(processes, "--socket", str(socket_path), "--spool-dir", str(short_dir / "spool"))
    daemon.wait_log("event=control_socket_listening")
    reply = request(socket_path, {"type": "start", "threadId": "t"})
    assert reply["ok"] is False and "ingestUrl" in str(reply["error"])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(WAIT)
        conn.connect(str(socket_path))
        conn.sendall(b'not json\n{"type": "ping"}\n')
        with conn.makefile("rb") as lines:
            replies = lines.readline(), lines.readline()
    assert json.loads(replies[0])["ok"] is False
    assert json.loads(replies[1])["type"] == "pong"
    same_spool = spawn(
        processes, "--socket", str(short_dir / "e.sock"), "--spool-dir", str(short_dir / "spool")
    )
    assert same_spool.wait() == 3 and "daemon_spool_locked" in same_spool.log()
    same_socket = spawn(
        processes, "--socket", str(socket_path), "--spool-dir", str(short_dir / "other")
    )
    assert same_socket.wait() == 3 and "daemon_socket_in_use" in same_socket.log()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_sigterm_while_ingest_is_down_keeps_the_spool(
    processes: list[DaemonProcess], ingest: FakeIngest, repo: Path, tmp_path: Path
) -> None:
    ingest.responder = lambda _r: Reply(503, {"status": "unavailable"})
    start = tmp_path / "start.json"
    start.write_text(json.dumps(start_message(ingest.url, repo, ["--messages", "2"])))
    spool = tmp_path / "spool"
    daemon = spawn(
        processes,
        "--spool-dir",
        str(spool),
        "--shutdown-timeout",
        "0.2",
        "--start-json",
        str(start),
    )
    daemon.wait_log(r"event=batch_sealed .*terminal=true")
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert "drained=false" in daemon.log()
    assert list((spool / "runs" / "run-1" / "batches").glob("*.json"))


@pytest.mark.parametrize("interpreter", ["current", "python3.10"])
def test_built_bundle_end_to_end(
    processes: list[DaemonProcess],
    ingest: FakeIngest,
    repo: Path,
    tmp_path: Path,
    interpreter: str,
) -> None:
    python = sys.executable if interpreter == "current" else python310()
    if python is None:
        pytest.skip("no Python 3.10 interpreter on this machine (set TERRAGON_TEST_PYTHON310)")
    build(dist_dir=tmp_path / "dist")
    start = tmp_path / "start.json"
    message = start_message(
        ingest.url, repo, agentCommand=agent_command("--messages", "4", python=python)
    )
    start.write_text(json.dumps(message))
    daemon = spawn(
        processes,
        "--spool-dir", str(tmp_path / "spool"), "--start-json", str(start),
        pyz=tmp_path / "dist" / "terragon-daemon.pyz", python=python,
    )  # fmt: skip
    assert daemon.wait() == 0, daemon.log()
    envelopes = [decode_envelope(r.body) for r in ingest.received]
    assert all(v2_fields_valid(e) for e in envelopes)
    assert [e.seq for e in envelopes] == list(range(1, len(envelopes) + 1))
    assert given(envelopes[-1].end_sha) == head_sha(repo)
