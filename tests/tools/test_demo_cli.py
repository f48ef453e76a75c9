"""`uv run python -m tools.demo --help` tells the truth about its directories (issue 24 item 6:
it said `.data/demo` while `up --demo` keeps the demo in `.data-demo`)."""

from __future__ import annotations

import contextlib
import io

import pytest

from terragon_ingest.demo import DEMO_DATA_DIR
from tools.demo.__main__ import main


def test_the_help_names_the_demo_directory_up_demo_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # argparse would wrap the path at its hyphen
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(out.getvalue().split())
    assert str(DEMO_DATA_DIR) == ".data-demo"
    assert "(default: .data-demo/demo, as under `terragon up --demo`)" in text
    assert "--data-dir .data-demo/demo" in text and "uv run python -m tools.demo" in text
