"""CLI group: `terragon tokens revoke --thread T` (registered on the `terragon` group in `cli.py`).

It works against the database directly, so an operator can revoke while the service is down, and
finds it as `terragon archive` does (`kit/installation.py`): `--database-url` / `DATABASE_URL`,
else the running `terragon up` of `--data-dir` / `TERRAGON_DATA_DIR` / `.data`. Output is one JSON
object: the close route's answer.
"""

from __future__ import annotations

import asyncio

import click
import msgspec

from terragon_ingest.db import create_pool
from terragon_ingest.errors import IngestError
from terragon_ingest.kit.installation import installation
from terragon_ingest.runs import service
from terragon_ingest.runs.schemas import ThreadClosed
from terragon_ingest.settings import Settings


@click.group()
def tokens() -> None:
    """Daemon tokens: revoke a thread's (CONTRACT §4)."""


@tokens.command("revoke")
@click.option("--thread", "thread_id", required=True, help="The threadId to close.")
@installation()
def revoke(thread_id: str, settings: Settings) -> None:
    """Close thread T: end its active run, if any, as failed and revoke every daemon token of
    the thread, exactly as POST /api/internal/threads/{threadId}/close. Its daemons are answered
    401 `revoked` from then on (a running service may let a remembered token's body be decoded
    for up to a minute; nothing is written for it). Closing twice changes nothing. Prints
    {threadId, endedRunId, revokedTokens}."""
    url = settings.db.URL
    assert url
    timeout = settings.db.CONNECT_TIMEOUT

    async def main() -> ThreadClosed:
        pool = create_pool(url, min_size=1, max_size=1, timeout=timeout)
        await pool.open(wait=True, timeout=30)
        try:
            _, closed = await service.close_thread(pool, thread_id=thread_id)
        finally:
            await pool.close()
        return ThreadClosed(thread_id, closed.ended_run_id, closed.revoked_tokens)

    try:
        answer = asyncio.run(main())
    except IngestError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(msgspec.json.encode(answer).decode())
