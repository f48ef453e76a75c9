"""`DenialSampler`: the first anonymous denial of (session, reason) in a minute gets an event,
the rest of that minute do not; the next minute starts afresh; the key set is bounded."""

from __future__ import annotations

from terragon_core import SecurityReason
from terragon_ingest.preview.denials import DenialSampler

SIG = SecurityReason.SIGNATURE_MISMATCH
CROSS = SecurityReason.BINDING_MISMATCH


def test_one_per_session_reason_and_minute() -> None:
    now = [600.0]
    sampler = DenialSampler(clock=lambda: now[0])
    assert sampler.first("s1", SIG)
    assert not sampler.first("s1", SIG)
    assert sampler.first("s1", CROSS)  # another reason
    assert sampler.first("s2", SIG)  # another session
    now[0] = 659.9
    assert not sampler.first("s1", SIG)  # same minute
    now[0] = 660.0
    assert sampler.first("s1", SIG)  # the next minute
    assert not sampler.first("s1", SIG)


def test_the_key_set_is_bounded_and_cleared_each_minute() -> None:
    now = [0.0]
    sampler = DenialSampler(clock=lambda: now[0])
    for n in range(DenialSampler.MAX_KEYS):
        assert sampler.first(f"s{n}", SIG)
    assert not sampler.first("one-too-many", SIG)  # counted in the metric, no event
    now[0] = 60.0
    assert sampler.first("one-too-many", SIG)
