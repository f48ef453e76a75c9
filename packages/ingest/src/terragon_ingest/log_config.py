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
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TextIO

import structlog

from terragon_ingest.kit.terminal import terminal_text

if TYPE_CHECKING:
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
    }
)
"""Events a terminal at info level sees only as counts in the summary line."""
SUMMARY_SECONDS: Final = 10.0

_summary: TerminalSummary | None = None


class TerminalSummary:
    """Counts the routine events (a structlog processor) and prints them as one line per
    interval, with the status line after it, from a daemon thread (`start`)."""

    def __init__(self, level: int, stream: TextIO, interval: float = SUMMARY_SECONDS) -> None:
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
                print(text, file=self.stream, flush=True)


class _Shown:
    """A console log value whose `repr` (what the renderer prints) is already escaped."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_QUOTED = frozenset(" \t=\r\n\"'")
"""structlog's console renderer quotes a str value holding any of these (`repr`)."""
_MULTILINE = frozenset({"exception", "stack"})
"""Keys the renderer prints on lines of their own: their line breaks are kept."""


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


class _TextFormatter(logging.Formatter):
    """Stdlib log lines (uvicorn, libraries) with their control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_text(super().format(record), keep_newlines=True)


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    global _summary
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TextFormatter("%(message)s"))
    logging.basicConfig(handlers=[handler], level=numeric)
    if _summary is not None:
        _summary.stop()
        _summary = None
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    wrapper_level = numeric
    if not json and numeric > logging.DEBUG:
        _summary = TerminalSummary(numeric, sys.stderr)
        processors.append(_summary)
        wrapper_level = logging.DEBUG  # routine debug events reach the summary to be counted
        # the embedded PostgreSQL's command transcripts: noise on a terminal, kept in JSON
        logging.getLogger("pgserver").setLevel(logging.WARNING)
    renderers: list[structlog.typing.Processor] = (
        [structlog.processors.JSONRenderer()]
        if json
        else [shown_as_text, structlog.dev.ConsoleRenderer()]
    )
    structlog.configure(
        processors=[
            *processors,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(wrapper_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def start_status_line(status: str) -> None:
    """In a terminal at info level, print the summary and then `status` every interval
    (`terragon up`: the URLs); a no-op for JSON logs."""
    if _summary is not None:
        _summary.start(status)


def stop_status_line() -> None:
    if _summary is not None:
        _summary.stop()
