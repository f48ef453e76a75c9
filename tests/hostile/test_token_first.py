"""Token before body (CONTRACT §4): a missing or unknown token costs no JSON decoding and writes
nothing. Before this, an unknown token's body was decoded first (a 400 for a bad body needed a
database lookup after decoding; a good body was decoded and bound into the ingest statement)."""

from __future__ import annotations

import pytest

from terragon_ingest.daemon_events import service
from tests.fixtures.daemon_events import envelope, post, quarantine_rows, sql
from tests.fixtures.runs import start_run


@pytest.fixture(name="decodes")
def fx_decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Records every body the daemon-event decision decodes (the real decoder still runs)."""
    seen: list[bytes] = []
    decode = service.decode_envelope

    def recording(body: bytes):
        seen.append(body)
        return decode(body)

    monkeypatch.setattr(service, "decode_envelope", recording)
    return seen


@pytest.mark.parametrize("token", [None, "", "tdt_unknown", "tdt_" + "x" * 5000])
@pytest.mark.parametrize("body", [b"{not json", b'{"threadId": "thread-1", "messages": []}'])
async def test_missing_or_unknown_token_is_401_without_decoding(
    client, database_url: str, decodes: list[bytes], token: str | None, body: bytes
) -> None:
    run_id, _ = await start_run(client)
    response = await post(client, body, token)
    assert response.status_code == 401, response.text
    assert response.json()["status"] == "unauthorized"
    assert decodes == []
    assert await quarantine_rows(client, runId=run_id) == []
    stored = await sql(database_url, "SELECT count(*) AS n FROM daemon_event")
    assert stored[0]["n"] == 0


async def test_a_revoked_token_is_401_even_when_this_process_remembers_it(
    client, database_url: str
) -> None:
    """The remembered-token gate is not the authority: the SQL checks the token again."""
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 1), token)).status_code == 200
    await sql(database_url, "UPDATE daemon_token SET revoked_at = now()")
    response = await post(client, envelope(run_id, 2), token)
    assert response.status_code == 401, response.text
    response = await post(client, envelope(run_id, 3, event_id="e" * 200), token)  # step path
    assert response.status_code == 401, response.text
    rows = await sql(database_url, "SELECT count(*) AS n FROM daemon_event")
    assert rows[0]["n"] == 1


async def test_a_known_token_with_a_bad_body_is_400(client, decodes: list[bytes]) -> None:
    _, token = await start_run(client)
    response = await post(client, b"{not json", token)
    assert response.status_code == 400
    assert response.json()["status"] == "invalid"
    assert decodes == [b"{not json"]
