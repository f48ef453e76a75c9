"""A real S3 API for the tests (fixtures `s3_bucket` / `s3` in tests/conftest.py) and for
`tools.bench --only archive-read`: moto's standalone server (PyPI `moto[server]`) as a subprocess
on 127.0.0.1, the way conftest starts PostgreSQL and Valkey — the service talks HTTP to it with
signed requests, nothing is patched in-process.

The server enforces authentication (`INITIAL_NO_AUTH_ACTION_COUNT`): the first few calls create an
IAM user with an S3 policy and its access key, after which only that key's correctly signed
requests succeed — so a wrong secret is refused as it would be by AWS, R2 or MinIO.

With `TERRAGON_TEST_S3_URL=s3://bucket/prefix` set, the tests use that bucket instead (it must
exist); `TERRAGON_TEST_S3_ENDPOINT` (optional: R2, MinIO, …) and the usual `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION` say how to reach it. Each test writes under a prefix of its
own (`<prefix>/t-<random>`), and removes nothing it did not write.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

_SETUP_CALLS = 4
"""IAM calls moto lets through unauthenticated: create_user, put_user_policy, create_access_key,
and the first list (boto3 checks nothing itself); every call after them is authenticated."""

_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True, slots=True)
class S3Target:
    """Where a test's objects go, and what a process needs in its environment to reach them."""

    url: str
    """`s3://bucket/prefix` of this test (no trailing slash)."""
    endpoint: str | None
    """The S3 API's base URL (`http://127.0.0.1:P` for moto; None → AWS itself)."""
    access_key_id: str
    secret_access_key: str
    region: str

    @property
    def bucket(self) -> str:
        return self.url.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.url.removeprefix("s3://").split("/", 1)
        return rest[1] if len(rest) > 1 else ""

    def child(self, name: str) -> S3Target:
        """The same bucket and credentials under `<prefix>/<name>`."""
        return S3Target(
            f"{self.url}/{name}",
            self.endpoint,
            self.access_key_id,
            self.secret_access_key,
            self.region,
        )

    def env(self) -> dict[str, str]:
        """The variables a `terragon` process (or the dashboard) reads to reach the bucket."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        if self.endpoint:
            env["OBJECT_STORE_S3_ENDPOINT"] = self.endpoint
        return env

    def boto3(self):
        """A boto3 client for the test's own checks (listing what the service wrote)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )

    def list_keys(self) -> list[str]:
        """Every key under this target's prefix, relative to it."""
        client = self.boto3()
        prefix = f"{self.prefix}/" if self.prefix else ""
        found: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            found += [item["Key"].removeprefix(prefix) for item in page.get("Contents", [])]
        return sorted(found)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """`python -m moto.server` on a free 127.0.0.1 port, with authentication enforced."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / "moto-server.log"
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.region = "us-east-1"

    def start(self, timeout: float = 120.0) -> None:
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_CALLS)}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(name, None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server not ready after {timeout}s: {self.log_path}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        # moto's own management API: answers without counting as an S3/IAM action.
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def make_credentials(self) -> tuple[str, str]:
        """An IAM user allowed s3:* and its access key (the unauthenticated setup calls)."""
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
            region_name=self.region,
        )
        iam.create_user(UserName="terragon-test")
        iam.put_user_policy(
            UserName="terragon-test", PolicyName="s3", PolicyDocument=json.dumps(_POLICY)
        )
        key = iam.create_access_key(UserName="terragon-test")["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(5)


def start_bucket(log_dir: Path, bucket: str = "terragon-test") -> tuple[MotoServer, S3Target]:
    """A started moto server and a bucket on it, reachable only with the key it made."""
    server = MotoServer(log_dir)
    server.start()
    try:
        access_key, secret = server.make_credentials()
        target = S3Target(
            f"s3://{bucket}/tests", server.endpoint, access_key, secret, server.region
        )
        target.boto3().create_bucket(Bucket=bucket)
    except BaseException:
        server.stop()
        raise
    return server, target


def external_target() -> S3Target | None:
    """The real bucket of `TERRAGON_TEST_S3_URL`, if set."""
    url = os.environ.get("TERRAGON_TEST_S3_URL")
    if not url:
        return None
    if not url.startswith("s3://"):
        raise ValueError(f"TERRAGON_TEST_S3_URL must be s3://bucket/prefix, got {url!r}")
    missing = [n for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(n)]
    if missing:
        raise ValueError(f"TERRAGON_TEST_S3_URL is set but {', '.join(missing)} is not")
    return S3Target(
        url.rstrip("/"),
        os.environ.get("TERRAGON_TEST_S3_ENDPOINT") or None,
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


def unique_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
