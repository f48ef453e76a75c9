"""`kit.terminal`: the one escaping of sandbox text for a terminal (CONTRACT §7)."""

from __future__ import annotations

import json

import pytest

from terragon_ingest.kit.terminal import terminal_json, terminal_text

HOSTILE = "a\x1b[2J\x07\r\t\n\x7f\x9b\u202e\u2066\u200b\u2028\U000e0001\ud800"


def test_every_unprintable_character_is_escaped_and_printable_text_is_kept() -> None:
    assert terminal_text("acme/web é 日本 🙂 [link=x]") == "acme/web é 日本 🙂 [link=x]"
    assert terminal_text(HOSTILE) == (
        "a\\x1b[2J\\x07\\x0d\\x09\\x0a\\x7f\\x9b\\u202e\\u2066\\u200b\\u2028\\U000e0001\\ud800"
    )
    assert terminal_text("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"
    assert terminal_text(HOSTILE).isprintable()


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_json_stays_exact_and_becomes_printable(ensure_ascii: bool) -> None:
    value = {"payload": HOSTILE[:-1] + " é 日本 🙂", "n": 1}
    encoded = terminal_json(json.dumps(value, ensure_ascii=ensure_ascii))
    assert encoded.isprintable()
    assert json.loads(encoded) == value
    indented = terminal_json(json.dumps(value, indent=2, ensure_ascii=False))
    assert "\n" in indented and json.loads(indented) == value
