"""`python -m tools.chaos`: run the bounded fault campaign and print the figures."""

from __future__ import annotations

import argparse

from tools.chaos.campaign import Config, run_campaign
from tools.replicas import archive_bucket


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.chaos",
        description="Fleet of real daemons vs N service replicas on 127.0.0.1 behind a balancing "
        "proxy, under faults (SIGKILL + restart of one replica at a time, PostgreSQL restart, "
        "Valkey outage, connections cut after commit); checks 0 lost, 0 duplicated, every run "
        "finished, preview access all 503 while Valkey is down, the other replicas serving during "
        "a kill, and the archive holding every Postgres row before its watermark exactly once. "
        "Misbehaving daemons (zombie, oversized, stale seq, v1 under strict) post through the "
        "proxy too and an old day is purged by retention during the faults: the quarantine "
        "ledger, the offloaded payloads, the purge and the daily aggregates are checked. Every "
        "periodic job must run once per slot (--skew: with one replica's clock ahead) and no run "
        "be finalized early. --failover: the PostgreSQL fault is the primary's death and its "
        "standby's promotion instead of a restart.",
        epilog="Archive and payloads on S3: set TERRAGON_ARCHIVE_URL (or TERRAGON_ARCHIVE_DIR) and "
        "OBJECT_STORE_URL with their endpoint settings (OBJECT_STORE_S3_ENDPOINT, ...) and AWS_* "
        "credentials; every TERRAGON_ARCHIVE_*, OBJECT_STORE_* and AWS_* variable is passed to the "
        "replicas and the archive commands. Unset: local directories shared by the replicas.",
    )
    parser.add_argument("--duration", type=float, default=180.0, help="fault window, seconds")
    parser.add_argument("--daemons", type=int, default=100, help="fleet size")
    parser.add_argument(
        "--messages", type=int, help="agent lines per daemon (default: rate x duration)"
    )
    parser.add_argument("--rate", type=float, default=2.0, help="agent lines/s per daemon")
    parser.add_argument("--kill-every", type=float, default=60.0, help="SIGKILL period, seconds")
    parser.add_argument("--valkey-down", type=float, default=30.0, help="Valkey outage, seconds")
    parser.add_argument("--cut", type=float, default=0.05, help="P(cut a connection after commit)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="`terragon serve` processes behind the proxy (the kills take one at a time)",
    )
    parser.add_argument(
        "--s3",
        action="store_true",
        help="start an S3 server (moto's, tools/s3_server.py) and put the archive and the "
        "offloaded payloads in a bucket on it, as replicas on several hosts would share them",
    )
    parser.add_argument(
        "--job-interval",
        type=float,
        default=10.0,
        help="the replicas' periodic-job interval, seconds (every job, many slots under fault)",
    )
    failover = parser.add_argument_group(
        "failover",
        "PostgreSQL as a primary and a streaming standby (libpq multi-host DATABASE_URL): the "
        "PostgreSQL fault becomes SIGKILL of the primary and promotion of the standby",
    )
    failover.add_argument(
        "--failover", action="store_true", help="primary + synchronous standby; kill, promote"
    )
    failover.add_argument(
        "--async-standby",
        action="store_true",
        help="with --failover (implied): an asynchronous standby, to measure what it loses "
        "(reported, not a failure)",
    )
    failover.add_argument(
        "--promote-after",
        type=float,
        default=2.0,
        help="seconds between the kill and the promotion (a failover manager's decision time)",
    )
    failover.add_argument(
        "--rebuild",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="rebuild the dead primary as the new standby after the promotion",
    )
    parser.add_argument(
        "--skew",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the last replica's clock this far ahead (libfaketime; e.g. 45)",
    )
    parser.add_argument("--seed", type=int, default=7)
    return parser


def main(argv: list[str] | None = None) -> int:
    from terragon_ingest.log_config import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging("warning", json=False)
    cfg = Config(
        duration=args.duration,
        daemons=args.daemons,
        messages=args.messages or max(10, int(args.rate * args.duration)),
        rate=args.rate,
        kill_every=args.kill_every,
        valkey_down=args.valkey_down,
        cut_probability=args.cut,
        seed=args.seed,
        replicas=max(1, args.replicas),
        job_interval=args.job_interval,
        failover=args.failover or args.async_standby,
        synchronous_standby=not args.async_standby,
        promote_after=args.promote_after,
        rebuild=args.rebuild,
        skew=args.skew,
    )
    with archive_bucket(args.s3, prefix="terragon-chaos-s3-") as extra:
        report = run_campaign(cfg)
    for line in [*report.lines(), *extra]:
        print(line)
    return 0 if report.ok or any(n.startswith("SKIPPED") for n in report.notes) else 1
