"""Logs for people and for machines (issue 24 item 5): one format for every line, whoever wrote
it (structlog, a stdlib library, a child process); console lines that fit the terminal; a reader
that goes away stops nothing but the output."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest
import structlog
from rich.cells import cell_len

from terragon_ingest import log_config

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(name="captured")
def fx_captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], io.StringIO]]:
    """`captured(json)`: logging configured as asked, writing to a buffer in place of stderr
    (set in the test's body: pytest sets its own stderr after the fixtures); afterwards logging
    as tests/conftest.py set it."""
    monkeypatch.setenv("COLUMNS", "80")

    def start(json_logs: bool) -> io.StringIO:
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        log_config.configure_logging("info", json=json_logs)
        return err

    try:
        yield start
    finally:
        log_config.stop_status_line()
        monkeypatch.undo()
        log_config.configure_logging("info", json=True)


def _widths(text: str) -> list[int]:
    return [cell_len(ANSI.sub("", line)) for line in text.split("\n")]


def test_a_long_console_line_is_wrapped_to_the_width_and_keeps_every_character() -> None:
    line = (
        "\x1b[2m05:59:30\x1b[0m [\x1b[32minfo     \x1b[0m] \x1b[1mdashboard_output\x1b[0m "
        + " ".join(f"key{i}=value-{i}" for i in range(30))
        + " url=http://127.0.0.1:8000/"
        + "x" * 200
    )
    fitted = log_config.fit_to_terminal(line, 80)
    assert max(_widths(fitted)) <= 80, fitted
    assert len(fitted.split("\n")) > 3
    strip = re.compile(r"\s")
    assert strip.sub("", ANSI.sub("", fitted)) == strip.sub("", ANSI.sub("", line))
    short = "05:59:30 [info     ] demo_round_started round=1"
    assert log_config.fit_to_terminal(short, 80) == short  # nothing to do: the same text


def test_wide_characters_count_as_two_columns() -> None:
    fitted = log_config.fit_to_terminal("repo=" + "漢" * 60, 40)
    assert max(_widths(fitted)) <= 40


def test_every_console_line_fits_the_terminal(captured: Callable[[bool], io.StringIO]) -> None:
    """structlog events, a stdlib record (uvicorn's), the banner and the summary with its
    status line: every line the console renderer writes fits 80 columns."""
    err = captured(False)
    log = structlog.get_logger()
    log.warning(
        "archive_differs",
        day="2026-12-06",
        action="run `uv run terragon archive rollup --rebuild-day 2026-12-06 --dry-run` first "
        "and read what it would change before anything else",
        path="/very/long/" + "segment/" * 20,
    )
    logging.getLogger("a.library").warning("Invalid HTTP request received. " * 5)
    log_config.announce("terragon_up", "terragon is up\n  API        " + "http://h:1/" * 12)
    summary = log_config.TerminalSummary(logging.INFO, err)
    summary.status = "  API http://127.0.0.1:8000 · dashboard http://127.0.0.1:8501 · demo " * 2
    decided = [{"status": "applied"}, {"status": "quarantined", "reason": "missing_run_id"}]
    for _ in range(3):
        for fields in decided:
            with pytest.raises(structlog.DropEvent):  # counted, not printed
                summary(None, "debug", {"event": "envelope_decided", **fields})
    text = summary.line()
    assert text is not None
    err.write(log_config.fit_to_terminal(text) + "\n")
    output = err.getvalue()
    assert "archive_differs" in output and "Invalid HTTP request" in output
    assert "terragon is up" in output and "3 quarantined" in output
    assert max(_widths(output)) <= 80, output


def test_piped_every_line_is_one_json_object(
    captured: Callable[[bool], io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pgserver's multi-line transcript, uvicorn's and httpx's records, the banner: JSON lines,
    the multi-line text folded into one event."""
    err = captured(True)
    # as `up` leaves uvicorn's loggers (log_config=None); an in-process server of another test
    # may have given them handlers of their own
    for name in ("uvicorn", "uvicorn.error"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    logging.getLogger("pgserver").info(
        "Successful postgres command %s\nstdout:\n%s\n---\nstderr:\n\n---\n",
        ["initdb", "-D", "/x"],
        "fixing permissions ... ok\ncreating subdirectories ... ok",
    )
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("httpx").warning("HTTP Request: GET http://upstream/ 502")
    logging.getLogger("httpx").info("HTTP Request: GET http://upstream/ 200")  # per request
    log_config.announce("terragon_up", "terragon is up\n  API  http://x", api="http://x")
    lines = err.getvalue().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["event"].split("\n")[0] for e in events] == [
        "Successful postgres command ['initdb', '-D', '/x']",
        "Invalid HTTP request received.",
        "HTTP Request: GET http://upstream/ 502",
        "terragon_up",
    ]
    assert events[0]["logger"] == "pgserver" and "creating subdirectories" in events[0]["event"]
    assert events[1]["level"] == "warning" and events[1]["logger"] == "uvicorn.error"
    assert events[3]["api"] == "http://x"


CHILD = textwrap.dedent(
    r"""
    import json, sys, time
    out, err = sys.stdout, sys.stderr
    out.write("\n  You can now view your Streamlit app in your browser.\n\n  URL: http://h:1\n\n")
    out.flush()
    time.sleep(0.5)
    err.write(json.dumps({"event": "dashboard_signed_in", "level": "info",
                          "timestamp": "t", "client": "1.2.3.4"}) + "\n")
    err.write(json.dumps({"event": "x", "level": "\x1b[2Jloud", "who": "\x1b]8;;evil\x07"}) + "\n")
    err.write("INFO:     Started server process [1]\n")
    err.flush()
    time.sleep(0.5)
    err.write("Traceback (most recent call last):\n  File \"x\", line 1\nValueError: b\x1b[8m\n")
    err.flush()
    time.sleep(0.5)
    err.write("y" * 200_000)  # no newline: cut into bounded events
    err.flush()
    """
)


@pytest.mark.parametrize("json_logs", [True, False], ids=["json", "console"])
def test_a_childs_output_becomes_events_of_the_same_format(
    captured: Callable[[bool], io.StringIO], json_logs: bool
) -> None:
    err = captured(json_logs)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    threads = log_config.relay_output(child, "dashboard")
    assert child.wait(30) == 0
    log_config.wait_relays(threads, 10)
    assert not any(t.is_alive() for t in threads)
    output = err.getvalue()
    assert "\x1b[2J" not in output and "\x1b]8" not in output and "\x1b[8m" not in output
    if not json_logs:
        assert max(_widths(output)) <= 80
        assert "dashboard_signed_in" in output and "You can now view" in output
        return
    events = [json.loads(line) for line in output.splitlines()]  # every line, JSON
    by_name: dict[str, list[dict[str, object]]] = {}
    for event in events:
        by_name.setdefault(str(event["event"]), []).append(event)
    [signed_in] = by_name["dashboard_signed_in"]
    assert signed_in["client"] == "1.2.3.4" and signed_in["process"] == "dashboard"
    [hostile] = by_name["x"]
    assert hostile["level"] == "info" and hostile["who"] == "\x1b]8;;evil\x07"  # JSON-escaped
    texts = by_name["dashboard_output"]
    banner = next(e for e in texts if "You can now view" in str(e.get("output", "")))
    assert banner["output"] == (
        "You can now view your Streamlit app in your browser.\n\nURL: http://h:1"
    )
    assert banner["level"] == "info" and banner["stream"] == "stdout"
    started = next(e for e in texts if e.get("text") == "Started server process [1]")
    assert started["level"] == "info"
    crash = next(e for e in texts if "Traceback" in str(e.get("output", "")))
    assert crash["level"] == "error" and "ValueError" in str(crash["output"])
    long_lines = [e for e in texts if str(e.get("text", "")).startswith("y")]
    assert sum(len(str(e["text"])) for e in long_lines) == 200_000
    assert max(len(str(e["text"])) for e in long_lines) <= 64 * 1024


def test_servers_log_on_stdout_and_data_commands_on_stderr() -> None:
    """A server's log is its output (`terragon up | head -50`); a data command's stdout is its
    answer (`terragon archive sql … | jq`), so its log goes beside it."""
    for server in ("up", "serve", "dashboard"):
        assert log_config.log_stream(server) == "stdout", server
    for command in ("archive", "quarantine", "retention", "tokens", "migrate", "maintenance", None):
        assert log_config.log_stream(command) == "stderr", command


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_closed_reader_is_noticed_once_and_the_process_carries_on(stream: str) -> None:
    """`terragon up | head -1`: the write that meets the closed pipe runs the callback (which
    stops `up`), and nothing after it fails: not the log, not the interpreter's exit (which
    flushes `sys.stdout`: "Exception ignored ... BrokenPipeError" must not be printed)."""
    other = "stderr" if stream == "stdout" else "stdout"
    script = textwrap.dedent(
        f"""
        import sys, threading, structlog
        from terragon_ingest import log_config
        log_config.configure_logging("info", json=True, stream="{stream}")
        closed = threading.Event()
        log_config.on_output_closed(closed.set)
        log = structlog.get_logger()
        for n in range(100_000):
            log.info("tick", n=n)
            if closed.is_set():
                break
        assert closed.is_set()
        for n in range(10):
            log.info("after", n=n)  # to /dev/null now: no BrokenPipeError
        print("still writing", file=sys.{stream})
        print("the other stream", file=sys.{other}, flush=True)
        sys.exit(7)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    log, rest = (child.stdout, child.stderr) if stream == "stdout" else (child.stderr, child.stdout)
    assert log is not None and rest is not None
    first = log.readline()
    assert json.loads(first)["event"] == "tick"
    log.close()  # as `head -1` exits
    assert child.wait(60) == 7  # its own exit: not 1 (an exception) or 120 (a failed flush)
    assert rest.read() == b"the other stream\n"  # no traceback, no "Exception ignored"
