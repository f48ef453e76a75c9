"""Progress of long CLI jobs (rollup of many days, purge, bulk replay).

Jobs report through the `Progress` protocol; they never know whether anyone is watching. The CLI
passes `terminal_progress()`: a rich progress bar on stderr when stderr is a terminal, nothing at
all when it is piped or redirected (then stderr carries only the JSON log lines, and stdout only
the command's result).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID


class Progress(Protocol):
    def start(self, description: str, total: float) -> None:
        """Begin a phase of `total` steps (a new bar; the previous one stays, completed)."""
        ...

    def advance(self, steps: float = 1) -> None:
        """`steps` more of the current phase are done."""
        ...


class NoProgress:
    """What jobs get when nobody watches (the periodic jobs, tests, piped CLI runs)."""

    def start(self, description: str, total: float) -> None:
        return None

    def advance(self, steps: float = 1) -> None:
        return None


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


@contextmanager
def terminal_progress(*, force: bool | None = None) -> Iterator[Progress]:
    """Rich bars on stderr if it is a terminal (`force` overrides the check), else `NO_PROGRESS`."""
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

    console = Console(stderr=True)
    shown = console.is_terminal if force is None else force
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
    ) as bars:
        progress = _RichProgress(bars)
        yield progress
        progress.finish()
