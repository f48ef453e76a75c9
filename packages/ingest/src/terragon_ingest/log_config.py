"""Configure structlog once: JSON lines when piped, a human renderer in a terminal.

JSON (piped, or `TERRAGON_LOG_FORMAT=json`) carries every event, for log shipping. In a terminal
at info level a person has to read it: the per-envelope and per-run events (`ROUTINE_EVENTS`)
are folded into one summary line per interval (applied / duplicate / quarantined by reason),
followed by a status line (the URLs), so what `terragon up` printed at start never scrolls
away; `--log-level debug` shows each of them again.

Log values carry text from sandboxes and strangers (header values, upstream errors, ids): the
console renderer and stdlib log lines escape every control character (`kit.terminal`, CONTRACT
§7). JSON lines need nothing more: `json.dumps` (ASCII by default) escapes every control
character, DEL and every non-ASCII character.

One stream, one format: structlog events, stdlib records (uvicorn, httpx, pgserver's multi-line
transcripts) and the output of child processes (`relay_output`: the dashboard, the demo fleet) are
rendered by the same renderer, so piped output is JSON lines, every line, and a terminal sees one
console format whose lines fit its width (`fit_to_terminal`).

The stream is chosen per command (`log_stream`): stdout for the servers (`up`, `serve`,
`dashboard`: their log is their output, `terragon up | head -50`), stderr for a command whose stdout
is its answer (JSON, CSV). It is `sys.stdout`/`sys.stderr` as it is at each write, so a progress
bar's console (which redirects stderr while it draws) prints log lines above the bar instead of
through it; a closed reader (`terragon up | head`) is noticed once (`on_output_closed`) and the rest
of the output goes to /dev/null.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import select
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TextIO

import structlog

from terragon_ingest.kit.terminal import terminal_text

if TYPE_CHECKING:
    import subprocess

    from structlog.typing import EventDict, WrappedLogger

ROUTINE_EVENTS: Final = frozenset(
    {
        # per envelope
        "envelope_decided",
        "envelope_quarantined",
        "envelope_stale_seq",
        "preview_event",
        # per run
        "run_created",
        "run_started",
        "daemon_message_delivered",
        "repo_access_invalidated",
        "legacy_ui_outcome",
        "run_start_sha_unreadable",
        "preview_session_state_changed",
        # per row of a bulk `quarantine replay` (its stdout has the outcome and the totals)
        "quarantine_replayed",
    }
)
"""Events a terminal at info level sees only as counts in the summary line."""
SUMMARY_SECONDS: Final = 10.0

_summary: TerminalSummary | None = None


class Writer(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class TerminalSummary:
    """Counts the routine events (a structlog processor) and prints them as one line per
    interval, with the status line after it, from a daemon thread (`start`)."""

    def __init__(self, level: int, stream: Writer, interval: float = SUMMARY_SECONDS) -> None:
        self.level = level
        self.stream = stream
        self.interval = interval
        self.status: str | None = None
        self._lock = threading.Lock()
        self._outcomes: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._runs = 0
        self._other = 0
        self._lines = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        name = event_dict.get("event")
        if name in ROUTINE_EVENTS:
            self._count(str(name), event_dict)
            raise structlog.DropEvent
        if logging.getLevelNamesMapping().get(method.upper(), logging.INFO) < self.level:
            raise structlog.DropEvent
        with self._lock:
            self._lines += 1
        return event_dict

    def _count(self, name: str, event: EventDict) -> None:
        with self._lock:
            if name == "envelope_decided":
                status = str(event.get("status"))
                self._outcomes[status] += 1
                if event.get("reason"):
                    self._reasons[str(event["reason"])] += 1
                if event.get("legacy_mode"):
                    self._reasons["legacy_mode"] += 1
            elif name == "run_started":
                self._runs += 1
            elif name not in ("envelope_quarantined", "preview_event"):
                self._other += 1  # the envelope's own events are counted by its outcome

    def line(self) -> str | None:
        """The summary of the interval just ended (None when nothing happened and nothing else
        was printed: the last status line is still the last thing on screen)."""
        with self._lock:
            outcomes, reasons = self._outcomes, self._reasons
            runs, other, lines = self._runs, self._other, self._lines
            self._outcomes, self._reasons = Counter(), Counter()
            self._runs = self._other = self._lines = 0
        if not (outcomes or runs or other or lines):
            return None
        parts: list[str] = []
        applied = outcomes.pop("applied", 0)
        if applied:
            legacy = reasons.pop("legacy_mode", 0)
            parts.append(f"{applied} applied" + (f" ({legacy} legacy_mode)" if legacy else ""))
        for status in ("duplicate", "stale_seq"):
            if outcomes.get(status):
                parts.append(f"{outcomes.pop(status)} {status}")
        quarantined = outcomes.pop("quarantined", 0)
        if quarantined:
            by_reason = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()) if n)
            parts.append(f"{quarantined} quarantined ({by_reason})")
        parts += [f"{n} {status}" for status, n in sorted(outcomes.items())]
        if runs:
            parts.append(f"{runs} runs started")
        seconds = f"{self.interval:g}"
        body = " · ".join(parts) if parts else "no envelopes"
        if other:
            body += f" (+{other} routine events: --log-level debug shows them)"
        text = f"{datetime.now(UTC):%H:%M:%S} UTC · last {seconds} s: {body}"
        if self.status:
            text += "\n" + self.status
        return text

    def start(self, status: str) -> None:
        self.status = status
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-summary", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            text = self.line()
            if text:
                self.stream.write(fit_to_terminal(text) + "\n")
                self.stream.flush()


class _Shown:
    """A console log value whose `repr` (what the renderer prints) is already escaped."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_QUOTED = frozenset(" \t=\r\n\"'")
