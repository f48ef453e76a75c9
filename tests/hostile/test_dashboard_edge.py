"""The dashboard's edge (CONTRACT §7), against `terragon dashboard` run as a real process.

- A DNS-rebinding page (a name of the attacker's that resolves to 127.0.0.1) reaches the port
  with its own `Host` and `Origin`: the page, a static file and the websocket all answer 403, and
  a websocket from a foreign `Origin` too; the dashboard's own names still answer (the control).
- The password sign-in: after 5 failures from one client within a minute the 6th try is refused
  (429, `Retry-After`) even with the right password, each failure is logged without the password,
  and another client still signs in.
- SIGTERM or SIGINT of `terragon dashboard` leaves no Streamlit process (checked by pid).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.net import free_port
from tests.fixtures.processes import OutputLines
from tests.fixtures.waiting import wait_until

TERRAGON = str(Path(sys.executable).parent / "terragon")
PASSWORD = "dashboard edge password 23"
WRONG = "not-the-password-0123"
REBINDING = "rebind.attacker.example"


@dataclass
class Dashboard:
    process: subprocess.Popen[bytes]
    port: int
    lines: OutputLines

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def streamlit_pids(self) -> list[int]:
        """Live descendants of `terragon dashboard` running Streamlit."""
        return [pid for pid in _descendants(self.process.pid) if _runs_streamlit(pid)]


def _stat(pid: int) -> list[str] | None:
    try:
        # pid (comm) state ppid ...: comm may hold spaces, split after its ')'
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _runs_streamlit(pid: int) -> bool:
    try:
        return b"streamlit" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def _terragon_dashboard(tmp: Path, **env: str) -> Iterator[Dashboard]:
    """`terragon dashboard` on a free port over an empty archive; yields once Streamlit answers
    its health check; kills whatever is left however the test ends."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("TERRAGON_")}
    base.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [
            *(TERRAGON, "--log-format", "json", "dashboard", "--port", str(port)),
            *("--data-dir", str(tmp), "--archive-dir", str(tmp / "archive")),
        ],
        env=base | {"TERRAGON_DASHBOARD_REFRESH_SECONDS": "0"} | env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    dashboard = Dashboard(process, port, OutputLines(process))
    try:
        wait_until(
            lambda: _healthy(dashboard.url) or process.poll() is not None, 90, "the dashboard"
        )
        assert process.poll() is None, dashboard.lines.text()[-3000:]
        yield dashboard
    finally:
        leftovers = [*_descendants(process.pid), process.pid]
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(name="tmp")
def fx_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="terragon-dashboard-edge-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(name="dashboard", scope="module")
def fx_dashboard() -> Iterator[Dashboard]:
    """One dashboard without sign-in for the host-name cases (it starts in seconds, not free)."""
    path = Path(tempfile.mkdtemp(prefix="terragon-dashboard-hosts-"))
    try:
        with _terragon_dashboard(path) as dashboard:
            yield dashboard
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _get(dashboard: Dashboard, path: str, host: str) -> httpx.Response:
    return httpx.get(f"{dashboard.url}{path}", headers={"Host": f"{host}:{dashboard.port}"})


def _static_file(dashboard: Dashboard) -> str:
    """A static file the page loads (its script bundle), read with the dashboard's own name."""
    page = _get(dashboard, "/", "127.0.0.1")
    assert page.status_code == 200
    found = re.search(r'src="\.?/?(static/[^"]+\.js)"', page.text)
    assert found, page.text[:2000]
    return "/" + found.group(1)


def _websocket_status(
    dashboard: Dashboard, host: str, origin: str | None, cookie: str | None = None
) -> str:
    """The status line Streamlit's websocket endpoint answers to an upgrade request."""
    request = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host}:{dashboard.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: streamlit",
    ]
    if origin is not None:
        request.append(f"Origin: {origin}")
    if cookie is not None:
        request.append(f"Cookie: {cookie}")
    with socket.create_connection(("127.0.0.1", dashboard.port), timeout=10) as conn:
        conn.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST."])
def test_the_dashboards_own_names_answer(dashboard: Dashboard, host: str) -> None:
    """The control: the default names (any case, a trailing dot, any port) are served."""
    assert _get(dashboard, "/", host).status_code == 200
    assert _get(dashboard, _static_file(dashboard), host).status_code == 200
    origin = f"http://{host}:{dashboard.port}"
    assert _websocket_status(dashboard, host, origin).split()[1] == "101"


def test_a_rebinding_host_gets_403_for_the_page(dashboard: Dashboard) -> None:
    answer = _get(dashboard, "/", REBINDING)
    assert answer.status_code == 403
    assert "<script" not in answer.text


