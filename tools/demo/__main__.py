"""`uv run python -m tools.demo`: run the demo fleet against a live service.

`uv run terragon up --demo` starts it with --data-dir .data-demo/demo (its checkouts and
spools) and the sockets in .data-demo/sandboxes, where that service looks for local daemons.
By hand, against `uv run terragon up` (data directory .data):

  uv run python -m tools.demo --data-dir .data/demo --rounds 3

It logs as `terragon up` does (on stdout: console lines in a terminal, JSON lines otherwise); under
`terragon up --demo` its JSON lines are read and logged again by `up`, with `process=demo`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

import structlog

from terragon_ingest.demo import DEMO_DATA_DIR
from terragon_ingest.log_config import configure_logging, log_stream, logs_to_terminal
from tools.demo.fleet import BUNDLE, Fleet

log = structlog.get_logger()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="uv run python -m tools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="ingest base URL")
    parser.add_argument(
        "--token",
        default=os.environ.get("TERRAGON_INTERNAL_TOKEN", "dev-internal-token"),
        help="internal bearer token (env TERRAGON_INTERNAL_TOKEN)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEMO_DATA_DIR / "demo",
        help="checkouts and daemon spools live here (default: %(default)s, as under "
        "`terragon up --demo`)",
    )
    parser.add_argument(
        "--socket-dir",
        type=Path,
        default=None,
        help="where the service looks for local daemons (default: <data-dir>/../sandboxes)",
    )
    parser.add_argument("--sandboxes", type=int, default=12, help="daemons in the fleet")
    parser.add_argument(
        "--provider",
        choices=["local", "docker"],
        default="local",
        help="docker: every other sandbox (with a git checkout) runs in a container",
    )
    parser.add_argument("--rounds", type=int, default=0, help="rounds of runs (0 = until stopped)")
    parser.add_argument("--interval", type=float, default=20.0, help="seconds between rounds")
    parser.add_argument(
        "--preview-port",
        type=int,
        default=0,
        help="port of the preview link on 127.0.0.1 (default: any free one; it is logged)",
    )
    parser.add_argument(
        "--log-format",
        choices=["console", "json"],
        default=None,
        help="default: console on a terminal, JSON otherwise",
    )
    args = parser.parse_args(argv)
    stream = log_stream("up")  # a long-running fleet logs as `terragon up` does: on stdout
    json_logs = (args.log_format == "json") if args.log_format else not logs_to_terminal(stream)
    configure_logging("info", json=json_logs, stream=stream)
    if not BUNDLE.exists():
        log.error(
            "demo_bundle_missing",
            bundle=str(BUNDLE),
            action="run `uv run terragon-bundle build`",
        )
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    socket_dir = args.socket_dir or args.data_dir.resolve().parent / "sandboxes"
    fleet = Fleet(
        args.api,
        args.token,
        args.data_dir.resolve(),
        socket_dir,
        args.sandboxes,
        args.preview_port,
        args.provider,
    )
    try:
        fleet.setup()
        number = 0
        while not stop.is_set() and (args.rounds == 0 or number < args.rounds):
            number += 1
            fleet.round(number)
            log.info("demo_round_started", round=number, runs=len(fleet.sandboxes))
            stop.wait(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
