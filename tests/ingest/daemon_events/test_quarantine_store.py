"""The quarantine store: UTF-8-safe prefix, hash, size, inline vs offloaded payloads, the per-repo
offload rate limit under a storm, Valkey down, orphan objects, and the read-out filters."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time

import valkey.asyncio as valkey_asyncio

from terragon_core import MetricName, quarantine_offload_pending_key, quarantine_thread_key
from terragon_ingest.daemon_events.quarantine import utf8_prefix
from tests.fixtures.daemon_events import envelope, post, quarantine_rows, sql
from tests.fixtures.runs import start_run

LABELS = {"repo": "acme/web", "user": "user-1", "provider": "manual"}


def test_prefix_is_cut_on_a_utf8_boundary() -> None:
    body = ("a" * 2046 + "☃☃").encode()  # the snowman is 3 bytes: byte 2048 is mid-character
    prefix = utf8_prefix(body)
    assert prefix == "a" * 2046
    assert len(prefix.encode()) <= 2048
    assert utf8_prefix("é".encode() * 1500).encode() == "é".encode() * 1024
    assert utf8_prefix(b"short") == "short"


async def test_small_payload_is_inline_and_large_one_is_offloaded(
    client, app, database_url
) -> None:
    _, token = await start_run(client)
    small = envelope("zombie", 1, messages=[{"type": "assistant", "text": "ü" * 100}])
    large = envelope("zombie", 2, messages=[{"type": "assistant", "text": "ü" * 20_000}])
    assert (await post(client, small, token)).status_code == 202
    assert (await post(client, large, token)).status_code == 202
    rows = {r["seq"]: r for r in await sql(database_url, "SELECT * FROM daemon_event_quarantine")}
    assert rows[1]["payload_inline"] is not None and rows[1]["payload_object_key"] is None
    inline = rows[1]["payload_inline"].encode()
    assert hashlib.sha256(inline).hexdigest() == rows[1]["payload_hash"]
    assert json.loads(inline)["messages"][0]["text"] == "ü" * 100
    key = rows[2]["payload_object_key"]
    assert key.startswith(
        f"preview/daemon-quarantine/{quarantine_thread_key('thread-1')}/"
    ) and key.endswith(".json")
    assert rows[2]["payload_inline"] is None and rows[2]["offload_skipped"] is False
    stored = await app.state.daemon_events.objects.get(key)
    assert stored is not None and hashlib.sha256(stored).hexdigest() == rows[2]["payload_hash"]
    assert rows[2]["payload_size"] == len(stored) > 16 * 1024
    assert len(rows[2]["payload_prefix_2k"].encode()) <= 2048
    assert (
        app.state.daemon_events.metrics.value(MetricName.QUARANTINE_OFFLOAD, **LABELS, reason="")
        == 1
    )


async def test_oversized_storm_offloads_at_most_the_limit_and_keeps_every_row(
    client, app, database_url
) -> None:
    limit = app.state.daemon_events.settings.correlation.OFFLOADS_PER_REPO_PER_MINUTE
    _, token = await start_run(client)
    text = "x" * 17_000
    first_minute = int(time.time() // 60)
    for chunk in range(0, 500, 25):
        bodies = [
            envelope("zombie", seq, messages=[{"type": "a", "t": text}])
            for seq in range(chunk + 1, chunk + 26)
        ]
        responses = await asyncio.gather(*(post(client, b, token) for b in bodies))
        assert {r.status_code for r in responses} == {202}
    minutes = (
        int(time.time() // 60) - first_minute + 1
    )  # normally 1; 2 if the storm straddled a minute
    [counts] = await sql(
        database_url,
        """SELECT count(*) AS rows, count(payload_object_key) AS offloaded,
                  count(*) FILTER (WHERE offload_skipped) AS skipped
           FROM daemon_event_quarantine""",
    )
    assert counts["rows"] == 500
    assert limit <= counts["offloaded"] <= limit * minutes
    assert counts["skipped"] == 500 - counts["offloaded"]
    metrics = app.state.daemon_events.metrics
    assert (
        metrics.value(MetricName.QUARANTINE_OFFLOAD_SKIPPED, **LABELS, reason="rate_limited")
        == counts["skipped"]
    )
    assert metrics.value(MetricName.QUARANTINE, **LABELS, reason="mismatch") == 500


async def test_valkey_down_skips_the_offload_but_keeps_the_row(client, app, database_url) -> None:
    _, token = await start_run(client)
    deps = app.state.daemon_events
    down = valkey_asyncio.Valkey(unix_socket_path="/nonexistent/valkey.sock")
    app.state.daemon_events = dataclasses.replace(deps, valkey=down)
    body = envelope("zombie", 1, messages=[{"type": "assistant", "text": "x" * 20_000}])
    response = await post(client, body, token)
    assert (response.status_code, response.json()["reason"]) == (202, "mismatch")
    [row] = await sql(
        database_url,
        "SELECT payload_object_key, offload_skipped, payload_hash FROM daemon_event_quarantine",
    )
    assert row["payload_object_key"] is None and row["offload_skipped"] is True
    assert (
        deps.metrics.value(
            MetricName.QUARANTINE_OFFLOAD_SKIPPED, **LABELS, reason="cache_unavailable"
        )
        == 1
    )


async def test_maintenance_removes_objects_whose_row_never_committed(
    client, app, valkey_url
) -> None:
    deps = app.state.daemon_events
    _, token = await start_run(client)
    body = envelope("zombie", 1, messages=[{"type": "assistant", "text": "x" * 20_000}])
    assert (await post(client, body, token)).status_code == 202
    [row] = await quarantine_rows(client)
    kept_key = row["payloadObjectKey"]
    orphan_key = "preview/daemon-quarantine/thread-1/2026-11-26/orphan.json"
    await deps.objects.put(orphan_key, b"{}")
    pending = quarantine_offload_pending_key(deps.settings.server.ENV)
    client_vk = valkey_asyncio.from_url(valkey_url)
    await client_vk.zadd(pending, {orphan_key: time.time() - 3600})
    await client_vk.aclose()
    response = await client.post("/api/internal/maintenance/sweep")  # the app's own event loop
    assert response.status_code == 200
    assert response.json()["orphanObjectsRemoved"] == 1
    assert await deps.objects.get(orphan_key) is None
    assert await deps.objects.get(kept_key) is not None


async def test_a_replica_whose_clock_runs_ahead_removes_no_fresh_pending_object(
    client, app, valkey_url, monkeypatch
) -> None:
    """Clock skew (issue 27): the pending set and the sweep's cutoff are on Valkey's clock. A
    replica 10 minutes ahead (past the orphan age) must not remove an object registered just
    now, whose row may still be on its way."""
    deps = app.state.daemon_events
    fresh_key = "preview/daemon-quarantine/thread-1/2026-11-26/in-flight.json"
    await deps.objects.put(fresh_key, b"{}")
    pending = quarantine_offload_pending_key(deps.settings.server.ENV)
    client_vk = valkey_asyncio.from_url(valkey_url)
    seconds, _ = await client_vk.time()
    await client_vk.zadd(pending, {fresh_key: float(seconds)})
    await client_vk.aclose()
    ahead = time.time() + 600
    monkeypatch.setattr(time, "time", lambda: ahead)  # this process's clock: 10 minutes ahead
    response = await client.post("/api/internal/maintenance/sweep")
    assert response.status_code == 200
    assert response.json()["orphanObjectsRemoved"] == 0
    assert await deps.objects.get(fresh_key) is not None


async def test_list_filters_by_thread_run_reason_and_since(client) -> None:
    _, token = await start_run(client)
    await post(client, envelope("zombie-a", 1), token)
    await post(client, envelope(None, 2, event_id="e2"), token)  # strict is off: legacy v2, applied
    rows = await quarantine_rows(client)
    assert {r["reason"] for r in rows} == {"mismatch", "legacy_mode"}
    assert [r["runIdOrNull"] for r in await quarantine_rows(client, runId="zombie-a")] == [
        "zombie-a"
    ]
    assert len(await quarantine_rows(client, reason="legacy_mode")) == 1
    assert await quarantine_rows(client, threadId="other") == []
    assert await quarantine_rows(client, since="2999-01-01T00:00:00Z") == []
    assert len(await quarantine_rows(client, limit="1")) == 1
    assert set(rows[0]) == {
        "id", "threadId", "threadChatId", "runIdOrNull", "activeRunId", "reason", "payloadVersion",
        "payloadHash", "payloadSize", "payloadPrefix2k", "payloadObjectKey", "repoFullName",
        "userId", "sandboxProvider", "createdAt",
    }  # fmt: skip
    bad = await client.get("/api/internal/quarantine", params={"reason": "nope"})
    assert bad.status_code == 400
