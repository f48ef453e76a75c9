"""Text from a sandbox or a stranger (repo names, logins, ids, payload prefixes) shown as text
(CONTRACT §7): control and bidirectional-override characters written out (`\\x1b`, `\\u202e`),
and, inside Streamlit markdown, the value put in an inline code span: backslash escapes are not
enough there, since Streamlit's markdown turns any `http://…` or `www.…` in text into a link after
parsing (seen in Chromium); code is never linked, styled, coloured (`:red[...]`) or typeset."""

from __future__ import annotations

import re
from typing import Final

import pandas as pd

_INVISIBLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
"""C0/C1 controls, DEL, zero-width and bidirectional marks and overrides, line separators."""
_BACKTICKS: Final = re.compile("`+")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: object) -> str:
    """`value` with every invisible or control character written out (`\\x1b`)."""
    return _INVISIBLE.sub(_escaped, str(value))


def md(value: object) -> str:
    """`value` as literal text inside Streamlit markdown (headings, captions, `st.markdown`):
    an inline code span fenced by more backticks than any run inside it (CommonMark)."""
    shown = plain(value)
    if not shown.strip():
        return repr(shown)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy for display whose text cells are `plain` (the original keeps the real values)."""
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype == object or pd.api.types.is_string_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: plain(v) if isinstance(v, str) else v)
    return shown
