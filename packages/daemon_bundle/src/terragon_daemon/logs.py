"""Structured logging on the standard library: `event key=value ...` lines on stderr.

Every line reads `ts=... level=info logger=terragon_daemon.run event=batch_sealed seq=3 ...`.
Event names are snake_case and match the ingest service's. Tokens are never logged.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Final

_SAFE: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@+,")


def _format_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and all(ch in _SAFE for ch in text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def kv(event: str, **fields: object) -> str:
    """`event k=v ...`: the message of one structured log line."""
    parts = [event, *(f"{key}={_format_value(value)}" for key, value in fields.items())]
    return " ".join(parts)


def log_event(logger: logging.Logger, level: int, event: str, **fields: object) -> None:
    """Log `event` with key/value fields, formatting only when the level is enabled."""
    if logger.isEnabledFor(level):
        logger.log(level, kv(event, **fields))


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
        line = (
            f"ts={ts} level={record.levelname.lower()} logger={record.name} "
            f"event={record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "info") -> None:
    """Send the daemon's logs to stderr in the key=value format (idempotent)."""
    root = logging.getLogger("terragon_daemon")
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.propagate = False
