"""`terragon up --demo`'s shipped half: the demo data directory, and where the demo's code is.

The demo itself (30 days of made-up history, `tools/demo/history.py`; the fleet of sandboxes that
sends live traffic, `tools/demo`) is development tooling that lives in the source checkout, not in
this package. `up --demo` runs it as children (`python -m tools.demo…`) from the checkout it is
started in: the working directory or the nearest parent holding `pyproject.toml` and
`tools/demo/` (as `uv run` finds the project). Why not the package's own location: an installed
package need not sit in a checkout, and it must never run code from wherever it happens to be
installed; without a checkout `--demo` stops with a message saying so.

Demo data never lands in a non-demo data directory: a directory becomes a demo directory only
when it is new or empty (`claim_demo_dir` writes `DEMO_MARKER`), and the history refuses any
archive outside a marked directory (`check_demo_archive`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from terragon_ingest.errors import IngestError

DEMO_MARKER: Final = "terragon-demo.json"
"""The file that makes a data directory a demo directory (and records the history written)."""
DEMO_DATA_DIR: Final = Path(".data-demo")
"""`terragon up --demo`'s data directory unless `--data-dir` says otherwise: never `.data`."""
DEMO_ENTRY: Final = Path("tools") / "demo" / "__main__.py"


class NotADemoDirectory(IngestError):
    """This data directory holds a non-demo installation: demo data must not land in it."""


class NoCheckout(IngestError):
    """`--demo` runs the demo from the source checkout, and there is none here."""


def find_checkout(start: Path | None = None) -> Path:
    """The source checkout `--demo` runs the demo from: `start` (default: the working directory)
    or its nearest parent with `pyproject.toml` and `tools/demo/`."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / DEMO_ENTRY).is_file():
            return candidate
    raise NoCheckout(
        f"--demo runs the demo (tools/demo) from the source checkout, and {str(here)!r} is not "
        "in one: run `uv run terragon up --demo` in the checkout (git clone, then uv sync)"
    )


def is_demo_dir(data_dir: Path) -> bool:
    return (data_dir / DEMO_MARKER).is_file()


def claim_demo_dir(data_dir: Path) -> None:
    """Make `data_dir` a demo directory, or refuse: only a new or empty directory (or one that
    already is a demo directory) may receive demo data."""
    if is_demo_dir(data_dir):
        return
    if data_dir.exists() and any(data_dir.iterdir()):
        raise NotADemoDirectory(
            f"{str(data_dir)!r} holds a non-demo installation, and --demo writes a demo fleet's "
            f"traffic and 30 days of made-up history: run `uv run terragon up --demo` without "
            f"--data-dir (it uses {str(DEMO_DATA_DIR)!r}) or give it a new directory"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARKER).write_text(json.dumps({"demo": True, "historyUntil": None}) + "\n")


def check_demo_archive(data_dir: Path, archive_root: Path) -> None:
    if not is_demo_dir(data_dir):
        raise NotADemoDirectory(
            f"{str(data_dir)!r} is not a demo data directory (no {DEMO_MARKER})"
        )
    if not archive_root.resolve().is_relative_to(data_dir.resolve()):
        raise NotADemoDirectory(
            f"the archive {str(archive_root)!r} is outside the demo data directory "
            f"{str(data_dir)!r} (TERRAGON_ARCHIVE_DIR is set?): demo history is not written there"
        )
