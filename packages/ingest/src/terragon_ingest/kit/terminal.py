"""Text from a sandbox or a stranger, shown to an operator as text (CONTRACT §7).

Every printer of payloads, ids, repo names or header values (`terragon archive sql`, `terragon
quarantine list|show|replay`, the console log renderer, stdlib log lines) passes the text through
`terminal_text` (plain output) or `terminal_json` (JSON output), so nothing a sandbox wrote can
move the cursor, clear the screen, hide or reverse text, make an OSC 8 link, or reorder a line.

What is escaped: every character `str.isprintable()` rejects, which is exactly what Python's
`repr` escapes: C0 controls (ESC, CR, BEL, newline, tab, ...), DEL, the C1 controls (U+0080 to
U+009F: U+009B is an 8-bit `ESC[`), the format characters (bidi overrides and isolates such as
U+202E, zero-width characters), line and paragraph separators, non-ASCII spaces, private-use,
surrogate and unassigned code points. Each is spelled by its code point: `\\xNN` below U+0100
(`\\x1b`; CR is `\\x0d`), else `\\uNNNN` or `\\UNNNNNNNN` (`\\u202e`). A backslash already in
the text is left as it is (the output is for reading; the JSON forms stay exact). Markup
(rich's `[link=…]`, `[conceal]`) is not interpreted by the printers: they hand rich `Text`,
never a markup string.
"""

from __future__ import annotations

__all__ = ["terminal_json", "terminal_text"]


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_text(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every unprintable character escaped (`ESC` → `\\x1b`); `keep_newlines` keeps
    `\\n` (a traceback's lines), which moves the cursor nowhere but down."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(
        char if char.isprintable() or (keep_newlines and char == "\n") else _escape(char)
        for char in text
    )


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a JSON string spells an astral code point as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def terminal_json(encoded: str) -> str:
    """An encoded JSON document with every unprintable character inside it as a JSON `\\u`
    escape: it decodes to the same value, and prints as text. (An encoder escapes C0 controls
    itself, but leaves DEL, C1 controls and bidi overrides raw; an indented document keeps its
    line breaks.)"""
    if encoded.isprintable():
        return encoded
    return "".join(
        char if char.isprintable() or char == "\n" else _json_escape(char) for char in encoded
    )
