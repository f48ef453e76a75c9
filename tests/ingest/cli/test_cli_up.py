"""`terragon up` as an operator runs it: embedded servers, ready, clean stop, stale detection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.net import free_port
from tests.fixtures.runs import START_PATH, start_body, thread_body
from tests.fixtures.waiting import wait_until

TERRAGON = str(Path(sys.executable).parent / "terragon")


def _processes_using(path: Path) -> list[int]:
    """Pids whose command line mentions `path` (postgres -D …, valkey-server …/valkey.conf)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if str(path) in cmdline and "State:\tZ" not in status and "pytest" not in cmdline:
            found.append(int(entry.name))
    return found


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return None


@pytest.fixture(name="data_dir")
def fx_data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="terragon-up-"))
    yield path
    for pid in _processes_using(path):
        os.kill(pid, signal.SIGKILL)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _up(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VALKEY_URL"}}
    env["TERRAGON_BACKGROUND_JOBS"] = "true"
    return subprocess.Popen(
        [TERRAGON, "up", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,  # its log; a refusal or a crash on stderr, read with it
        stderr=subprocess.STDOUT,
    )


def _ready(port: int) -> bool:
    return _status(f"http://127.0.0.1:{port}/readyz") == 200


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_serves_and_stops_cleanly(data_dir: Path, sig: signal.Signals) -> None:
    port = free_port()
    proc = _up(data_dir, port)
    try:
        wait_until(lambda: _ready(port) or proc.poll() is not None, 90, "readyz")
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert _status(f"http://127.0.0.1:{port}/healthz") == 200
        assert _processes_using(data_dir), "embedded servers should be running"
        proc.send_signal(sig)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(lambda: not _processes_using(data_dir), 15, "embedded servers to stop")


def test_up_detects_and_stops_a_stale_server_from_a_killed_run(data_dir: Path) -> None:
    port = free_port()
    first = _up(data_dir, port)
    wait_until(lambda: _ready(port) or first.poll() is not None, 90, "first readyz")
    leftovers = _processes_using(data_dir)
    first.kill()  # SIGKILL: no cleanup runs, the embedded servers are orphaned
    first.wait(10)
    assert set(leftovers) & set(_processes_using(data_dir)), "servers survive a SIGKILL of `up`"
    second = _up(data_dir, port)
    try:
        wait_until(lambda: _ready(port) or second.poll() is not None, 90, "second readyz")
        assert second.poll() is None
        assert not set(leftovers) & set(_processes_using(data_dir)), "stale servers were stopped"
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    finally:
        if second.poll() is None:
            second.kill()
    wait_until(lambda: not _processes_using(data_dir), 15, "embedded servers to stop")


def test_up_prints_the_preview_origin_and_serves_a_preview_on_it(data_dir: Path) -> None:
    """The by-hand flow (docs/operations.md "The API by hand"): `up` names the origin template, a
    session started on it answers `previewUrl`, and curl (which sends `*.localhost` to the loopback
    address) follows the exchange redirect with its cookie jar to the upstream's page. The
    upstream is on 127.0.0.1, which `up` allows (`serve` would not)."""
    import json
    import shutil
    import threading

    from tests.fixtures.preview import Upstream

    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (apt-get install -y curl)")
    port = free_port()
    proc = _up(data_dir, port)
    banner: list[str] = []

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            banner.append(line.decode(errors="replace"))

    threading.Thread(target=drain, daemon=True).start()
    page = b"<h1>preview page</h1>"
    try:
        wait_until(lambda: _ready(port) or proc.poll() is not None, 90, "readyz")
        # piped: the banner is one JSON event, said once the API answers
        wait_until(lambda: any('"terragon_up"' in line for line in banner), 10, "the banner")
        [up] = [json.loads(line) for line in banner if '"terragon_up"' in line]
        assert up["previews"].startswith(f"http://{{previewSessionId}}.preview.localhost:{port}")
        assert "private upstreams allowed" in up["previews"]
        with Upstream(pages={"/": ("text/html", page, b"")}) as upstream:
            api = f"http://127.0.0.1:{port}"
            auth = ["-H", "Authorization: Bearer " + os.environ["TERRAGON_INTERNAL_TOKEN"]]
            json_body = ["-H", "content-type: application/json", "--data"]

            def post(path: str, body: dict[str, str]) -> dict[str, str]:
                out = subprocess.run(
                    [curl, "-sf", *auth, *json_body, json.dumps(body), api + path],
                    capture_output=True,
                    check=True,
                    timeout=30,
                )
                return json.loads(out.stdout)

            post("/api/internal/threads", thread_body("t-up", userId="u-up"))
            run = post(START_PATH, start_body("t-up", request_id="r-up"))
            started = post(
                "/api/internal/preview/session/start",
                {
                    "threadId": "t-up",
                    "threadChatId": "chat-1",
                    "runId": run["runId"],
                    "userId": "u-up",
                    "upstreamOrigin": upstream.origin,
                },
            )
            sid = started["previewSessionId"]
            assert started["previewUrl"] == f"http://{sid}.preview.localhost:{port}"
            jar = data_dir / "cookies.txt"
            url = f"{started['previewUrl']}/__terragon/exchange?token={started['exchangeToken']}"
            shown = subprocess.run(
                [curl, "-sfL", "-c", str(jar), "-b", str(jar), url],
                capture_output=True,
                check=True,
                timeout=30,
            )
            assert shown.stdout == page
            # HttpOnly, host-only (FALSE: not for subdomains), Path=/, not Secure (http origin).
            cookie_line = f"#HttpOnly_{sid}.preview.localhost\tFALSE\t/\tFALSE\t"
            assert cookie_line in jar.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(lambda: not _processes_using(data_dir), 15, "embedded servers to stop")
