"""CLI groups: `terragon quarantine list|show|replay` and `terragon maintenance sweep`.

They work without the server, so cron and operators can run them anywhere, against the
installation found as every command finds it (`kit/installation.py`): DATABASE_URL (VALKEY_URL,
OBJECT_STORE_URL) when set, else the running `terragon up` of `--data-dir` / TERRAGON_DATA_DIR /
`.data`, whose object store holds the offloaded payloads. Output is JSON, one object per line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import click
import msgspec
import valkey.asyncio as valkey_asyncio

from terragon_core import QuarantineReason
from terragon_ingest.daemon_events import repository
from terragon_ingest.daemon_events.deps import DaemonEventsDeps
from terragon_ingest.daemon_events.replay import replay_quarantined
from terragon_ingest.daemon_events.schemas import QuarantineDetail, QuarantineRow
from terragon_ingest.db import connection, create_pool
from terragon_ingest.errors import IngestError
from terragon_ingest.kit.installation import installation, valkey_not_configured
from terragon_ingest.kit.terminal import terminal_json, terminal_text
from terragon_ingest.objects import QuarantineObjects
from terragon_ingest.runs import KnownTokens
from terragon_ingest.settings import Settings
from terragon_ingest.telemetry import Metrics

T = TypeVar("T")


@contextlib.asynccontextmanager
async def cli_deps(settings: Settings) -> AsyncIterator[DaemonEventsDeps]:
    """The resources a command needs, without the HTTP server."""
    assert settings.db.URL
    pool = create_pool(settings.db.URL, min_size=1, max_size=4, timeout=settings.db.CONNECT_TIMEOUT)
    await pool.open(wait=True, timeout=30)
    if settings.valkey.URL:
        client = valkey_asyncio.from_url(
            settings.valkey.URL, socket_timeout=settings.valkey.TIMEOUT
        )
    else:  # offload bookkeeping is skipped (and says so) when Valkey is not configured
        client = valkey_asyncio.Valkey(unix_socket_path="/nonexistent/valkey-not-configured.sock")
    objects = QuarantineObjects.from_settings(settings)
    try:
        yield DaemonEventsDeps(
            settings=settings,
            pool=pool,
            valkey=client,
            metrics=Metrics(),
            objects=objects,
            tokens=KnownTokens(),
        )
    finally:
        await client.aclose()
        await pool.close()


def _run(settings: Settings, work: Callable[[DaemonEventsDeps], Awaitable[T]]) -> T:
    async def main() -> T:
        async with cli_deps(settings) as deps:
            return await work(deps)

    try:
        return asyncio.run(main())
    except IngestError as exc:  # its text can name a row's ids
        raise click.ClickException(terminal_text(str(exc), keep_newlines=True)) from exc


def _json_line(value: Any) -> str:
    """One JSON line; rows carry sandbox text, so DEL, C1 and bidi controls (which the encoder
    leaves raw) are JSON-escaped too (CONTRACT §7)."""
    return terminal_json(msgspec.json.encode(value).decode())


def _echo(value: Any) -> None:
    click.echo(_json_line(value))


@click.group()
def quarantine() -> None:
    """Inspect and re-drive quarantined daemon envelopes."""


@quarantine.command("list")
@installation()
@click.option("--thread-id", default=None)
@click.option("--run-id", default=None)
@click.option("--reason", type=click.Choice([r.value for r in QuarantineReason]), default=None)
@click.option(
    "--since", type=click.DateTime(), default=None, help="Only rows created at/after (UTC)."
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def list_rows(
    settings: Settings,
    thread_id: str | None,
    run_id: str | None,
    reason: str | None,
    since: datetime | None,
    limit: int,
) -> None:
    """Quarantine rows, newest first (the shape of GET /api/internal/quarantine)."""

    async def work(deps: DaemonEventsDeps) -> list[QuarantineRow]:
        async with connection(deps.pool) as conn:
            return await repository.list_quarantine(
                conn, thread_id=thread_id, run_id=run_id, reason=reason, since=since, limit=limit
            )

    rows = _run(settings, work)
    for row in rows:
        _echo(row)
    if not rows:  # stdout stays JSON lines (none); the person reading learns why it is empty
        click.echo("no quarantine rows match these filters", err=True)


@quarantine.command("show")
@installation()
@click.argument("quarantine_id")
@click.option("--payload", is_flag=True, help="Print the whole stored envelope instead.")
def show(settings: Settings, quarantine_id: str, payload: bool) -> None:
    """One row with replay state; `--payload` prints the stored envelope."""
    from terragon_ingest.daemon_events.replay import stored_payload

    async def work(deps: DaemonEventsDeps) -> bytes | None:
        async with connection(deps.pool) as conn:
            row = await repository.fetch_quarantine(conn, quarantine_id)
        if row is None:
            raise click.ClickException(f"quarantine row {quarantine_id!r} not found")
        if payload:
            return await stored_payload(deps.objects, row)
        # `show` says whether the payload is inline; `--payload` prints it.
        fields: dict[str, Any] = msgspec.structs.asdict(row)
        fields["run_id_or_null"] = fields.pop("run_id")
        fields["payload_inline"] = row.payload_inline is not None
        _echo(QuarantineDetail(**fields))
        return None

    body = _run(settings, work)
    if body is not None:
        # The envelope as the sandbox sent it, shown as text: any byte that is not UTF-8 as
        # `\xNN`, every control character escaped (CONTRACT §7).
        click.echo(terminal_text(body.decode("utf-8", errors="backslashreplace")))


@quarantine.command("replay")
@installation()
@click.argument("quarantine_ids", nargs=-1)
@click.option("--thread-id", default=None, help="Replay this thread's rows (with the filters).")
@click.option("--run-id", default=None, help="Replay this run's rows.")
@click.option("--reason", type=click.Choice([r.value for r in QuarantineReason]), default=None)
@click.option(
    "--since", type=click.DateTime(), default=None, help="Only rows created at/after (UTC)."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="At most this many rows (the newest) when selecting by filter.",
)
@click.option("--force", is_flag=True, help="Re-drive even if an earlier replay applied it.")
def replay(
    settings: Settings,
    quarantine_ids: tuple[str, ...],
    thread_id: str | None,
    run_id: str | None,
    reason: str | None,
    since: datetime | None,
    limit: int,
    force: bool,
) -> None:
    """Re-drive quarantined envelopes through the same decision path (idempotent).

    Give QUARANTINE_IDS, or select rows with --thread-id / --run-id / --reason / --since. One JSON
    outcome per row on stdout, oldest row first (a run's envelopes keep their order); then, for several IDs
    or a filter, a last line with the totals. A row that cannot be replayed is reported and the
    others go on (exit status 1). A progress bar is shown on stderr in a terminal.

    \b
    terragon quarantine replay 6f1c…                       one row
    terragon quarantine replay --run-id r-42 --reason mismatch
    """
    from terragon_ingest.kit.progress import terminal_progress

    filtered = any(v is not None for v in (thread_id, run_id, reason, since))
    if not quarantine_ids and not filtered:
        raise click.UsageError("give QUARANTINE_IDS or at least one filter (see --help)")
    if quarantine_ids and filtered:
        raise click.UsageError("give QUARANTINE_IDS or filters, not both")
    if len(quarantine_ids) == 1:  # one row: its outcome, or the error, as before
        outcome = _run(settings, lambda s: replay_quarantined(s, quarantine_ids[0], force=force))
        _echo(outcome)
        return

    async def work(deps: DaemonEventsDeps) -> ReplayTotals:
        ids = list(quarantine_ids)
        if not ids:
            async with connection(deps.pool) as conn:
                rows = await repository.list_quarantine(
                    conn,
                    thread_id=thread_id,
                    run_id=run_id,
                    reason=reason,
                    since=since,
                    limit=limit,
                )
            ids = [row.id for row in sorted(rows, key=lambda r: r.created_at)]
        totals = ReplayTotals(total=len(ids))
        with terminal_progress() as progress:
            progress.start("replaying quarantined envelopes", len(ids))
            for quarantine_id in ids:
                try:
                    outcome = await replay_quarantined(deps, quarantine_id, force=force)
                except IngestError as exc:
                    totals.failed += 1
                    progress.echo(_json_line({"quarantineId": quarantine_id, "error": str(exc)}))
                else:
                    totals.by_status[outcome.replay_status] = (
                        totals.by_status.get(outcome.replay_status, 0) + 1
                    )
                    totals.re_driven += outcome.re_driven
                    progress.echo(_json_line(outcome))
                progress.advance()
        return totals

    totals = _run(settings, work)
    _echo(totals)
    if totals.failed:
        raise SystemExit(1)


class ReplayTotals(msgspec.Struct, rename="camel"):
    """The last line of a bulk replay."""

    total: int
    re_driven: int = 0
    failed: int = 0
    by_status: dict[str, int] = msgspec.field(default_factory=dict)


@click.group()
def maintenance() -> None:
    """The correlation backstop."""


@maintenance.command("sweep")
@installation()
def sweep_now(settings: Settings) -> None:
    """Finalize stale runs and remove orphan objects once (one sweeper across replicas).

    The orphan-object scan reads Valkey (VALKEY_URL, else the running `terragon up`'s); without
    one it is skipped and the command says so."""
    from terragon_ingest.daemon_events.maintenance import sweep

    if settings.valkey.URL is None:
        click.echo(
            f"{valkey_not_configured(settings.server.DATA_DIR)}: the orphan-object scan is "
            "skipped (set VALKEY_URL, or pass the --data-dir of a running terragon up)",
            err=True,
        )
    _echo(_run(settings, sweep))