def test_a_rebinding_host_gets_403_for_a_static_file(dashboard: Dashboard) -> None:
    assert _get(dashboard, _static_file(dashboard), REBINDING).status_code == 403
    assert _get(dashboard, "/_stcore/health", REBINDING).status_code == 403


def test_a_rebinding_host_gets_403_for_the_websocket(dashboard: Dashboard) -> None:
    status = _websocket_status(dashboard, REBINDING, f"http://{REBINDING}:{dashboard.port}")
    assert status.split()[1] == "403", status


@pytest.mark.parametrize("origin", [f"http://{REBINDING}", "null", None])
def test_a_websocket_from_another_origin_gets_403(dashboard: Dashboard, origin: str | None) -> None:
    """The dashboard's own Host, but the page that opens the socket is not the dashboard's."""
    status = _websocket_status(dashboard, "127.0.0.1", origin)
    assert status.split()[1] == "403", status


def test_two_host_headers_get_403(dashboard: Dashboard) -> None:
    with socket.create_connection(("127.0.0.1", dashboard.port), timeout=10) as conn:
        conn.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{dashboard.port}\r\nHost: {REBINDING}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        status = conn.recv(4096).split(b"\r\n", 1)[0].decode()
    assert status.split()[1] in {"400", "403"}, status


def _sign_in(url: str, password: str, *, client: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=client)
    with httpx.Client(transport=transport, timeout=10) as http:
        return http.post(
            f"{url}/_terragon/sign-in",
            data={"password": password},
            headers={"Origin": url},
        )


def test_sign_in_is_throttled_after_five_failures_and_each_is_logged(tmp: Path) -> None:
    with _terragon_dashboard(
        tmp, TERRAGON_DASHBOARD_AUTH="password", TERRAGON_DASHBOARD_PASSWORD=PASSWORD
    ) as dashboard:
        # the control: the right password signs in, with an HttpOnly cookie
        signed = _sign_in(dashboard.url, PASSWORD)
        assert signed.status_code == 303, signed.text
        assert "httponly" in signed.headers["set-cookie"].lower()

        for attempt in range(5):
            failed = _sign_in(dashboard.url, WRONG)
            assert failed.status_code == 401, (attempt, failed.status_code)
            assert "set-cookie" not in failed.headers
        refused = _sign_in(dashboard.url, PASSWORD)  # the 6th: refused, even the right one
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert "set-cookie" not in refused.headers

        # another client is not locked out by this one
        assert _sign_in(dashboard.url, PASSWORD, client="127.0.0.2").status_code == 303

        wait_until(
            lambda: (
                dashboard.lines.count("dashboard_sign_in_failed") >= 5
                and dashboard.lines.count("dashboard_sign_in_throttled") >= 1
            ),
            10,
            "a log line for each failure and for the refusal",
        )
        output = dashboard.lines.text()
        assert WRONG not in output and PASSWORD not in output


def test_with_sign_in_nothing_but_the_form_is_served_without_a_valid_session(tmp: Path) -> None:
    with _terragon_dashboard(
        tmp, TERRAGON_DASHBOARD_AUTH="password", TERRAGON_DASHBOARD_PASSWORD=PASSWORD
    ) as dashboard:
        signed = _sign_in(dashboard.url, PASSWORD)
        assert signed.status_code == 303
        name, value = signed.headers["set-cookie"].split(";", 1)[0].split("=", 1)
        version, expires, nonce, signature = value.split(".")
        forged = f"{version}.{int(expires) + 86_400}.{nonce}.{signature}"  # a longer life
        origin = dashboard.url
        for cookie in (None, f"{name}={forged}", f"{name}=v1.1.x.y"):
            headers = {"Cookie": cookie} if cookie else {}
            page = httpx.get(dashboard.url, headers=headers)
            assert page.status_code == 303 and page.headers["location"] == "/_terragon/sign-in"
            assert _websocket_status(dashboard, "127.0.0.1", origin, cookie).split()[1] == "403"
        # the control: the issued cookie opens the page and the websocket
        assert httpx.get(dashboard.url, headers={"Cookie": f"{name}={value}"}).status_code == 200
        assert (
            _websocket_status(dashboard, "127.0.0.1", origin, f"{name}={value}").split()[1] == "101"
        )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_terragon_dashboard_stops_streamlit(tmp: Path, sig: signal.Signals) -> None:
    with _terragon_dashboard(tmp) as dashboard:
        pids = dashboard.streamlit_pids()
        assert pids, "no Streamlit process under terragon dashboard"
        os.kill(dashboard.process.pid, sig)
        code = dashboard.process.wait(30)
        for pid in pids:
            wait_until(lambda pid=pid: not _alive(pid), 15, f"Streamlit (pid {pid}) to be gone")
        assert not _healthy(dashboard.url)
        assert code in (0, 130), (code, dashboard.lines.text()[-3000:])