"""structlog's console renderer quotes a str value holding any of these (`repr`)."""
_MULTILINE = frozenset({"exception", "stack", "output"})
"""Keys printed on lines of their own: their line breaks are kept (`output`: a child process's
multi-line text, `relay_output`)."""


def shown_as_text(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The last processor before the console renderer: every key and value escaped, so a log
    line cannot move the cursor, hide text or make a link in the operator's terminal."""
    shown: EventDict = {}
    for key, value in event_dict.items():
        if isinstance(value, str):
            text = terminal_text(value, keep_newlines=key in _MULTILINE)
            if text != value and key not in _MULTILINE and key != "event" and _QUOTED & set(value):
                # the renderer would `repr` it: quote the escaped text once, not escape it twice
                value = _Shown("'" + text + "'")
            else:
                value = text
        elif not isinstance(value, (int, float, bool)) and value is not None:
            text = repr(value)
            if (escaped := terminal_text(text)) != text:
                value = _Shown(escaped)
        shown[terminal_text(str(key))] = value
    return shown


_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")


def terminal_width() -> int | None:
    """The columns of the terminal the log goes to (`COLUMNS` wins, as for every other
    program); None when the log's stream is not a terminal (nothing to fit)."""
    with contextlib.suppress(ValueError):
        columns = int(os.environ.get("COLUMNS", ""))  # lint-skip: environ, a terminal's convention
        if columns > 0:
            return columns
    try:
        return os.get_terminal_size(_stream.fd).columns or None
    except OSError:
        return None


def fit_to_terminal(text: str, width: int | None = None) -> str:
    """`text` with every line longer than the terminal wrapped at word boundaries (a word
    longer than the line, e.g. a URL, is folded): a line the terminal wraps by itself would
    push the URLs off the last screen sooner and break its own colours. Colours are kept."""
    width = width or terminal_width()
    if width is None:
        return text
    from rich.cells import cell_len

    lines = text.split("\n")
    if all(cell_len(_ANSI.sub("", line)) <= width for line in lines):
        return text  # the common case: nothing to do
    import io

    from rich.console import Console
    from rich.text import Text

    console = Console(
        width=width,
        file=io.StringIO(),
        force_terminal=True,
        color_system="standard",
        highlight=False,
        emoji=False,
        markup=False,
        legacy_windows=False,
    )
    fitted: list[str] = []
    for line in lines:
        if cell_len(_ANSI.sub("", line)) <= width:
            fitted.append(line)
            continue
        with console.capture() as capture:
            console.print(Text.from_ansi(line), overflow="fold", crop=False)
        fitted += capture.get().rstrip("\n").split("\n")
    return "\n".join(fitted)


class _ConsoleLines:
    """structlog's console renderer, then a child's multi-line `output` below the line (as the
    renderer prints a traceback), then every line fitted to the terminal's width."""

    def __init__(self) -> None:
        # no padding after the event name: an 80-column terminal keeps room for the values
        self._inner = structlog.dev.ConsoleRenderer(pad_event_to=0)

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        output = event_dict.pop("output", None)
        text = str(self._inner(logger, name, event_dict))
        if output:
            text += "\n" + "\n".join("    " + line for line in str(output).split("\n"))
        return fit_to_terminal(text)


OutputClosed = Callable[[], None]
LogStream = Literal["stdout", "stderr"]

SERVER_COMMANDS: Final = frozenset({"up", "serve", "dashboard"})


def log_stream(command: str | None) -> LogStream:
    """Where `terragon COMMAND` logs. A server's log is its output (`terragon up | head -50`,
    `| jq`), so stdout; every other command answers on stdout (JSON lines, CSV, a table) and
    logs beside it on stderr, so `| jq` reads only the answer."""
    return "stdout" if command in SERVER_COMMANDS else "stderr"


class _LogStream:
    """Where every log line goes: `sys.stdout` or `sys.stderr` (`name`) as it is at each write
    (a rich progress bar replaces it with a proxy that prints above the bar while the bar is
    drawn). A reader that went away (EPIPE: `terragon up | head -50`) is noticed once: the
    stream's file descriptor then points at /dev/null (nothing later, not even the interpreter's
    exit flushing `sys.stdout`, fails on it) and the `on_output_closed` callbacks run, so a
    server can stop cleanly instead of failing in the middle of a write."""

    def __init__(self) -> None:
        self.name: LogStream = "stderr"
        self.closed = False
        self.callbacks: list[OutputClosed] = []
        self._lock = threading.Lock()

    @property
    def fd(self) -> int:
        return 1 if self.name == "stdout" else 2

    def _target(self) -> TextIO:
        return sys.stdout if self.name == "stdout" else sys.stderr

    def write(self, text: str) -> int:
        if not self.closed:
            try:
                self._target().write(text)
            except OSError as exc:
                self._broken(exc)
        return len(text)

    def flush(self) -> None:
        if not self.closed:
            try:
                self._target().flush()
            except OSError as exc:
                self._broken(exc)

    def isatty(self) -> bool:
        return self._target().isatty()

    def _broken(self, exc: OSError) -> None:
        if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
            raise exc
        with self._lock:
            if self.closed:
                return
            self.closed = True
            callbacks = list(self.callbacks)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.fd)
        os.close(devnull)
        for callback in callbacks:
            callback()


