"""Run-context writers against real PostgreSQL: one active run, idempotency, frozen flags, CAS."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from terragon_core import FeatureFlagName, TriggerSource
from terragon_ingest.db import Pool, connection, create_pool
from terragon_ingest.errors import RunContextConflict
from terragon_ingest.runs import flags, repository, service


@pytest.fixture(name="pool")
async def fx_pool(database_url: str) -> AsyncIterator[Pool]:
    pool = create_pool(database_url, min_size=1, max_size=24, timeout=10)
    await pool.open(wait=True)
    async with connection(pool) as conn:
        await repository.upsert_thread(
            conn,
            {
                "thread_id": "t1",
                "user_id": "u1",
                "repo_full_name": "acme/web",
                "sandbox_provider": "manual",
                "codesandbox_id": "sb1",
                "repo_dir": None,
            },
        )
    yield pool
    await pool.close()


async def _start(pool: Pool, request_id: str, chat: str = "c1") -> service.RunContext:
    return await service.create_run_context(
        pool,
        thread_id="t1",
        thread_chat_id=chat,
        start_request_id=request_id,
        trigger_source=TriggerSource.UI,
    )


async def _active_runs(pool: Pool, chat: str = "c1") -> list[str]:
    async with connection(pool) as conn:
        cur = await conn.execute(
            "SELECT run_id FROM thread_run WHERE thread_id = 't1' AND thread_chat_id = %s "
            "AND status IN ('booting', 'running', 'validating')",
            (chat,),
        )
        return [r[0] for r in await cur.fetchall()]


async def test_twenty_concurrent_starts_leave_exactly_one_active_run(pool: Pool) -> None:
    results = await asyncio.gather(*(_start(pool, f"req-{i}") for i in range(24)))
    active = await _active_runs(pool)
    assert len(active) == 1
    async with connection(pool) as conn:
        pointer = await repository.fetch_run_context(conn, "t1", "c1")
        cur = await conn.execute("SELECT count(*) FROM thread_run WHERE thread_id = 't1'")
        total = (await cur.fetchone())[0]
    assert pointer is not None and pointer[0] == active[0]
    assert pointer[1] == 24  # every start moved the pointer exactly once
    assert total == 24  # history is intact: every run row is kept
    assert len({r.run_id for r in results}) == 24


async def test_repeated_start_request_id_is_idempotent(pool: Pool) -> None:
    first = await _start(pool, "same")
    second = await _start(pool, "same")
    assert first.created and not second.created
    assert first.run_id == second.run_id
    assert await _active_runs(pool) == [first.run_id]


async def test_concurrent_repeats_of_one_start_request_make_one_run(pool: Pool) -> None:
    results = await asyncio.gather(*(_start(pool, "dup") for _ in range(10)))
    assert len({r.run_id for r in results}) == 1
    assert sum(r.created for r in results) == 1


async def test_two_chats_of_one_thread_do_not_collide(pool: Pool) -> None:
    a = await _start(pool, "r", chat="chat-a")
    b = await _start(pool, "r", chat="chat-b")
    assert a.run_id != b.run_id
    assert await _active_runs(pool, "chat-a") == [a.run_id]
    assert await _active_runs(pool, "chat-b") == [b.run_id]


async def test_flag_flipped_after_start_does_not_change_the_snapshot(pool: Pool) -> None:
    async with connection(pool) as conn:
        await flags.set_flag(
            conn, FeatureFlagName.DAEMON_RUN_ID_STRICT, True, repo_full_name="acme/web"
        )
    run = await _start(pool, "r1")
    async with connection(pool) as conn:
        await flags.set_flag(
            conn, FeatureFlagName.DAEMON_RUN_ID_STRICT, False, repo_full_name="acme/web"
        )
        stored = await repository.fetch_run(conn, run.run_id)
    assert run.frozen_flags.daemon_run_id_strict is True
    assert stored is not None and stored.frozen_flags.daemon_run_id_strict is True
    later = await _start(pool, "r2")
    assert later.frozen_flags.daemon_run_id_strict is False


async def test_user_override_beats_repo_override_beats_global(pool: Pool) -> None:
    async with connection(pool) as conn:
        await flags.set_flag(conn, FeatureFlagName.DAEMON_RUN_ID_STRICT, True)
        await flags.set_flag(
            conn, FeatureFlagName.DAEMON_RUN_ID_STRICT, False, repo_full_name="acme/web"
        )
        await flags.set_flag(conn, FeatureFlagName.DAEMON_RUN_ID_STRICT, True, user_id="u1")
        resolved = await flags.resolve_frozen_flags(conn, "acme/web", "u1")
        other_user = await flags.resolve_frozen_flags(conn, "acme/web", "u2")
        other_repo = await flags.resolve_frozen_flags(conn, "acme/api", "u2")
    assert resolved.daemon_run_id_strict is True
    assert other_user.daemon_run_id_strict is False
    assert other_repo.daemon_run_id_strict is True


async def test_pointer_rotates_and_superseded_runs_are_finished(pool: Pool) -> None:
    first = await _start(pool, "a")
    second = await _start(pool, "b")
    assert second.superseded_run_ids == (first.run_id,)
    async with connection(pool) as conn:
        old = await repository.fetch_run(conn, first.run_id)
        new = await repository.fetch_run(conn, second.run_id)
    assert old is not None and old.status == "failed" and old.finish_reason == "superseded"
    assert old.ended_at is not None
    assert new is not None and new.status == "booting"


async def test_version_conflicts_retry_a_bounded_number_of_times(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = 0

    async def always_moved(*args: object, **kwargs: object) -> bool:
        nonlocal attempts
        attempts += 1
        return False

    monkeypatch.setattr(repository, "move_run_context_pointer", always_moved)
    with pytest.raises(RunContextConflict, match="gave up after 5 attempts"):
        await _start(pool, "never")
    assert attempts == service.MAX_ATTEMPTS
    # Nothing half-written: each attempt rolled back its run row.
    async with connection(pool) as conn:
        cur = await conn.execute("SELECT count(*) FROM thread_run")
        assert (await cur.fetchone())[0] == 0


def test_backoff_is_25ms_doubling_with_20_percent_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(5):
        delay = service.backoff_seconds(attempt, rng)
        base = 0.025 * 2**attempt
        assert base * 0.8 <= delay <= base * 1.2
