"""A small Docker Engine API client over its Unix socket: asyncio and the standard library.

What the `docker` provider needs and nothing more: inspect a container, copy one file out
(`GET /containers/{id}/archive`), run a fixed argv inside it (`exec`, stdin in, stdout and stderr
out). Every answer is bounded in bytes; the caller bounds time (`asyncio.timeout`), and a
cancelled call closes its connection, so a stalled container costs nothing once it is given up.

Why not the `docker` package from PyPI: it is synchronous (requests over the socket), so each
call would hold a worker thread that cannot be stopped when a container stalls or floods; here a
call is a coroutine, cancelled with its connection at the deadline.

Everything a container sends back (file bytes, exec output, error messages) is untrusted text:
it is size-capped here and quoted with `repr` wherever it reaches a reason or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from terragon_ingest.sandbox.errors import SandboxFileRefused, SandboxReadError

MAX_HEADER_BYTES = 64 * 1024
MAX_JSON_BYTES = 1024 * 1024
"""An inspect answer or an API error (the container's labels and env can be large, not huge)."""
MAX_ERROR_TEXT = 200
"""Characters of a container's or the Engine's error text carried into a reason."""

CONTAINER_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A container name or id, as Docker accepts them; anything else never reaches a URL."""

# Go's os.FileMode type bits, as the Engine reports them in X-Docker-Container-Path-Stat.
_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27
_MODE_DEVICE = 1 << 26
_MODE_PIPE = 1 << 25
_MODE_SOCKET = 1 << 24
_MODE_CHAR_DEVICE = 1 << 21
_MODE_IRREGULAR = 1 << 19
_MODE_TYPE = (
    _MODE_DIR
    | _MODE_SYMLINK
    | _MODE_DEVICE
    | _MODE_PIPE
    | _MODE_SOCKET
    | _MODE_CHAR_DEVICE
    | _MODE_IRREGULAR
)


class DockerError(SandboxReadError):
    """The Engine could not do what was asked (unreachable, refused, over a cap)."""


class DockerUnreachable(DockerError):
    """Nothing answers on the Engine API's socket."""


class ContainerGone(DockerError):
    """The container does not exist (removed), or is not running where that matters."""


class FileRefused(DockerError, SandboxFileRefused):
    """The path is there but is not one small regular file: it is not read."""


def untrusted(text: bytes | str) -> str:
    """A container's (or the Engine's) text, short and quoted, for a reason or a log line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip()
    short = text[:MAX_ERROR_TEXT] + ("…" if len(text) > MAX_ERROR_TEXT else "")
    return repr(short)


def check_container_ref(ref: str) -> str:
    if not CONTAINER_REF.fullmatch(ref):
        raise DockerError(f"codesandboxId {ref[:80]!r} is not a Docker container name or id")
    return ref


@dataclass(frozen=True, slots=True)
class PathStat:
    name: str
    size: int
    mode: int
    link_target: str

    @property
    def is_regular(self) -> bool:
        return self.mode & _MODE_TYPE == 0

    def kind(self) -> str:
        for bit, name in (
            (_MODE_DIR, "a directory"),
            (_MODE_SYMLINK, "a symlink"),
            (_MODE_PIPE, "a FIFO"),
            (_MODE_SOCKET, "a socket"),
            (_MODE_DEVICE | _MODE_CHAR_DEVICE, "a device"),
        ):
            if self.mode & bit:
                return name
        return "a regular file" if self.is_regular else "not a regular file"


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int | None
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class DockerEngine:
    """One Engine API endpoint (its Unix socket). Cheap to make: no connection is kept."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    # -- the calls the provider makes ------------------------------------------------------

    async def inspect(self, container: str) -> dict[str, Any]:
        """`GET /containers/{id}/json`; `ContainerGone` when there is no such container."""
        ref = check_container_ref(container)
        status, body = await self._call("GET", f"/containers/{ref}/json", max_bytes=MAX_JSON_BYTES)
        if status == 404:
            raise ContainerGone(f"container {ref!r} is gone (no such container)")
        if status != 200:
            raise DockerError(f"Docker answered {status} to inspect {ref!r}: {_message(body)}")
        return _json_object(body, "inspect")

    async def running(self, container: str) -> None:
        """`ContainerGone` unless the container exists and runs (exec needs a running one)."""
        state = (await self.inspect(container)).get("State")
        if not isinstance(state, dict) or state.get("Running") is not True:
            status = state.get("Status") if isinstance(state, dict) else None
            raise ContainerGone(f"container {container!r} is not running (state {status!r})")

    async def read_file(self, container: str, path: str, max_bytes: int) -> bytes | None:
        """The bytes of one regular file inside the container (`GET …/archive`), None when it
        does not exist; `DockerError` when it is not a regular file or is over `max_bytes`
        (decided from the Engine's stat header, before the content is read)."""
        ref = check_container_ref(container)
        url = f"/containers/{ref}/archive?path={quote(path, safe='/')}"
        response = await self._send("GET", url)
        try:
            if response.status == 404:
                body = await _read_body(response, MAX_JSON_BYTES)
                if "no such container" in _message(body).lower():
                    raise ContainerGone(f"container {ref!r} is gone (no such container)")
                return None
            if response.status != 200:
                body = await _read_body(response, MAX_JSON_BYTES)
                raise DockerError(
                    f"Docker answered {response.status} to copy {path!r} out of {ref!r}: "
                    f"{_message(body)}"
                )
            stat = _path_stat(response.headers.get("x-docker-container-path-stat", ""))
            if not stat.is_regular:
                raise FileRefused(f"{path!r} in {ref!r} is {stat.kind()}, not a regular file")
            if stat.size > max_bytes:
                raise FileRefused(f"{path!r} in {ref!r} is {stat.size} bytes, over {max_bytes}")
            # A tar of one file: its header(s), the bytes, padding, two zero blocks.
            raw = await _read_body(response, max_bytes + 64 * 1024)
        finally:
            await _close(response.writer)
        # tarfile reads through a buffered file object: off the event loop (the bytes are capped).
        return await asyncio.to_thread(_single_regular_member, raw, path, max_bytes)

    async def exec(
        self,
        container: str,
        argv: list[str],
        *,
        env: dict[str, str],
        workdir: str | None,
        stdin: bytes | None,
        max_stdout: int,
        max_stderr: int = 4096,
    ) -> ExecResult:
        """Run `argv` inside the running container (no TTY, no shell), `stdin` written then
        closed; stdout over `max_stdout` raises `DockerError` at once (the stream is dropped),
        stderr is truncated at `max_stderr`."""
        ref = check_container_ref(container)
        config: dict[str, Any] = {
            "AttachStdin": stdin is not None,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
            "Cmd": argv,
            "Env": [f"{k}={v}" for k, v in env.items()],
        }
        if workdir:
            config["WorkingDir"] = workdir
        status, body = await self._call(
            "POST", f"/containers/{ref}/exec", config, max_bytes=MAX_JSON_BYTES
        )
        if status == 404:
            raise ContainerGone(f"container {ref!r} is gone (no such container)")
        if status == 409:
            raise ContainerGone(f"container {ref!r} is not running: {_message(body)}")
        if status != 201:
            raise DockerError(f"Docker answered {status} to exec in {ref!r}: {_message(body)}")
        exec_id = str(_json_object(body, "exec create").get("Id", ""))
        if not re.fullmatch(r"[0-9a-f]{64}", exec_id):
            raise DockerError(f"Docker answered exec id {exec_id[:80]!r}")
        stdout, stderr = await self._exec_stream(exec_id, stdin, max_stdout, max_stderr)
        return ExecResult(await self._exit_code(exec_id), stdout, stderr)

    # -- exec plumbing -----------------------------------------------------------------------

    async def _exec_stream(
        self, exec_id: str, stdin: bytes | None, max_stdout: int, max_stderr: int
    ) -> tuple[bytes, bytes]:
        response = await self._send(
            "POST",
            f"/exec/{exec_id}/start",
            {"Detach": False, "Tty": False},
            upgrade=True,
        )
        try:
            if response.status not in (101, 200):
                body = await _read_body(response, MAX_JSON_BYTES)
                if response.status == 409:
                    raise ContainerGone(f"exec refused: {_message(body)}")
                raise DockerError(f"Docker answered {response.status} to exec start")
            if stdin is not None:
                response.writer.write(stdin)
                await response.writer.drain()
                if response.writer.can_write_eof():
                    response.writer.write_eof()  # the process sees the end of its stdin
            return await _demultiplex(response.reader, max_stdout, max_stderr)
        finally:
            await _close(response.writer)

    async def _exit_code(self, exec_id: str) -> int | None:
        # The stream ends when the process has exited; the Engine records the code a moment later.
        for _ in range(20):
            status, body = await self._call(
                "GET", f"/exec/{exec_id}/json", max_bytes=MAX_JSON_BYTES
            )
            if status != 200:
                return None
            info = _json_object(body, "exec inspect")
            if info.get("Running") is False:
                code = info.get("ExitCode")
                return code if isinstance(code, int) else None
            await asyncio.sleep(0.05)
        return None

    # -- HTTP/1.1 over the socket --------------------------------------------------------------

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, max_bytes: int
    ) -> tuple[int, bytes]:
        response = await self._send(method, path, body)
        try:
            return response.status, await _read_body(response, max_bytes)
        finally:
            await _close(response.writer)

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, upgrade: bool = False
    ) -> _Response:
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.socket_path), limit=MAX_HEADER_BYTES
            )
        except OSError as exc:
            raise DockerUnreachable(
                f"the Docker Engine API at {str(self.socket_path)!r} does not answer "
                f"({exc.strerror or type(exc).__name__}); is dockerd running? "
                "(TERRAGON_DOCKER_SOCKET names its socket)"
            ) from exc
        try:
            payload = json.dumps(body).encode() if body is not None else b""
            lines = [f"{method} {path} HTTP/1.1", "Host: docker"]
            if upgrade:
                lines += ["Connection: Upgrade", "Upgrade: tcp"]
            else:
                lines.append("Connection: close")
            if body is not None:
                lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            status, headers = await _read_head(reader)
        except BaseException:
            await _close(writer)
            raise
        return _Response(status, headers, reader, writer)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise DockerError("the Docker Engine closed the connection before answering") from exc
    except asyncio.LimitOverrunError as exc:
        raise DockerError("the Docker Engine's answer headers are over 64 KiB") from exc
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise DockerError(f"the Docker Engine answered {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_body(response: _Response, max_bytes: int) -> bytes:
    reader, headers = response.reader, response.headers
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await _read_chunked(reader, max_bytes)
        if (length := headers.get("content-length")) is not None:
            if not length.isdigit() or int(length) > max_bytes:
                raise DockerError(f"the Docker Engine's answer is over {max_bytes} bytes")
            return await reader.readexactly(int(length))
        data = await reader.read(max_bytes + 1)
        while chunk := await reader.read(max_bytes + 1 - len(data)):
            data += chunk
            if len(data) > max_bytes:
                break
        if len(data) > max_bytes:
            raise DockerError(f"the Docker Engine's answer is over {max_bytes} bytes")
        return data
    except asyncio.IncompleteReadError as exc:
        raise DockerError("the Docker Engine's answer ended early (container gone?)") from exc


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise DockerError("the Docker Engine's answer ended early (container gone?)")
        try:
            length = int(line.split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise DockerError("the Docker Engine sent a malformed chunk") from exc
        if length == 0:
            return b"".join(chunks)
        size += length
        if size > max_bytes:
            raise DockerError(f"the answer is over {max_bytes} bytes")
        chunks.append(await reader.readexactly(length))
        await reader.readexactly(2)


async def _demultiplex(
    reader: asyncio.StreamReader, max_stdout: int, max_stderr: int
) -> tuple[bytes, bytes]:
    """The exec stream without a TTY: frames of `[stream, 0, 0, 0, size (u32 BE)]` + payload."""
    out: list[bytes] = []
    err: list[bytes] = []
    out_size = err_size = 0
    while True:
        try:
            header = await reader.readexactly(8)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise DockerError("the exec stream ended inside a frame (container gone?)") from exc
            return b"".join(out), b"".join(err)
        stream, size = header[0], struct.unpack(">I", header[4:])[0]
        if stream == 1:
            out_size += size
            if out_size > max_stdout:
                raise DockerError(
                    f"the command wrote more than {max_stdout} bytes: too much to read"
                )
            try:
                out.append(await reader.readexactly(size))
            except asyncio.IncompleteReadError as exc:
                raise DockerError("the exec stream ended inside a frame") from exc
            continue
        # stderr (2) is kept up to its cap; anything else (stdin echo, 0) is read and dropped.
        remaining = size
        while remaining:
            chunk = await reader.read(min(remaining, 65536))
            if not chunk:
                raise DockerError("the exec stream ended inside a frame")
            remaining -= len(chunk)
            if stream == 2 and err_size < max_stderr:
                err.append(chunk[: max_stderr - err_size])
                err_size += len(err[-1])


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        pass


def _message(body: bytes) -> str:
    """The Engine's `{"message": …}` error text (which may quote the container), untrusted."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return untrusted(body)
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return untrusted(decoded["message"])
    return untrusted(body)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        decoded = json.loads(body)
    except ValueError as exc:
        raise DockerError(f"the Docker Engine's {what} answer is not JSON") from exc
    if not isinstance(decoded, dict):
        raise DockerError(f"the Docker Engine's {what} answer is not an object")
    return decoded


def _path_stat(header: str) -> PathStat:
    try:
        info = json.loads(base64.b64decode(header, validate=True))
        return PathStat(
            str(info["name"]), int(info["size"]), int(info["mode"]), str(info.get("linkTarget", ""))
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DockerError("the Docker Engine's path stat header is malformed") from exc


def _single_regular_member(raw: bytes, path: str, max_bytes: int) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            member = tar.next()
            if member is None:
                raise DockerError(f"the copy of {path!r} is an empty archive")
            if not member.isreg() or member.size > max_bytes:
                raise FileRefused(f"the copy of {path!r} is not one small regular file")
            extracted = tar.extractfile(member)
            assert extracted is not None
            return extracted.read(max_bytes + 1)
    except tarfile.TarError as exc:
        raise DockerError(f"the copy of {path!r} is not a readable archive: {exc}") from exc
