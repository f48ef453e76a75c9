"""The dashboard's own log lines: one JSON object per line on stderr (`event`, `level`,
`timestamp`, then the fields), the shape `terragon`'s JSON logs have, so whoever reads `terragon
up`'s output parses them alike. Values from a stranger (a Host header) are JSON-escaped: no
control character reaches a terminal raw."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_logger = logging.getLogger("terragon_dashboard")
if not _logger.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    _logger.addHandler(_handler)
    _logger.setLevel(logging.INFO)
    _logger.propagate = False


def event(level: str, name: str, **fields: object) -> None:
    """Log `name` (snake_case; say what to do in an `action` field)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    line = {"event": name, "level": level, "timestamp": now, **fields}
    _logger.log(
        logging.getLevelNamesMapping()[level.upper()],
        json.dumps(line, ensure_ascii=True, default=str),
    )
