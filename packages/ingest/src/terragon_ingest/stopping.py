"""Stop once: the first SIGINT/SIGTERM begins a clean stop; every later one is noted and ignored.

`uv run` forwards its process group's SIGINT to its child, so a process manager, `timeout -s INT`
or Ctrl-C on `uv run … | tee` delivers it twice, the second while we are stopping. A second
`KeyboardInterrupt` raised inside the cleanup that stops embedded PostgreSQL left it running (it
lives in a session of its own, which no group signal reaches), and uvicorn takes a second SIGINT
as "force exit", which skips the app's own shutdown (FIELD-NOTES "Signals and `uv run`").
"""

from __future__ import annotations

import signal
from types import FrameType

import structlog
import uvicorn

log = structlog.get_logger()

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """The stop state of one command (`up`, `serve`), shared by its signal handlers."""

    def __init__(self) -> None:
        self.stopping = False
        self.cause: str | None = None
        """The signal that began the stop (None: the command ended by itself or failed)."""
        self._ignored: list[str] = []

    def begin(self, signum: int) -> bool:
        """True for the signal that begins the stop; a later one is recorded and ignored."""
        name = signal.Signals(signum).name
        if self.stopping:
            self._ignored.append(name)
            return False
        self.stopping, self.cause = True, name
        return True

    def begin_without_signal(self) -> None:
        """Shutdown begins for another reason (serve returned, an error): ignore signals now."""
        self.stopping = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # A handler runs between two bytecodes of the main thread, perhaps inside a log write
        # holding structlog's non-reentrant lock: it only records; `report()` logs later.
        if self.begin(signum):
            raise KeyboardInterrupt

    def install(self) -> StopSignals:
        """SIGINT and SIGTERM unwind the command once (`KeyboardInterrupt`), then are ignored
        until the process exits: handlers restored at the end of the command would let a late
        repeat interrupt the interpreter's own exit."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def report(self) -> None:
        """Log the signals ignored so far (from the main thread, outside any handler)."""
        while self._ignored:
            log.warning(
                "already_stopping",
                signal=self._ignored.pop(0),
                action="ignored; wait for the stop to finish (SIGKILL skips the cleanup and "
                "leaves embedded servers running until the next start)",
            )

    def finish(self) -> None:
        """The stop is done: log what was ignored, then let the kernel ignore the rest. Python
        puts its own handlers back to the default while the interpreter exits, and a late repeat
        (uv forwards with a delay) would then kill the process: exit 130 instead of 0."""
        self.report()
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def die_with_parent() -> None:
    """Linux: SIGTERM the calling process when its parent dies, even by SIGKILL (no orphan).
    Usable as `preexec_fn`; one of our children outside our process group needs it."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class StopOnceServer(uvicorn.Server):
    """uvicorn whose signal handler is `StopSignals`': the first signal stops it gracefully, a
    later one neither forces an exit nor is raised again after `run()` returns."""

    def __init__(self, config: uvicorn.Config, stop: StopSignals) -> None:
        super().__init__(config)
        self._stop = stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._stop.begin(sig):
            self.should_exit = True
