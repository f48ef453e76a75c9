"""The daemon's command line and log format."""

from __future__ import annotations

import logging

import pytest

from terragon_daemon.cli import build_parser, settings_from
from terragon_daemon.logs import configure_logging, kv


def test_options_become_settings() -> None:
    args = build_parser().parse_args(
        [
            "--spool-dir", "/s", "--socket", "/d.sock", "--payload-version", "1",
            "--flush-interval", "0.2", "--max-batch-messages", "7", "--max-batch-bytes", "999",
            "--max-attempts", "4", "--agent-command", "python3 agent.py --fast", "--repo-dir", "/r",
        ]
    )  # fmt: skip
    settings = settings_from(args)
    assert settings.payload_version == 1
    assert (settings.max_batch_messages, settings.max_batch_bytes) == (7, 999)
    assert settings.agent_command == ("python3", "agent.py", "--fast")
    assert settings.repo_dir == "/r" and settings.max_attempts == 4
    assert str(settings.spool_dir) == "/s" and str(settings.socket_path) == "/d.sock"


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-batch-messages", "0"],
        ["--max-batch-bytes", "-1"],
        ["--flush-interval", "nan"],
        ["--http-timeout", "0"],
        ["--max-attempts", "-2"],
        ["--payload-version", "3"],
        ["--start-json", "x.json", "--drain"],
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for option in (
        "--socket", "--spool-dir", "--payload-version", "--flush-interval",
        "--max-batch-messages", "--max-batch-bytes", "--log-level", "--start-json", "--drain",
    ):  # fmt: skip
        assert option in out


def test_key_value_lines() -> None:
    assert kv("batch_sealed", seq=3, terminal=True, end_sha=None) == (
        "batch_sealed seq=3 terminal=true end_sha=null"
    )
    assert kv("agent_stderr", line='said "hi"\nbye') == r'agent_stderr line="said \"hi\"\nbye"'


def test_log_lines_are_structured(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    logging.getLogger("terragon_daemon.test").info(kv("run_started", run_key="r1"))
    err = capsys.readouterr().err.strip()
    assert err.endswith("level=info logger=terragon_daemon.test event=run_started run_key=r1")
    assert err.startswith("ts=") and "Z level=" in err
