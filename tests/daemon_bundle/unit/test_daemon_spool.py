"""Sealing fixes eventId and seq once; the spool survives a restart without re-sealing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from terragon_daemon.protocol import StartSpec
from terragon_daemon.spool import Spool, SpoolLockedError, run_key

SPEC = StartSpec(
    thread_id="thread-1",
    thread_chat_id="chat-1",
    token="secret-token",
    ingest_url="http://x",
    payload_version=2,
    run_id="run-1",
)


def test_seal_persists_batch_and_state(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    run = spool.create_run("run-1", SPEC, "t" * 32)
    first = run.seal([{"type": "assistant", "uuid": "u1"}], None)
    second = run.seal([{"type": "user", "uuid": "u2"}], None)
    assert (first.seq, second.seq) == (1, 2)
    assert first.event_id != second.event_id
    files = sorted(p.name for p in run.batches_dir.iterdir())
    assert files == ["0000000001.json", "0000000002.json"]
    assert json.loads(first.body)["eventId"] == first.event_id
    state = json.loads((run.directory / "state.json").read_text())
    assert state["lastSealedSeq"] == 2
    mode = stat.S_IMODE(os.stat(run.directory / "state.json").st_mode)
    assert mode == 0o600  # the state holds the run's token


def test_reload_keeps_event_ids_seq_and_bytes(tmp_path: Path) -> None:
    run = Spool(tmp_path).create_run("run-1", SPEC, "t" * 32)
    sealed = [run.seal([{"type": "assistant", "uuid": f"u{i}"}], None) for i in range(3)]
    run.mark_delivered(sealed[0])
    reloaded = Spool(tmp_path).load_run("run-1")
    assert [(b.seq, b.event_id, b.body) for b in reloaded.pending] == [
        (b.seq, b.event_id, b.body) for b in sealed[1:]
    ]
    assert reloaded.seal([{"type": "result"}], "a" * 40).seq == 4
    assert reloaded.terminal_sealed


def test_seq_survives_a_crash_between_batch_and_state_write(tmp_path: Path) -> None:
    run = Spool(tmp_path).create_run("run-1", SPEC, "t" * 32)
    run.seal([{"type": "assistant"}], None)
    state_path = run.directory / "state.json"
    state = json.loads(state_path.read_text())
    state["lastSealedSeq"] = 0  # as if the state write after sealing seq 1 never happened
    state_path.write_text(json.dumps(state))
    reloaded = Spool(tmp_path).load_run("run-1")
    assert reloaded.seal([{"type": "assistant"}], None).seq == 2


def test_seq_continues_after_delivered_batches_are_gone(tmp_path: Path) -> None:
    run = Spool(tmp_path).create_run("run-1", SPEC, "t" * 32)
    for batch in [run.seal([{"type": "assistant"}], None) for _ in range(2)]:
        run.mark_delivered(batch)
    assert list(run.batches_dir.iterdir()) == []
    assert Spool(tmp_path).load_run("run-1").seal([{"type": "user"}], None).seq == 3


def test_dead_letter_records_reason_and_drops_batch(tmp_path: Path) -> None:
    run = Spool(tmp_path).create_run("run-1", SPEC, "t" * 32)
    batch = run.seal([{"type": "assistant"}], None)
    run.dead_letter(batch, "http_413", {"httpStatus": 413, "responseStatus": "too_large"})
    records = [json.loads(line) for line in run.dead_letter_path.read_text().splitlines()]
    assert records[0]["reason"] == "http_413"
    assert records[0]["batch"]["eventId"] == batch.event_id
    assert run.pending == [] and list(run.batches_dir.iterdir()) == []
    assert Spool(tmp_path).load_run("run-1").dead_lettered == 1


def test_no_sealing_after_the_terminal_batch(tmp_path: Path) -> None:
    run = Spool(tmp_path).create_run("run-1", SPEC, "t" * 32)
    run.seal([{"type": "result"}], "a" * 40)
    with pytest.raises(RuntimeError, match="terminal"):
        run.seal([{"type": "assistant"}], None)


def test_leftover_tmp_files_are_ignored_and_removed(tmp_path: Path) -> None:
    run = Spool(tmp_path).create_run("run-1", SPEC, "t" * 32)
    run.seal([{"type": "assistant"}], None)
    leftover = run.batches_dir / ".0000000002.json.123.abcd.tmp"
    leftover.write_text("{half")
    reloaded = Spool(tmp_path).load_run("run-1")
    assert [b.seq for b in reloaded.pending] == [1]
    assert not leftover.exists()


def test_unfinished_runs_are_found_and_complete_ones_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    done = spool.create_run("run-a", SPEC, "t" * 32)
    done.mark_complete()
    spool.create_run("run-b", SPEC, "t" * 32)
    assert [r.key for r in spool.load_unfinished()] == ["run-b"]


def test_one_daemon_per_spool(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.lock()
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path).lock()
    first.unlock()
    second = Spool(tmp_path)
    second.lock()
    second.unlock()


def test_run_keys_are_safe_directory_names() -> None:
    assert run_key(SPEC) == "run-1"
    weird = run_key(StartSpec("t", "c", "tok", "http://x", 2, run_id="../../etc/passwd"))
    assert "/" not in weird and not weird.startswith(".")
    legacy = run_key(StartSpec("t", "c", "tok", "http://x", 1, run_id=None))
    assert legacy.startswith("legacy-")