_stream = _LogStream()
_json_logs = True
CACHE_LOGGERS = True
"""structlog's loggers keep the configuration of their first use (faster). The test session turns
it off: one process configures logging many times there, and a logger cached under one test's
level would hide the events of every later test from `structlog.testing.capture_logs`."""


def on_output_closed(callback: OutputClosed) -> Callable[[], None]:
    """Run `callback` once if the log's reader goes away (from the thread that noticed, so it
    must only signal); returns a function that removes it."""
    _stream.callbacks.append(callback)
    return lambda: _stream.callbacks.remove(callback) if callback in _stream.callbacks else None


def console_logging() -> bool:
    """Logs are for a person (the console renderer), not for a machine (JSON lines)."""
    return not _json_logs


def logs_to_terminal(stream: LogStream) -> bool:
    """`stream` is a terminal: the default log format there is the console's, else JSON."""
    return (sys.stdout if stream == "stdout" else sys.stderr).isatty()


def configure_logging(
    level: str = "info", *, json: bool = True, stream: LogStream = "stderr"
) -> None:
    """Every log line of this process, to `stream` (`log_stream` chooses it per command)."""
    global _summary, _json_logs
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _json_logs = json
    _stream.name = stream
    if _summary is not None:
        _summary.stop()
        _summary = None
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    foreign: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,  # "uvicorn.error", "httpx", "pgserver"
    ]
    wrapper_level = numeric
    # One line per request of the HTTP clients (the preview proxy's upstream calls, alert
    # hooks): their callers log what matters; `--log-level debug` shows them.
    quiet = {"httpx": logging.WARNING, "httpcore": logging.WARNING}
    if not json and numeric > logging.DEBUG:
        _summary = TerminalSummary(numeric, _stream)
        processors.append(_summary)
        foreign.append(_summary)  # counts the line, so the status line is printed again
        wrapper_level = logging.DEBUG  # routine debug events reach the summary to be counted
        # the embedded PostgreSQL's command transcripts: noise on a terminal, kept in JSON
        quiet["pgserver"] = logging.WARNING
    for name in ("httpx", "httpcore", "pgserver"):
        chosen = quiet.get(name, logging.NOTSET)
        logging.getLogger(name).setLevel(chosen if numeric > logging.DEBUG else logging.NOTSET)
    renderers: list[structlog.typing.Processor] = (
        [structlog.processors.JSONRenderer()] if json else [shown_as_text, _ConsoleLines()]
    )
    tail: list[structlog.typing.Processor] = [
        # a person reads the time of day (UTC, as the summary line says); a machine the instant
        structlog.processors.TimeStamper(fmt="iso" if json else "%H:%M:%S", utc=True),
        structlog.processors.format_exc_info,
    ]
    handler = logging.StreamHandler(_stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*foreign, *tail],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "terragon", False)]:
        root.removeHandler(old)  # ours from an earlier call; others' (pytest's) stay
    handler.terragon = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    structlog.configure(
        processors=[*processors, *tail, *renderers],
        wrapper_class=structlog.make_filtering_bound_logger(wrapper_level),
        logger_factory=structlog.PrintLoggerFactory(_stream),  # type: ignore[arg-type]
        cache_logger_on_first_use=CACHE_LOGGERS,
    )


