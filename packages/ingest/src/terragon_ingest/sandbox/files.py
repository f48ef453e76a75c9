"""Read one small regular file inside a checkout, without following anything the sandbox made.

The checkout belongs to the sandbox: any component of a path may be a symlink out of it, a FIFO
(an `open()` that never returns), a device, a directory or a 4 GiB file. So the walk is done with
`openat` one component at a time: every directory is opened `O_DIRECTORY | O_NOFOLLOW`, the file
is `lstat`ed first (only a regular file is ever opened), then opened `O_NOFOLLOW | O_NONBLOCK`
(a FIFO swapped in meanwhile cannot block) and `fstat`ed again (same inode, still regular, still
under the cap). Blocking system calls: call this in a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat

from terragon_ingest.sandbox.errors import SandboxFileRefused, SandboxReadError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def components(path: str) -> list[str]:
    """`a/b/c` → `["a", "b", "c"]`; anything absolute, empty or with `.`/`..` is refused."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in {"", ".", ".."} for p in parts):
        raise SandboxReadError(f"path {path!r} is not a plain path inside the checkout")
    return parts


def open_checkout(root: str) -> int:
    """A directory descriptor for the checkout itself (which may not be a symlink)."""
    try:
        return os.open(root, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SandboxReadError(f"checkout {root!r} is a symlink; it is not read") from exc
        raise SandboxReadError(f"cannot open checkout {root!r}: {exc.strerror}") from exc


def read_confined(root: str, path: str, max_bytes: int) -> bytes | None:
    """The bytes of `root/path`, None when it does not exist; `SandboxFileRefused` when it (or a
    directory on the way) is not what it should be, or is over `max_bytes`."""
    parts = components(path)
    dir_fd = open_checkout(root)
    try:
        for i, name in enumerate(parts):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise SandboxReadError(f"cannot read {path!r}: {exc.strerror}") from exc
            where = "/".join(parts[: i + 1])
            if i < len(parts) - 1:
                if not stat.S_ISDIR(st.st_mode):
                    raise SandboxFileRefused(f"{where!r} is {kind_of(st.st_mode)}, not a directory")
                next_fd = _open(name, dir_fd, _DIR_FLAGS, where)
                os.close(dir_fd)
                dir_fd = next_fd
                continue
            if not stat.S_ISREG(st.st_mode):
                raise SandboxFileRefused(f"{where!r} is {kind_of(st.st_mode)}, not a regular file")
            if st.st_size > max_bytes:
                raise SandboxFileRefused(f"{where!r} is {st.st_size} bytes, over {max_bytes}")
            fd = _open(name, dir_fd, _FILE_FLAGS, where)
            try:
                now = os.fstat(fd)
                if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (
                    st.st_dev,
                    st.st_ino,
                ):
                    raise SandboxFileRefused(f"{where!r} was replaced while being opened")
                return _read_at_most(fd, max_bytes, where)
            finally:
                os.close(fd)
        raise AssertionError("unreachable: components() returns at least one part")
    finally:
        os.close(dir_fd)


def _open(name: str, dir_fd: int, flags: int, where: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in {errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO}:
            raise SandboxFileRefused(f"{where!r} changed into {exc.strerror!r}") from exc
        raise SandboxReadError(f"cannot open {where!r}: {exc.strerror}") from exc


def _read_at_most(fd: int, max_bytes: int, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, min(65536, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:  # it grew after fstat
            raise SandboxFileRefused(f"{where!r} is over {max_bytes} bytes")
    return b"".join(chunks)
