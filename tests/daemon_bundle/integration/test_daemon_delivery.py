"""The daemon in-process against a real HTTP server: sealing, ordering, retries, dead letters,
legacy v1, stop/kill, resume. Every wait is on an event or a condition with a deadline."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from terragon_core import decode_envelope, given, is_terminal, v2_fields_valid
from terragon_daemon.protocol import parse_start
from terragon_daemon.settings import DaemonSettings
from terragon_daemon.spool import Spool
from terragon_daemon.supervisor import Daemon
from tests.daemon_bundle.support import (
    DROP,
    WAIT,
    FakeIngest,
    Received,
    Reply,
    agent_command,
    head_sha,
    start_message,
)

DaemonFactory = Callable[..., Daemon]


@pytest.fixture(name="make_daemon")
def fx_make_daemon(spool_dir: Path) -> Iterator[DaemonFactory]:
    daemons: list[Daemon] = []

    def make(**overrides: Any) -> Daemon:
        settings: dict[str, Any] = {
            "spool_dir": spool_dir,
            "flush_interval": 0.05,
            "retry_base_delay": 0.01,
            "retry_max_delay": 0.05,
            "stop_grace": 2.0,
            "shutdown_timeout": 5.0,
        }
        settings.update(overrides)
        daemon = Daemon(DaemonSettings(**settings))
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.shutdown(timeout=5.0)


def run_to_completion(daemon: Daemon, message: dict[str, Any]) -> None:
    reply = daemon.handle(message)
    assert reply["ok"], reply
    assert daemon.wait_idle(WAIT), daemon.ping()


def seqs(requests: list[Received]) -> list[int | None]:
    return [r.seq for r in requests]


def test_v2_run_is_contract_valid_ordered_and_ends_at_head(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    daemon = make_daemon(max_batch_messages=3)
    run_to_completion(
        daemon, start_message(ingest.url, repo, ["--messages", "7", "--commits", "2"])
    )
    requests = ingest.received
    envelopes = [decode_envelope(r.body) for r in requests]  # the contract test
    assert all(v2_fields_valid(e) and e.run_id == "run-1" for e in envelopes)
    assert [e.seq for e in envelopes] == list(range(1, len(envelopes) + 1))
    assert len({e.event_id for e in envelopes}) == len(envelopes) >= 3
    assert [is_terminal(e.messages) for e in envelopes] == [False] * (len(envelopes) - 1) + [True]
    assert given(envelopes[-1].end_sha) == head_sha(repo)
    assert all(e.end_sha is None for e in envelopes[:-1])
    messages = [m for e in envelopes for m in e.messages]
    assert messages[0]["type"] == "system" and messages[-1]["type"] == "result"
    assert len(messages) == 9 and len({m["uuid"] for m in messages}) == 9
    assert all(len(e.messages) <= 3 for e in envelopes)
    assert {r.headers["x-daemon-token"] for r in requests} == {"daemon-token-1"}
    traces = {r.headers["traceparent"].split("-")[1] for r in requests}
    assert len(traces) == 1  # one trace per run, a span per attempt
    assert (envelopes[0].thread_id, envelopes[0].thread_chat_id) == ("thread-1", "chat-1")
    [run_dir] = (daemon.spool.runs_dir).iterdir()
    assert list((run_dir / "batches").iterdir()) == []
    assert json.loads((run_dir / "state.json").read_text())["complete"] is True


def test_start_traceparent_is_propagated(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    message = start_message(
        ingest.url, repo, ["--messages", "1"], traceparent=f"00-{trace}-00f067aa0ba902b7-01"
    )
    run_to_completion(make_daemon(), message)
    assert {r.headers["traceparent"].split("-")[1] for r in ingest.received} == {trace}


@pytest.mark.parametrize(
    "failure",
    [
        Reply(500, {"status": "error"}),
        Reply(502, None),
        Reply(503, {"status": "unavailable"}, {"Retry-After": "0"}),
        Reply(429, {"status": "rate_limited"}),
        Reply(408, None),
        DROP,
    ],
    ids=["500", "502", "503", "429", "408", "dropped"],
)
def test_retryable_failures_resend_the_same_sealed_batch(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path, failure: Reply
) -> None:
    ingest.respond(failure, failure, failure)
    run_to_completion(make_daemon(), start_message(ingest.url, repo, ["--messages", "2"]))
    first = ingest.received[:4]
    assert len({(r.seq, r.event_id, r.body) for r in first}) == 1  # same eventId, seq and bytes
    assert first[0].seq == 1
    assert seqs(ingest.received)[3:] == list(range(1, len(ingest.received) - 2))


def test_one_batch_in_flight_per_run(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    ingest.respond(Reply(503, None), DROP, Reply(500, None))
    daemon = make_daemon(max_batch_messages=1)
    run_to_completion(daemon, start_message(ingest.url, repo, ["--messages", "5"]))
    order = seqs(ingest.received)
    assert order[:4] == [1, 1, 1, 1]
    assert order[3:] == list(range(1, 8))  # init + 5 turns + result, strictly in order


def test_202_is_never_retried(make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path) -> None:
    ingest.responder = lambda _r: Reply(202, {"status": "quarantined", "reason": "mismatch"})
    daemon = make_daemon(max_batch_messages=2)
    run_to_completion(daemon, start_message(ingest.url, repo, ["--messages", "4"]))
    order = seqs(ingest.received)
    assert order == list(range(1, len(order) + 1))
    assert daemon.dead_lettered() == 0


def test_retry_after_is_honoured(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    ingest.respond(Reply(503, {"status": "unavailable"}, {"Retry-After": "0.4"}))
    run_to_completion(make_daemon(), start_message(ingest.url, repo, ["--messages", "1"]))
    first, second = ingest.received[:2]
    assert first.event_id == second.event_id
    assert second.at - first.at >= 0.4  # the backoff alone would be <= 0.05 s


@pytest.mark.parametrize(
    ("status", "body_status"),
    [(400, "invalid"), (401, "unauthorized"), (403, "forbidden"), (413, "too_large")],
)
def test_refused_batches_go_to_the_dead_letter_file(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path, status: int, body_status: str
) -> None:
    ingest.respond(Reply(status, {"status": body_status}))
    daemon = make_daemon(max_batch_messages=2)
    run_to_completion(daemon, start_message(ingest.url, repo, ["--messages", "3"]))
    order = seqs(ingest.received)
    assert order == list(range(1, len(order) + 1))  # seq 1 tried once, then the run went on
    [run_dir] = daemon.spool.runs_dir.iterdir()
    [record] = [
        json.loads(line) for line in (run_dir / "dead-letter.jsonl").read_text().splitlines()
    ]
    assert record["reason"] == f"http_{status}"
    assert (record["httpStatus"], record["responseStatus"]) == (status, body_status)
    assert record["batch"]["seq"] == 1
    assert record["batch"]["eventId"] == ingest.received[0].event_id
    assert record["batch"]["body"].encode() == ingest.received[0].body
    assert daemon.dead_lettered() == 1


def test_retries_exhausted_dead_letters(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    ingest.responder = lambda _r: Reply(503, {"status": "unavailable"})
    daemon = make_daemon(max_attempts=3, max_batch_messages=50, flush_interval=5.0)
    run_to_completion(daemon, start_message(ingest.url, repo, ["--messages", "1"]))
    assert seqs(ingest.received) == [1, 1, 1]
    [run_dir] = daemon.spool.runs_dir.iterdir()
    record = json.loads((run_dir / "dead-letter.jsonl").read_text())
    assert (record["reason"], record["attempts"]) == ("retries_exhausted", 3)


def test_agent_without_result_gets_a_custom_error_terminal(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    run_to_completion(
        make_daemon(),
        start_message(ingest.url, repo, ["--messages", "2", "--omit-result", "--exit-code", "3"]),
    )
    last = decode_envelope(ingest.received[-1].body)
    terminal = last.messages[-1]
    assert terminal["type"] == "custom-error"
    assert (terminal["reason"], terminal["exitCode"]) == ("agent_exited_without_result", 3)
    assert given(last.end_sha) == head_sha(repo)
    types = [m["type"] for r in ingest.received for m in r.json["messages"]]
    assert types.count("custom-error") == 1 and "result" not in types


def test_error_result_is_the_terminal_as_is(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    run_to_completion(
        make_daemon(), start_message(ingest.url, repo, ["--messages", "2", "--error-result"])
    )
    types = [m["type"] for r in ingest.received for m in r.json["messages"]]
    assert types[-1] == "result" and "custom-error" not in types
    assert ingest.received[-1].json["messages"][-1]["is_error"] is True


@pytest.mark.parametrize("how", ["no_run_id", "forced"])
def test_legacy_v1_protocol(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path, how: str
) -> None:
    if how == "forced":
        daemon, message = (
            make_daemon(payload_version=1),
            start_message(ingest.url, repo, ["--messages", "3"]),
        )
    else:
        daemon = make_daemon()
        message = start_message(
            ingest.url, repo, ["--messages", "3"], runId=..., payloadVersion=...
        )
    run_to_completion(daemon, message)
    for request in ingest.received:
        body = request.json
        assert set(body) == {"threadId", "threadChatId", "messages", "timezone", "payloadVersion"}
        envelope = decode_envelope(request.body)
        assert envelope.payload_version == 1 and envelope.thread_chat_id == "chat-1"
    assert ingest.received[-1].message_types[-1] == "result"


@pytest.mark.parametrize("kind", ["stop", "kill"])
def test_stop_and_kill_end_the_run_with_custom_stop(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path, kind: str
) -> None:
    daemon = make_daemon()
    assert daemon.handle(start_message(ingest.url, repo, ["--messages", "2", "--hang"]))["ok"]
    ingest.wait_for(lambda received: len(received) >= 1)  # the agent is up and talking
    assert daemon.ping()["runs"][0]["agentRunning"] is True
    assert daemon.handle({"type": kind, "runId": "run-1"}) == {"ok": True, "stopped": ["run-1"]}
    assert daemon.wait_idle(WAIT)
    last = decode_envelope(ingest.received[-1].body)
    terminal = last.messages[-1]
    assert (terminal["type"], terminal["reason"]) == ("custom-stop", kind)
    assert given(last.end_sha) == head_sha(repo)
    assert daemon.handle({"type": kind})["stopped"] == []  # nothing left to stop


def test_ping_duplicate_start_and_bad_messages(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    daemon = make_daemon()
    message = start_message(ingest.url, repo, ["--messages", "1"])
    assert daemon.handle(message)["runKey"] == "run-1"
    assert daemon.wait_idle(WAIT)
    count = len(ingest.received)
    assert daemon.handle(message) == {"ok": True, "runKey": "run-1", "duplicate": True}
    pong = daemon.handle({"type": "ping"})
    assert pong["type"] == "pong" and pong["runs"][0]["complete"] is True
    assert daemon.handle({"type": "start", "threadId": "t"})["ok"] is False
    assert daemon.handle({"type": "reboot"})["ok"] is False
    assert len(ingest.received) == count


def test_agent_that_cannot_start_still_ends_the_run(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    daemon = make_daemon()
    reply = daemon.handle(
        start_message(ingest.url, repo, agentCommand=[str(repo / "no-such-agent")])
    )
    assert reply["ok"] is False and "no-such-agent" in reply["error"]
    assert daemon.wait_idle(WAIT)
    [request] = ingest.received
    assert request.message_types == ["custom-error"]
    assert request.json["messages"][0]["reason"] == "agent_spawn_failed"


def test_resume_delivers_spooled_batches_with_original_ids(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path, spool_dir: Path
) -> None:
    # What a daemon that died mid-run leaves behind: two sealed, unsent batches, no terminal.
    spec = parse_start(start_message(ingest.url, repo))
    crashed = Spool(spool_dir).create_run("run-1", spec, "a" * 32)
    sealed = [
        crashed.seal([b'{"type":"assistant","uuid":"u%d"}' % i], terminal=False, end_sha=None)
        for i in (1, 2)
    ]
    daemon = make_daemon()
    assert daemon.resume() == ["run-1"]
    assert daemon.wait_idle(WAIT)
    requests = ingest.received
    assert [(r.seq, r.event_id, r.body) for r in requests[:2]] == [
        (b.seq, b.event_id, b.body) for b in sealed
    ]
    last = decode_envelope(requests[2].body)
    assert last.seq == 3 and last.messages[0]["reason"] == "daemon_restarted"
    assert given(last.end_sha) == head_sha(repo)
    assert len(requests) == 3


def test_a_straggler_holding_stdout_does_not_hold_the_run(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path, tmp_path: Path
) -> None:
    """Causal, not a stopwatch: the run completes while the straggler that holds the agent's
    stdout open is still alive (it sleeps far longer than `run_to_completion` waits)."""
    pidfile = tmp_path / "straggler.pid"
    agent = " ".join(shlex.quote(a) for a in agent_command("--messages", "1"))
    # The background sleep inherits the agent's stdout; only its pid goes to the file.
    script = f"{agent}; sleep 600 & echo $! > {shlex.quote(str(pidfile))}; exit 0"
    try:
        run_to_completion(
            make_daemon(), start_message(ingest.url, repo, agentCommand=["sh", "-c", script])
        )
        straggler = int(pidfile.read_text())
        assert _is_sleeping(straggler), "the straggler is gone: this run proved nothing"
        assert ingest.received[-1].message_types[-1] == "result"
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


def _is_sleeping(pid: int) -> bool:
    """`pid` is alive and still our `sleep` (not a recycled pid)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"sleep")
    except FileNotFoundError:
        return False


def test_unreadable_spool_run_is_skipped(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path, spool_dir: Path
) -> None:
    broken = spool_dir / "runs" / "broken"
    broken.mkdir(parents=True)
    (broken / "state.json").write_text("{not json")
    daemon = make_daemon()
    assert daemon.resume() == []
    run_to_completion(daemon, start_message(ingest.url, repo, ["--messages", "1"]))
    assert ingest.received[-1].message_types[-1] == "result"


def test_rate_limited_answers_never_exhaust_the_attempts(
    make_daemon: DaemonFactory, ingest: FakeIngest, repo: Path
) -> None:
    """A run over its budget is told "later" (429 + Retry-After) as often as it takes: the same
    sealed batch waits and is sent again, never dead-lettered for it."""
    limited = Reply(429, {"status": "rate_limited"}, {"Retry-After": "0"})
    ingest.respond(limited, limited, limited, limited)
    daemon = make_daemon(max_attempts=2, max_batch_messages=50, flush_interval=5.0)
    run_to_completion(daemon, start_message(ingest.url, repo, ["--messages", "1"]))
    first = ingest.received[:5]
    assert len({(r.seq, r.event_id, r.body) for r in first}) == 1
    assert daemon.dead_lettered() == 0