def start_status_line(status: str) -> None:
    """In a terminal at info level, print the summary and then `status` every interval
    (`terragon up`: the URLs); a no-op for JSON logs."""
    if _summary is not None:
        _summary.start(status)


def stop_status_line() -> None:
    if _summary is not None:
        _summary.stop()


def announce(event: str, text: str, **fields: Any) -> None:
    """What a command says to the operator (`terragon up`'s banner, its stop): `text` for a
    person (fitted to the terminal), the event and its fields as one JSON line for a machine."""
    if _json_logs:
        structlog.get_logger().info(event, **fields)
        return
    _stream.write(fit_to_terminal(terminal_text(text, keep_newlines=True)) + "\n")
    _stream.flush()
    if _summary is not None:
        with _summary._lock:
            _summary._lines += 1


# -- child processes' output -------------------------------------------------------------------

_LINE_MAX: Final = 64 * 1024
"""A longer line from a child is cut there (its rest is the next line): a child that writes
without a newline cannot grow this process's memory."""
_BLOCK_LINES: Final = 200
_QUIET_SECONDS: Final = 0.2
"""Lines of plain text that come together (a traceback, Streamlit's start banner) within this
long of each other are one event."""
_LEVELS: Final = frozenset({"debug", "info", "warning", "error", "critical"})
_LEVEL_PREFIX: Final = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):\s+")
"""uvicorn's own line format (`INFO:     Started server process`)."""


