"""When batches are sealed: count cap, byte cap, interval."""

from __future__ import annotations

import pytest

from terragon_daemon.batcher import Batcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def msg(i: int, text: str = "") -> bytes:
    return b'{"type":"assistant","uuid":"u%d","text":"%s"}' % (i, text.encode())


def test_count_cap_seals_a_full_batch() -> None:
    batcher = Batcher(max_messages=3, max_bytes=10**6, interval=1.0, clock=Clock())
    assert batcher.add(msg(1)) == []
    assert batcher.add(msg(2)) == []
    assert batcher.add(msg(3)) == [[msg(1), msg(2), msg(3)]]
    assert len(batcher) == 0


def test_byte_cap_seals_before_the_message_that_would_overflow() -> None:
    size = len(msg(1, "x" * 50))
    batcher = Batcher(max_messages=100, max_bytes=size * 2 + 1, interval=1.0, clock=Clock())
    assert batcher.add(msg(1, "x" * 50)) == []
    assert batcher.add(msg(2, "x" * 50)) == []
    assert batcher.add(msg(3, "x" * 50)) == [[msg(1, "x" * 50), msg(2, "x" * 50)]]
    assert batcher.take() == [msg(3, "x" * 50)]


def test_oversized_message_travels_alone() -> None:
    batcher = Batcher(max_messages=100, max_bytes=80, interval=1.0, clock=Clock())
    assert batcher.add(msg(1)) == []
    big = msg(2, "y" * 100)
    assert batcher.add(big) == [[msg(1)], [big]]
    assert len(batcher) == 0


def test_interval_counts_from_the_first_pending_message() -> None:
    clock = Clock()
    batcher = Batcher(max_messages=100, max_bytes=10**6, interval=0.5, clock=clock)
    assert batcher.seconds_until_due() is None
    batcher.add(msg(1))
    clock.now += 0.2
    batcher.add(msg(2))
    assert batcher.seconds_until_due() == pytest.approx(0.3)
    clock.now += 0.3
    due = batcher.seconds_until_due()
    assert due is not None and due <= 0
    assert batcher.take() == [msg(1), msg(2)]
    assert batcher.seconds_until_due() is None


@pytest.mark.parametrize("kwargs", [{"max_messages": 0}, {"max_bytes": 0}, {"interval": -1}])
def test_rejects_nonsense_limits(kwargs: dict[str, float]) -> None:
    limits: dict[str, float] = {"max_messages": 1, "max_bytes": 1, "interval": 0} | kwargs
    with pytest.raises(ValueError, match="positive"):
        Batcher(
            max_messages=int(limits["max_messages"]),
            max_bytes=int(limits["max_bytes"]),
            interval=limits["interval"],
        )
