"""Sealing fixes eventId and seq once; the spool survives a restart without re-sealing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from terragon_daemon.protocol import StartSpec
from terragon_daemon.spool import SealedBatch, Spool, SpoolLockedError, SpoolRun, run_key

SPEC = StartSpec(
    thread_id="thread-1",
    thread_chat_id="chat-1",
    token="secret-token",
    ingest_url="http://x",
    payload_version=2,
    run_id="run-1",
)


def seal(run: SpoolRun, kind: str = "assistant", *, terminal: bool = False) -> SealedBatch:
    line = json.dumps({"type": kind}).encode()
    return run.seal([line], terminal=terminal, end_sha="a" * 40 if terminal else None)


def new_run(root: Path) -> SpoolRun:
    return Spool(root).create_run("run-1", SPEC, "t" * 32)


def test_seal_persists_the_exact_body(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    first, second = seal(run), seal(run, "user")
    assert (first.seq, second.seq) == (1, 2)
    assert first.event_id != second.event_id
    files = sorted(p.name for p in run.batches_dir.iterdir())
    assert files == ["0000000001.json", "0000000002.json"]
    assert json.loads(first.body)["eventId"] == first.event_id
    on_disk = SealedBatch.from_file((run.batches_dir / "0000000001.json").read_bytes())
    assert on_disk == first
    assert Spool(tmp_path).load_run("run-1").last_sealed_seq == 2  # the batch files say so
    for path in (run.directory / "state.json", run.batches_dir / "0000000001.json"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # the state holds the run's token


def test_reload_keeps_event_ids_seq_and_bytes(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    sealed = [seal(run) for _ in range(3)]
    run.mark_delivered(sealed[0])
    reloaded = Spool(tmp_path).load_run("run-1")
    assert reloaded.pending == sealed[1:]
    assert seal(reloaded, "result", terminal=True).seq == 4
    assert reloaded.terminal_sealed


def test_seq_survives_a_crash_before_any_state_write(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    seal(run)
    state = json.loads((run.directory / "state.json").read_text())
    assert state["lastSealedSeq"] == 0  # sealing writes only the batch file
    assert seal(Spool(tmp_path).load_run("run-1")).seq == 2


def test_state_takes_over_seq_before_the_newest_batch_file_goes(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    first, second = seal(run), seal(run)
    state_path = run.directory / "state.json"
    run.mark_delivered(first)
    assert json.loads(state_path.read_text())["lastSealedSeq"] == 0  # seq 2's file still says 2
    run.mark_delivered(second)
    assert json.loads(state_path.read_text())["lastSealedSeq"] == 2
    assert list(run.batches_dir.iterdir()) == []
    assert seal(Spool(tmp_path).load_run("run-1"), "user").seq == 3


def test_dead_letter_records_reason_and_drops_batch(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    batch = seal(run)
    run.dead_letter(batch, "http_413", {"httpStatus": 413, "responseStatus": "too_large"})
    records = [json.loads(line) for line in run.dead_letter_path.read_text().splitlines()]
    assert records[0]["reason"] == "http_413"
    assert records[0]["batch"]["eventId"] == batch.event_id
    assert records[0]["batch"]["body"].encode() == batch.body
    assert run.pending == [] and list(run.batches_dir.iterdir()) == []
    assert Spool(tmp_path).load_run("run-1").dead_lettered == 1


def test_no_sealing_after_the_terminal_batch(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    seal(run, "result", terminal=True)
    with pytest.raises(RuntimeError, match="terminal"):
        seal(run)


def test_leftover_tmp_files_are_ignored_and_removed(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    seal(run)
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