class _Relay:
    """One pipe of a child: JSON lines re-emitted as the events they are, plain text folded
    into one `<name>_output` event per burst of lines."""

    def __init__(self, name: str, stream: str, fd: int) -> None:
        self.name, self.stream, self.fd = name, stream, fd
        self.default = "info" if stream == "stdout" else "warning"
        self.log = structlog.get_logger()  # bound at its first line, as logging is then
        self._block: list[str] = []
        self._level: str | None = None

    def run(self) -> None:
        pending = b""
        try:
            while True:
                timeout = _QUIET_SECONDS if self._block else None
                ready, _, _ = select.select([self.fd], [], [], timeout)
                if not ready:
                    self._flush()
                    continue
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                while len(pending) > _LINE_MAX:
                    lines.append(pending[:_LINE_MAX])
                    pending = pending[_LINE_MAX:]
                for line in lines:
                    self._line(line.decode("utf-8", errors="replace").rstrip("\r"))
            if pending:
                self._line(pending.decode("utf-8", errors="replace"))
            self._flush()
        except Exception as exc:  # never let a relay thread die silently
            self.log.error("output_relay_failed", process=self.name, error=repr(exc))
        finally:
            with contextlib.suppress(OSError):
                os.close(self.fd)

    def _line(self, line: str) -> None:
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and isinstance(event.get("event"), str):
                    self._flush()
                    self._event(event)
                    return
        if not line.strip():
            if self._block:
                self._block.append("")
            return
        prefix = _LEVEL_PREFIX.match(line)
        size = sum(len(part) for part in self._block) + len(line)
        if prefix or len(self._block) >= _BLOCK_LINES or size > _LINE_MAX:
            self._flush()  # an event stays bounded, however much a child writes at once
        if prefix:  # one line of its own, at its own level
            self._block, self._level = [line[prefix.end() :]], prefix.group(1).lower()
            self._flush()
            return
        self._block.append(line)

    def _flush(self) -> None:
        block, level = self._block, self._level
        self._block, self._level = [], None
        while block and not block[-1].strip():
            block.pop()
        if not block:
            return
        text = textwrap.dedent("\n".join(block))
        if level is None:
            level = "error" if "Traceback (most recent call last)" in text else self.default
        fields: dict[str, Any] = {"process": self.name, "stream": self.stream}
        if len(block) == 1:
            fields["text"] = text.strip()
        else:
            fields["output"] = text
        self.log.log(logging.getLevelNamesMapping()[level.upper()], f"{self.name}_output", **fields)

    def _event(self, event: dict[str, Any]) -> None:
        name = str(event.pop("event"))
        level = str(event.pop("level", "info")).lower()
        event.pop("timestamp", None)  # stamped again as it is re-emitted, a moment later
        fields = {str(k): v for k, v in event.items()}
        fields.setdefault("process", self.name)
        level = level if level in _LEVELS else "info"
        self.log.log(logging.getLevelNamesMapping()[level.upper()], name, **fields)


def relay_output(process: subprocess.Popen[bytes], name: str) -> list[threading.Thread]:
    """Read a child's stdout and stderr (started with `stdout=PIPE, stderr=PIPE`) on threads
    and log every line of it: one format for the whole of `terragon up`'s output. `name` names
    the child (`dashboard`, `demo`). Join the threads after the child exits: they end at EOF."""
    threads = []
    for stream, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
        if pipe is None:
            continue
        fd = os.dup(pipe.fileno())  # the relay owns (and closes) its descriptor
        pipe.close()
        relay = _Relay(name, stream, fd)
        thread = threading.Thread(target=relay.run, name=f"{name}-{stream}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def wait_relays(threads: list[threading.Thread], timeout: float = 5.0) -> None:
    """After the child exited: let its last lines through (bounded: a grandchild holding the
    pipe open must not hold the stop)."""
    for thread in threads:
        thread.join(timeout)
