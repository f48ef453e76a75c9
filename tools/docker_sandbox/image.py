"""The sandbox image, made with no registry: a root filesystem of this machine's own files
(Python's interpreter and standard library, git, a shell and a few coreutils, the shared
libraries `ldd` lists for each), `docker import`ed as `terragon-sandbox:<key>`.

The key is a digest of every file's path, size and mtime (and of this module's recipe): a
second test run or demo finds the image and builds nothing (~0.2 s to compute the key).

    python -m tools.docker_sandbox.image          # build (or find) it, print the tag
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

REPOSITORY = "terragon-sandbox"
RECIPE_VERSION = "2"
"""Bump when the recipe changes in a way the file list does not show."""

BINARIES = (
    "/usr/bin/python3",
    "/usr/bin/git",
    "/bin/sh",
    "/usr/bin/env",
    "/usr/bin/touch",
    "/usr/bin/cat",
    "/usr/bin/sleep",
    "/usr/bin/ls",
    "/usr/bin/mkdir",
    "/usr/bin/rm",
    "/usr/bin/chmod",
    "/usr/bin/mv",
    "/usr/bin/mkfifo",
    "/usr/bin/true",
    "/usr/bin/false",
)
SKIPPED_STDLIB = frozenset(
    {
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
        "__pycache__",
    }
)
_LDD_PATH = re.compile(r"(/\S+)")


def _stdlib_dir() -> Path:
    version = subprocess.run(
        [
            "/usr/bin/python3",
            "-c",
            "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(f"/usr/lib/python{version}")


def _stdlib_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_STDLIB)
        files += [Path(dirpath) / name for name in sorted(filenames) if not name.endswith(".pyc")]
    return files


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def _libraries(elves: list[Path]) -> set[Path]:
    libs: set[Path] = set()
    for elf in elves:
        out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if match := _LDD_PATH.search(line):
                libs.add(Path(match.group(1)))
    return libs


def file_list() -> list[Path]:
    """Every path the image holds (symlinks as themselves, their targets too)."""
    stdlib = _stdlib_files(_stdlib_dir())
    binaries = [Path(b) for b in BINARIES]
    elves = [p.resolve() for p in binaries] + [p for p in stdlib if p.suffix == ".so"]
    paths = set(binaries) | {p.resolve() for p in binaries} | set(stdlib)
    paths |= _libraries([p for p in elves if _is_elf(p)])
    paths |= {p.resolve() for p in paths}
    # Stored under their parents' real directories (on a merged-/usr host /lib is a link to usr/lib).
    return sorted({Path(os.path.realpath(p.parent)) / p.name for p in paths})


TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib64")


def image_key(paths: list[Path]) -> str:
    digest = hashlib.sha256(RECIPE_VERSION.encode())
    for path in paths:
        st = path.lstat()
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\n".encode())
    return digest.hexdigest()[:16]


def _rootfs_tar(paths: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        added: set[str] = set()

        def add_dirs(path: Path) -> None:
            for parent in reversed(path.parents[:-1]):
                name = str(parent).lstrip("/")
                if name not in added:
                    added.add(name)
                    info = tarfile.TarInfo(name)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)

        for path in paths:
            add_dirs(path)
            tar.add(str(path), arcname=str(path).lstrip("/"), recursive=False)
        for name in TOP_LEVEL_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(host)
                tar.addfile(info)
        for name, mode in (("tmp", 0o1777), ("run/terragon", 0o755), ("work", 0o755)):
            for part in (name.split("/")[0], name):
                if part not in added:
                    added.add(part)
                    info = tarfile.TarInfo(part)
                    info.type, info.mode = tarfile.DIRTYPE, mode
                    tar.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size, info.mode = len(passwd), 0o644
        tar.addfile(info, io.BytesIO(passwd))
    return buffer.getvalue()


def image_exists(tag: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return found.returncode == 0


def ensure_image() -> str:
    """The image's tag, built now only when no image of this key exists."""
    paths = file_list()
    tag = f"{REPOSITORY}:{image_key(paths)}"
    if image_exists(tag):
        return tag
    subprocess.run(
        [
            "docker",
            "import",
            "--change",
            "ENV PATH=/usr/local/bin:/usr/bin:/bin",
            "--message",
            "terragon sandbox (no registry)",
            "-",
            tag,
        ],
        input=_rootfs_tar(paths),
        check=True,
        capture_output=True,
    )
    return tag


if __name__ == "__main__":
    print(ensure_image())
    sys.exit(0)
