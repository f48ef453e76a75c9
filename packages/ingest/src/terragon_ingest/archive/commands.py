"""CLI: `terragon archive rollup|sql` and `terragon retention purge` (registered on the
`terragon` group in `cli.py`; `terragon dashboard` is `dashboard.py`'s)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import click

from terragon_ingest.archive.options import archive_dir_option, archive_url_option, with_archive
from terragon_ingest.kit.installation import (
    data_dir_option,
    installation,
    installation_flags,
    installation_settings,
)
from terragon_ingest.kit.terminal import terminal_json, terminal_text
from terragon_ingest.settings import Settings


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """An unreachable archive or object store: its one-line message (it names the setting to
    check), not a traceback."""
    from terragon_ingest.errors import ObjectStoreUnavailable

    try:
        yield
    except ObjectStoreUnavailable as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("archive")
def archive() -> None:
    """The Parquet archive of quarantine rows and preview events (read it with DuckDB)."""


@archive.command("rollup")
@installation()
@archive_dir_option
@archive_url_option
@click.option(
    "--rebuild-day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Rewrite one archived UTC day from Postgres (for a day that failed to reconcile). "
    "Shows the rows per dataset before and after, and refuses to leave the archive with fewer "
    "rows than it holds unless --allow-shrink.",
)
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="With --rebuild-day: replace the day even where PostgreSQL holds fewer rows than the "
    "archive (those archived rows are lost).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="With --rebuild-day: show what the rebuild would change, change nothing.",
)
def rollup_command(
    settings: Settings,
    archive_dir: Path | None,
    archive_url: str | None,
    rebuild_day: object,
    allow_shrink: bool,
    dry_run: bool,
) -> None:
    """Copy closed minutes of quarantine rows and preview events into the archive (idempotent)."""
    from terragon_ingest.archive import location, repository
    from terragon_ingest.archive.rollup import ShrinkRefused
    from terragon_ingest.archive.rollup import rebuild_day as rebuild
    from terragon_ingest.archive.tasks import run_rollup
    from terragon_ingest.kit.progress import terminal_progress

    settings = with_archive(settings, archive_dir, archive_url)
    root = settings.archive.archive_url(settings.server.DATA_DIR)
    if rebuild_day is not None:
        day: date = rebuild_day.date()  # type: ignore[attr-defined]
        assert settings.db.URL
        try:
            with (
                _store_errors(),
                repository.connect(settings.db.URL) as conn,
                terminal_progress() as progress,
            ):
                plan = rebuild(
                    conn,
                    location.from_settings(settings),
                    day,
                    allow_shrink=allow_shrink,
                    dry_run=dry_run,
                    progress=progress,
                )
        except ShrinkRefused as exc:
            raise click.ClickException(str(exc)) from exc
        verb = "would rebuild" if dry_run else "rebuilt"
        click.echo(f"{verb} {day} in {root}:")
        for change in plan.changes:
            click.echo(f"  {change.describe()}")
        if dry_run and plan.lost:
            click.echo(
                f"  it would drop {plan.lost} archived row(s) that PostgreSQL no longer holds: "
                "refused without --allow-shrink"
            )
        return
    if allow_shrink or dry_run:
        raise click.UsageError("--allow-shrink and --dry-run apply to --rebuild-day only")
    with _store_errors(), terminal_progress() as progress:
        result = run_rollup(settings, alerts=False, progress=progress)
    if not result.locked:
        click.echo("another rollup is running; nothing done", err=True)
        return
    end = result.end.isoformat() if result.end else "-"
    total = sum(result.rows.values())
    by_source = ", ".join(f"{name} {n}" for name, n in result.rows.items())
    click.echo(f"rolled up to {end}: {total} row(s) ({by_source}) in {root}")


@archive.command("sql")
@click.argument("query")
@data_dir_option()
@archive_dir_option
@archive_url_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def sql_command(
    query: str, data_dir: Path, archive_dir: Path | None, archive_url: str | None, fmt: str
) -> None:
    """Run QUERY over the archive's views: quarantine_daily, quarantine_minutely,
    quarantine_rows, preview_events.

    \b
    terragon archive sql "SELECT day, reason, sum(quarantined) FROM quarantine_daily GROUP BY ALL"
    """
    import duckdb

    from terragon_ingest.archive import location

    with _store_errors():
        settings = with_archive(
            installation_settings(data_dir, database="unused"), archive_dir, archive_url
        )
        con = location.open_archive(location.from_settings(settings))
    try:
        relation = con.sql(query)
        if relation is None:
            return
        columns = list(relation.columns)
        rows = relation.fetchall()
    except duckdb.Error as exc:  # its text can quote a value of the archive's
        raise click.ClickException(terminal_text(str(exc), keep_newlines=True)) from exc
    # Archived text came from sandboxes (CONTRACT §7): every format prints it as text. JSON is
    # exact (json.dumps escapes every non-ASCII character); csv and the table escape controls.
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")  # csv's default ends lines with CRLF
        writer.writerow([terminal_text(c) for c in columns])
        writer.writerows([_cell(v) for v in row] for row in rows)
    elif fmt == "json":
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        click.echo(terminal_json(json.dumps(records, default=str)))
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # `Text`, never a str: rich reads markup (`[link=…]`, `[conceal]`) and emoji codes in a
        # str cell; a `Text` is shown as it is.
        table = Table(caption=f"{len(rows)} row(s)")
        for column in columns:
            table.add_column(Text(terminal_text(column)))
        for row in rows:
            table.add_row(*(Text(_cell(v)) for v in row))
        Console().print(table)


def _cell(value: object) -> str:
    return "" if value is None else terminal_text(str(value))


@click.group("retention")
def retention() -> None:
    """Retention: quarantine and preview-event days past 30 days leave Postgres once the archive
    holds them (reconciled, then dropped); webhook body digests past 30 days are deleted."""


@retention.command("purge")
@installation()
@archive_dir_option
@archive_url_option
@click.option("--dry-run", is_flag=True, help="Show what would go; change nothing.")
def purge_command(
    settings: Settings,
    archive_dir: Path | None,
    archive_url: str | None,
    dry_run: bool,
) -> None:
    """Drop the day partitions past retention whose archive reconciles (event + metric each).

    Quarantine rows and preview events alike. Each run first seals the archived days it has not
    sealed yet (one exact count per day); a day that does not reconcile is kept and the log says
    what to do. `--dry-run` prints the plan and changes nothing."""
    from rich.console import Console
    from rich.table import Table

    from terragon_ingest.archive import location, repository
    from terragon_ingest.archive.retention import DayPlan, purge
    from terragon_ingest.kit.progress import terminal_progress
    from terragon_ingest.objects import QuarantineObjects
    from terragon_ingest.telemetry import Metrics

    settings = with_archive(settings, archive_dir, archive_url)
    url = settings.db.URL
    assert url

    root = location.from_settings(settings)
    store = QuarantineObjects.from_settings(settings)

    async def run() -> list[DayPlan]:
        conn = await repository.async_connect(url)
        async with conn:
            with terminal_progress() as progress:
                return await purge(
                    conn,
                    archive_root=root,
                    store=store,
                    metrics=Metrics(),
                    dry_run=dry_run,
                    progress=progress,
                    where=installation_flags(settings),
                )

    with _store_errors():
        plans = asyncio.run(run())
    verb = "would purge" if dry_run else "purged"
    going = [p for p in plans if p.reconciled and (dry_run or p.purged)]
    caption = (
        f"{len(plans)} day(s) past retention: {verb} {len(going)} "
        f"({sum(p.rows for p in going)} row(s)), kept {len(plans) - len(going)}"
    )
    table = Table(
        "table",
        "day",
        "partition",
        "rows",
        "breakdown",
        "archived",
        "objects",
        "action",
        caption=caption,
    )
    for plan in plans:
        if not plan.reconciled:
            action = f"keep: {plan.problem}"
        else:
            action = verb if (dry_run or plan.purged) else "kept"
        table.add_row(
            plan.dataset,
            plan.day.isoformat(),
            plan.partition or "(default)",
            str(plan.rows),
            ", ".join(f"{k}={v}" for k, v in sorted(plan.breakdown.items())),
            str(plan.archived_rows),
            str(len(plan.objects)),
            action,
        )
    Console().print(table)
