"""Progress of long CLI jobs (rollup of many days, purge, bulk replay).

Jobs report through the `Progress` protocol; they never know whether anyone is watching. The CLI
passes `terminal_progress()`: a rich progress bar on stderr when stderr is a terminal that shows
the console log, nothing at all when it is piped or redirected or the log is JSON (then stderr
carries only the JSON log lines, and stdout only the command's result).

One mechanism for every bar (rich's `Progress`), and nothing is printed through it: while a bar is
drawn, rich redirects `sys.stderr` and `sys.stdout`, and the log writes to `sys.stderr` as it is at
each write (`log_config`), so a log line or a result line is printed above the bar, which is drawn
again once below it, never torn or repeated.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

import click

if TYPE_CHECKING:
    from rich.progress import TaskID


class Progress(Protocol):
    def start(self, description: str, total: float) -> None:
        """Begin a phase of `total` steps (a new bar; the previous one stays, completed)."""
        ...

    def advance(self, steps: float = 1) -> None:
        """`steps` more of the current phase are done."""
        ...


class ShownProgress(Progress, Protocol):
    """What a command holds while its job runs: the job's `Progress`, and `echo` for the
    command's own result lines printed meanwhile."""

    def echo(self, line: str) -> None:
        """Print `line` on stdout (above the bar while one is drawn on the same terminal)."""
        ...


class NoProgress:
    """What jobs get when nobody watches (the periodic jobs, tests, piped CLI runs)."""

    def start(self, description: str, total: float) -> None:
        return None

    def advance(self, steps: float = 1) -> None:
        return None

    def echo(self, line: str) -> None:
        click.echo(line)


NO_PROGRESS = NoProgress()


class _RichProgress:
    def __init__(self, bars: object) -> None:
        from rich.progress import Progress as RichBars

        assert isinstance(bars, RichBars)
        self._bars = bars
        self._task: TaskID | None = None

    def start(self, description: str, total: float) -> None:
        self.finish()
        self._task = self._bars.add_task(description, total=total)

    def finish(self) -> None:
        """Show the current bar full (a phase may end early: e.g. empty hours skipped)."""
        if self._task is not None:
            total = self._bars.tasks[-1].total
            if total is not None:
                self._bars.update(self._task, completed=total)

    def advance(self, steps: float = 1) -> None:
        if self._task is not None:
            self._bars.advance(self._task, steps)

    def echo(self, line: str) -> None:
        if not sys.stdout.isatty():  # piped: the line as it is, nowhere near the bar
            click.echo(line)
            return
        from rich.text import Text

        # through the bar's console: printed above the bar, which is drawn again below it once
        # (click.echo would write past rich's redirect, and the bar would be torn and repeated);
        # a `Text` (never markup) soft-wrapped by the terminal, so a copied line stays whole
        self._bars.console.print(Text(line), soft_wrap=True)


@contextmanager
def terminal_progress(*, force: bool | None = None) -> Iterator[ShownProgress]:
    """Rich bars on stderr if it is a terminal showing the console log (`force` overrides the
    check), else `NO_PROGRESS`."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as RichBars,
    )

    from terragon_ingest.log_config import console_logging

    console = Console(stderr=True)
    shown = (console.is_terminal and console_logging()) if force is None else force
    if not shown:
        yield NO_PROGRESS
        return
    with RichBars(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        redirect_stdout=False,  # stdout is the command's result: `echo` says where it goes
    ) as bars:
        progress = _RichProgress(bars)
        yield progress
        progress.finish()
