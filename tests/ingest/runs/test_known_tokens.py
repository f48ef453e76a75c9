"""The process's memory of live daemon tokens (`runs/tokens.py`) never outlives a token: an entry
whose token expired, or whose thread was closed here, is gone (the SQL stays the authority)."""

from __future__ import annotations

import time

from terragon_ingest.runs.tokens import KnownTokens, TokenBinding


def test_an_entry_is_dropped_when_its_token_expires() -> None:
    known = KnownTokens()
    live = TokenBinding("thread-1", "user-1", "run-1")
    ending = TokenBinding("thread-1", "user-1", "run-2", expires_at=time.time() + 3600)
    expired = TokenBinding("thread-1", "user-1", "run-3", expires_at=time.time() - 1)
    for digest, binding in ((b"a", live), (b"b", ending), (b"c", expired)):
        known.remember(digest, binding)
    assert (known.get(b"a"), known.get(b"b"), known.get(b"c")) == (live, ending, None)


def test_forget_thread_drops_only_that_threads_tokens() -> None:
    known = KnownTokens()
    mine, other = TokenBinding("t1", "u", "r1"), TokenBinding("t2", "u", "r2")
    known.remember(b"a", mine)
    known.remember(b"b", TokenBinding("t1", "u", "r0"))
    known.remember(b"c", other)
    known.forget_thread("t1")
    assert (known.get(b"a"), known.get(b"b"), known.get(b"c")) == (None, None, other)
