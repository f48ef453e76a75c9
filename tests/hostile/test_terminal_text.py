"""A sandbox writes to an operator's terminal (CONTRACT §7): text that came from a sandbox or a
stranger is shown as text.

A quarantined payload (and a header value) holding an OSC 8 hyperlink, `ESC[8m` (hidden),
`ESC[7m` (reversed), `ESC[2J` (clear screen), an 8-bit CSI, DEL, a right-to-left override and
rich markup (`[link=…]`, `[reverse]`, `[conceal]`) is printed by the real commands, in a
terminal-like environment (`FORCE_COLOR`, `TERM`: rich renders as it would on a terminal): no
markup is interpreted, every control character is escaped (`\\x1b`), nothing can move the
cursor, hide text or make a link.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest

from terragon_ingest.archive import repository
from terragon_ingest.archive.rollup import rollup
from tests.dashboard.seed import Row, connect, ensure_day_partitions, insert_quarantine, utc_day
from tests.fixtures.net import free_port
from tests.fixtures.processes import OutputLines, terragon_serving
from tests.fixtures.settings import good_secrets
from tests.fixtures.waiting import wait_until
from tests.ingest.cli.test_cli_up import TERRAGON

OSC8_LINK = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"
HOSTILE = (
    f'{{"threadId": "t", "note": "{OSC8_LINK} \x1b[8mhidden\x1b[0m \x1b[7mreversed\x1b[0m '
    "\x1b[2J\x1b[H [link=https://evil.example/]markup link[/link] [reverse]rev[/reverse] "
    '[conceal]secret[/conceal] \x9b2J \x7f \u202eevil\u202c \r overwritten"}'
)
"""What a sandbox put in its envelope (every byte here reached the archive and the database)."""

LIVE_SEQUENCES = {
    "OSC (hyperlink)": "\x1b]",
    "ESC[8m (conceal)": "\x1b[8m",
    "ESC[7m (reverse)": "\x1b[7m",
    "ESC[2J (clear screen)": "\x1b[2J",
    "ESC[H (cursor home)": "\x1b[H",
    "8-bit CSI": "\x9b",
    "DEL": "\x7f",
    "right-to-left override": "\u202e",
    "pop directional formatting": "\u202c",
    "carriage return": "\r",
}
"""None of these may reach the terminal from the payload (rich's own styling, e.g. `ESC[1m` for a
bold header, may)."""


def _assert_inert(output: str) -> None:
    live = [name for name, seq in LIVE_SEQUENCES.items() if seq in output]
    assert not live, f"{live} reached the terminal: {output!r}"


def _assert_shown_as_text(output: str) -> None:
    """The payload is there, as text: markup literally, control characters escaped."""
    _assert_inert(output)
    for literal in (
        "[link=https://evil.example/]markup link[/link]",
        "[reverse]rev[/reverse]",
        "[conceal]secret[/conceal]",
        "\\x1b[8mhidden",
        "\\x1b]8;;https://evil.example/",
        "\\x1b[2J",
        "\\x9b2J",
        "\\u202eevil",
    ):
        assert literal in output, f"{literal!r} not shown: {output!r}"


def _terminal_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAGON_", "PROMETHEUS_"))}
    # What rich looks at to decide it is on a colour terminal (it then emits OSC 8 for [link]).
    env |= {"FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "500", "LINES": "50"}
    env.pop("NO_COLOR", None)
    return env | extra


def _terragon(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [TERRAGON, "--log-format", "json", *args],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode("utf-8", errors="surrogateescape")


@pytest.fixture(name="hostile_row")
def fx_hostile_row(database_url: str, tmp_path: Path) -> Row:
    row = Row(at=utc_day(-2, hour=3))
    with connect(database_url) as conn:
        ensure_day_partitions(conn, row.at.date(), 1)
        insert_quarantine(conn, [row])
        conn.execute(
            "UPDATE daemon_event_quarantine SET payload_prefix_2k = %s, payload_inline = %s, "
            "payload_size = %s, payload_hash = %s WHERE id = %s",
            (HOSTILE, HOSTILE, len(HOSTILE.encode()), sha256(HOSTILE.encode()).hexdigest(), row.id),
        )
    with repository.connect(database_url) as conn:
        rollup(conn, tmp_path / "archive", settle_seconds=60)
    return row


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_archive_sql_prints_payload_markup_and_controls_as_text(
    database_url: str, tmp_path: Path, hostile_row: Row, fmt: str
) -> None:
    env = _terminal_env(TERRAGON_DATA_DIR=str(tmp_path))
    query = "SELECT reason, payload_prefix_2k FROM quarantine_rows"
    output = _terragon(env, "archive", "sql", "--format", fmt, query)
    if fmt == "csv":
        output = output.replace("\r\n", "\n")  # CSV's own line ends (RFC 4180)
    assert hostile_row.reason.value in output  # the row was printed
    _assert_shown_as_text(output)


def test_archive_sql_json_is_inert_and_gives_back_the_exact_payload(
    database_url: str, tmp_path: Path, hostile_row: Row
) -> None:
    env = _terminal_env(TERRAGON_DATA_DIR=str(tmp_path))
    output = _terragon(env, "archive", "sql", "--format", "json", "SELECT * FROM quarantine_rows")
    _assert_inert(output)
    [row] = json.loads(output)
    assert row["payload_prefix_2k"] == HOSTILE  # escaped by JSON, not altered


def test_quarantine_show_and_list_are_inert_and_lossless(
    database_url: str, hostile_row: Row
) -> None:
    env = _terminal_env(DATABASE_URL=database_url)
    shown = _terragon(env, "quarantine", "show", hostile_row.id)
    _assert_inert(shown)
    assert json.loads(shown)["payloadPrefix2k"] == HOSTILE
    listed = _terragon(env, "quarantine", "list")
    _assert_inert(listed)
    assert [json.loads(line)["payloadPrefix2k"] for line in listed.splitlines()] == [HOSTILE]


def test_quarantine_show_payload_prints_the_envelope_as_text(
    database_url: str, hostile_row: Row
) -> None:
    env = _terminal_env(DATABASE_URL=database_url)
    output = _terragon(env, "quarantine", "show", "--payload", hostile_row.id)
    _assert_shown_as_text(output)


# --- console logs ---------------------------------------------------------------------------


@pytest.fixture(name="console_serve")
def fx_console_serve(
    database_url: str, valkey_url: str, tmp_path: Path
) -> Iterator[tuple[int, OutputLines]]:
    """`terragon serve` logging to a console (the dev renderer), as an operator watches it."""
    port = free_port()
    env = _terminal_env(
        DATABASE_URL=database_url,
        VALKEY_URL=valkey_url,
        TERRAGON_DATA_DIR=str(tmp_path),
        TERRAGON_BACKGROUND_JOBS="false",
        **good_secrets(),
    )
    args = ["--log-format", "console", "--log-level", "debug", "serve", "--port", str(port)]
    with terragon_serving(args, env, port) as lines:
        yield port, lines


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(65536)


def test_a_header_value_in_a_console_log_line_is_escaped(
    console_serve: tuple[int, OutputLines],
) -> None:
    """The HTTP parser refuses C0 controls in a header, but bytes 0x80-0xFF pass and are read as
    Latin-1: `\x9b` is the 8-bit CSI (`ESC[`), which a terminal may act on like `ESC[`."""
    port, lines = console_serve
    # No space in it: the console renderer quotes (and so `repr`-escapes) a value with a space.
    delivery = b"d-1\x9b2J\x9bH\x9b8mgone\xe2\x80\xae"
    answer = _raw_request(
        port,
        b"POST /api/webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"X-GitHub-Event: member\r\nX-GitHub-Delivery: " + delivery + b"\r\n"
        b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer
    wait_until(
        lambda: any("github_webhook_signature_rejected" in ln for ln in lines.lines),
        10,
        "the rejection's log line",
    )
    [line] = [ln for ln in lines.lines if "github_webhook_signature_rejected" in ln]
    _assert_inert(line)
    assert "\x80" not in line, line  # the C1 control inside the Latin-1 reading of U+202E
    assert "d-1\\x9b2J\\x9bH\\x9b8mgone\u00e2\\x80\u00ae" in line, line


def test_the_console_renderer_escapes_every_value_it_prints() -> None:
    """Whatever reaches a log call (an upstream's error text, a decoded id): the dev console
    renderer prints it escaped; a traceback keeps its line breaks."""
    script = textwrap.dedent(
        """
        import structlog
        from terragon_ingest.log_config import configure_logging
        configure_logging("info", json=False)
        log = structlog.get_logger()
        log.warning("upstream_failed", error="x \\x1b[2J\\x1b]8;;https://evil.example/\\x07y",
                    nested=["\\x1b[8m", {"k": "\\u202e"}], **{"k\\x1b[7m": 1})
        try:
            raise ValueError("boom \\x1b[2J")
        except ValueError:
            log.exception("crashed")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=_terminal_env(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    output = done.stderr.decode("utf-8", errors="surrogateescape")
    _assert_inert(output)
    assert "\x1b[8m" not in output and "\x1b[7m" not in output
    assert "x \\x1b[2J\\x1b]8;;https://evil.example/\\x07y" in output, output
    assert "boom \\x1b[2J" in output, output
    assert "Traceback (most recent call last):\n" in output, output  # line breaks kept
