"""`python -m terragon_daemon` / `python3 terragon-daemon.pyz`: parse options, run a mode.

Modes:
- socket (default): listen on `--socket` for control messages until SIGTERM/SIGINT.
- one-shot (`--start-json FILE` or `-` for stdin): run one start message, exit when delivered.
- drain (`--drain`): deliver what the spool holds from an earlier process, then exit.

Every mode first resumes unfinished runs from `--spool-dir`. SIGTERM stops the agents, seals
their terminal batches, delivers for up to `--shutdown-timeout` seconds, keeps the rest spooled
and exits 0. Exit codes: 0 ok, 1 a batch was dead-lettered or the start was refused, 2 usage,
3 the spool or socket is in use by another daemon.
"""

from __future__ import annotations

import argparse
import json
import logging
import pkgutil
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from terragon_daemon import __version__
from terragon_daemon.logs import configure_logging, log_event
from terragon_daemon.server import ControlServer, SocketInUseError
from terragon_daemon.settings import DaemonEnvironment, DaemonSettings
from terragon_daemon.spool import SpoolLockedError
from terragon_daemon.supervisor import Daemon

log = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be a duration >= 0, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be a duration > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    env = DaemonEnvironment.read()
    parser = argparse.ArgumentParser(
        prog="terragon-daemon",
        description="Run agents and stream their output to the Terragon ingest service "
        "(POST /api/daemon-event, envelope v2 or legacy v1).",
    )
    parser.add_argument("--version", action="version", version=f"terragon-daemon {__version__}")
    parser.add_argument(
        "--manifest",
        action="store_true",
        help="print the bundle manifest (envelope contract, source hashes) and exit",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--start-json", metavar="FILE", help="one-shot: run this start message (- = stdin)"
    )
    mode.add_argument("--drain", action="store_true", help="deliver the spool's backlog, then exit")
    parser.add_argument(
        "--socket",
        type=Path,
        default=env.socket,
        help="control socket path (env TERRAGON_DAEMON_SOCKET; default %(default)s)",
    )
    parser.add_argument(
        "--spool-dir",
        type=Path,
        default=env.spool_dir,
        help="sealed batches, run state and dead letters (env TERRAGON_DAEMON_SPOOL_DIR)",
    )
    parser.add_argument(
        "--payload-version",
        type=int,
        choices=(1, 2),
        help="force legacy v1 or v2 (default: v2 when the start message has a runId)",
    )
    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--flush-interval", type=_seconds, default=0.5, help="seconds (%(default)s)"
    )
    batching.add_argument(
        "--max-batch-messages", type=_positive_int, default=500, help="(%(default)s)"
    )
    batching.add_argument(
        "--max-batch-bytes", type=_positive_int, default=1024 * 1024, help="(%(default)s)"
    )
    delivery = parser.add_argument_group("delivery")
    delivery.add_argument(
        "--http-timeout", type=_positive_seconds, default=10.0, help="seconds (%(default)s)"
    )
    delivery.add_argument("--retry-base-delay", type=_seconds, default=0.5, help="(%(default)s)")
    delivery.add_argument("--retry-max-delay", type=_seconds, default=30.0, help="(%(default)s)")
    delivery.add_argument(
        "--max-attempts",
        type=_non_negative_int,
        default=0,
        help="dead-letter after N tries (0 = retry forever)",
    )
    agent = parser.add_argument_group("agent")
    agent.add_argument("--agent-command", help="used when a start message has no agentCommand")
    agent.add_argument("--repo-dir", help="used when a start message has no repoDir")
    agent.add_argument("--stop-grace", type=_seconds, default=5.0, help="SIGTERM → SIGKILL seconds")
    parser.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=10.0,
        help="delivery time on SIGTERM (%(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default=env.log_level,
        choices=("debug", "info", "warning", "error"),
    )
    return parser


def settings_from(args: argparse.Namespace) -> DaemonSettings:
    return DaemonSettings(
        spool_dir=args.spool_dir,
        socket_path=args.socket,
        payload_version=args.payload_version,
        flush_interval=args.flush_interval,
        max_batch_messages=args.max_batch_messages,
        max_batch_bytes=args.max_batch_bytes,
        http_timeout=args.http_timeout,
        retry_base_delay=args.retry_base_delay,
        retry_max_delay=args.retry_max_delay,
        max_attempts=args.max_attempts,
        stop_grace=args.stop_grace,
        shutdown_timeout=args.shutdown_timeout,
        agent_command=tuple(shlex.split(args.agent_command or "")),
        repo_dir=args.repo_dir,
    )


class _Signals:
    """Remembers SIGTERM/SIGINT; the main thread polls it (no locks in a signal handler)."""

    def __init__(self) -> None:
        self.received: int | None = None
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum


def _read_start(source: str) -> dict[str, object]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the start message must be a JSON object")
    return data


def _print_manifest() -> int:
    """The manifest `terragon-bundle build` embedded; absent when running from source."""
    try:
        data = pkgutil.get_data("terragon_daemon", "BUNDLE_MANIFEST.json")
    except OSError:
        data = None
    if data is None:
        print("terragon-daemon is not running from a bundle: no manifest", file=sys.stderr)
        return 1
    sys.stdout.write(data.decode("utf-8"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.manifest:
        return _print_manifest()
    configure_logging(args.log_level)
    settings = settings_from(args)
    signals = _Signals()
    try:
        daemon = Daemon(settings)
    except SpoolLockedError as exc:
        log_event(log, logging.ERROR, "daemon_spool_locked", error=str(exc))
        return 3
    log_event(
        log, logging.INFO, "daemon_started", version=__version__, spool=str(settings.spool_dir)
    )
    resumed = daemon.resume()
    if resumed:
        log_event(log, logging.INFO, "daemon_resumed_runs", runs=len(resumed))
    if args.start_json is not None or args.drain:
        return _run_once(daemon, signals, args.start_json)
    return _serve(daemon, signals, settings)


def _run_once(daemon: Daemon, signals: _Signals, start_json: str | None) -> int:
    refused = False
    if start_json is not None:
        try:
            reply = daemon.handle({**_read_start(start_json), "type": "start"})
        except (OSError, ValueError) as exc:
            reply = {"ok": False, "error": str(exc)}
        if not reply.get("ok"):
            log_event(log, logging.ERROR, "start_refused", error=reply.get("error"))
            refused = True
    while signals.received is None and not daemon.idle():
        time.sleep(0.05)
    daemon.shutdown()
    return 1 if refused or daemon.dead_lettered() else 0


def _serve(daemon: Daemon, signals: _Signals, settings: DaemonSettings) -> int:
    assert settings.socket_path is not None
    try:
        server = ControlServer(settings.socket_path, daemon)
    except SocketInUseError as exc:
        log_event(log, logging.ERROR, "daemon_socket_in_use", error=str(exc))
        daemon.shutdown(0)
        return 3
    server.start()
    while signals.received is None:
        time.sleep(0.1)
    log_event(log, logging.INFO, "daemon_signal_received", signal=signals.received)
    server.stop()
    daemon.shutdown()
    return 0
