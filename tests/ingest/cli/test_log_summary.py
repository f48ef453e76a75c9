"""The terminal's summary line (issue 15): routine events are counted, not printed; the line says
what happened per outcome and reason, then the status line; nothing is printed for a quiet
interval with nothing else on screen."""

from __future__ import annotations

import io
import logging
import sys

import pytest
import structlog

from terragon_ingest.log_config import TerminalSummary


def _feed(summary: TerminalSummary, method: str, **event: object) -> bool:
    """True when the event goes on to be printed."""
    try:
        summary(None, method, dict(event))
    except structlog.DropEvent:
        return False
    return True


def test_routine_events_become_one_line_with_the_status() -> None:
    summary = TerminalSummary(logging.INFO, io.StringIO())
    summary.status = "  API http://127.0.0.1:8000"
    decided = [("applied", None, False)] * 3 + [("applied", None, True)] * 2
    decided += [("duplicate", None, False), ("quarantined", "mismatch", False)]
    decided += [("quarantined", "missing_run_id", False)] * 2
    for status, reason, legacy in decided:
        assert not _feed(
            summary,
            "debug",
            event="envelope_decided",
            status=status,
            reason=reason,
            legacy_mode=legacy,
        )
    for name in (
        "envelope_quarantined",
        "preview_event",
        "run_started",
        "daemon_message_delivered",
    ):
        assert not _feed(summary, "info", event=name)
    assert not _feed(summary, "debug", event="something_at_debug")  # below the level: dropped
    assert _feed(summary, "warning", event="envelope_unavailable")  # printed as it comes
    line = summary.line()
    assert line is not None
    first, status = line.split("\n")
    assert (
        "last 10 s: 5 applied (2 legacy_mode) · 1 duplicate · 3 quarantined (mismatch 1, missing_run_id 2) · 1 runs started"
        in first
    )
    assert "(+1 routine events" in first
    assert status == "  API http://127.0.0.1:8000"
    assert summary.line() is None  # a quiet interval prints nothing: the status is still on screen


@pytest.mark.parametrize("json_logs", [True, False])
def test_configure_logging_folds_only_on_a_terminal(
    json_logs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from terragon_ingest import log_config

    err = io.StringIO()
    try:
        with monkeypatch.context() as m:
            m.setattr(sys, "stderr", err)
            log_config.configure_logging("info", json=json_logs)
            structlog.get_logger("t").info("envelope_quarantined", reason="mismatch")
            log_config.stop_status_line()
    finally:  # as tests/conftest.py configures it, on the real stderr again
        log_config.configure_logging("info", json=True)
    assert ("envelope_quarantined" in err.getvalue()) is json_logs
